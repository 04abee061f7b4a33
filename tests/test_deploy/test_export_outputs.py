"""tools/deploy/export_onnx.py: --out follows the shared output rules (checked before the
model is built) and a missing optional dependency is one line naming the extra."""
import os
import os.path as osp
import sys

import pytest

from logocap_mm.testing import REPO_ROOT as ROOT
from logocap_mm.testing import load_tool

TINY_COCO = osp.join(ROOT, 'tests', 'configs', 'tiny_coco.py')


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools/deploy/export_onnx.py', 'logocap_export_outputs')


@pytest.mark.parametrize('kind', ['hardlink_to_checkpoint', 'symlink_to_config', 'fifo',
                                  'directory'])
def test_out_is_checked_before_anything_runs(tool, tmp_path, capsys, kind):
    pytest.importorskip('onnx')
    pytest.importorskip('onnxscript')
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'weights')
    out = tmp_path / 'out.onnx'
    if kind == 'hardlink_to_checkpoint':
        os.link(ckpt, out)
    elif kind == 'symlink_to_config':
        os.symlink(TINY_COCO, out)
    elif kind == 'fifo':
        os.mkfifo(out)
    else:
        out.mkdir()
    assert tool.run([TINY_COCO, str(ckpt), '--out', str(out)]) == 2
    err = capsys.readouterr().err
    want = {'hardlink_to_checkpoint': 'is the input', 'symlink_to_config': 'is the input',
            'fifo': 'not a regular file', 'directory': 'is a directory'}[kind]
    assert want in err and len(err.strip().splitlines()) == 1, err
    assert ckpt.read_bytes() == b'weights'


def test_missing_onnx_names_the_extra(tool, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, 'onnx', None)
    assert tool.run([TINY_COCO, TINY_COCO, '--out', str(tmp_path / 'x.onnx')]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: onnx is not installed (needed to export): pip install 'logocap-mm[deploy]'")


@pytest.mark.parametrize('kind', ['symlink_to_fp32', 'hardlink_to_calibration_image'])
def test_int8_out_is_never_an_input(tmp_path, kind):
    pytest.importorskip('onnxruntime')
    from logocap_mm.deploy.quantize import quantize_int8
    fp32 = tmp_path / 'fp32.onnx'
    fp32.write_bytes(b'fp32 graph')
    calib = tmp_path / 'calib'
    calib.mkdir()
    (calib / 'a.jpg').write_bytes(b'image')
    out = tmp_path / 'int8.onnx'
    if kind == 'symlink_to_fp32':
        os.symlink(fp32, out)
    else:
        os.link(calib / 'a.jpg', out)
    with pytest.raises(ValueError, match='is the input'):
        quantize_int8(str(fp32), str(out), str(calib))
    assert fp32.read_bytes() == b'fp32 graph' and (calib / 'a.jpg').read_bytes() == b'image'
