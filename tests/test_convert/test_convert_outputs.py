"""The converter's output rules (shared with every tool: logocap_rt.outputs) and its checks of
the converted weights (dtype and finiteness, named by key)."""
import os
import os.path as osp
import stat

import pytest
import torch

import logocap_mm  # noqa: F401
from logocap_mm.convert import ConversionError, convert_checkpoint
from logocap_mm.convert.io import check_weights


@pytest.fixture(scope='module')
def ref_sd(fixture_dir):
    return torch.load(osp.join(fixture_dir, 'ref_model.pth'), map_location='cpu',
                      weights_only=True)


@pytest.mark.parametrize('kind', ['fifo', 'link_to_dev_null'])
def test_dst_that_is_not_a_regular_file_is_refused(fixture_dir, tmp_path, kind):
    dst = tmp_path / 'dst.pth'
    if kind == 'fifo':
        os.mkfifo(dst)
    else:
        os.symlink(os.devnull, dst)
    with pytest.raises(ValueError, match=r'DST .*dst\.pth exists and is not a regular file'):
        convert_checkpoint(osp.join(fixture_dir, 'ref_model.pth'), str(dst))
    if kind == 'fifo':
        assert stat.S_ISFIFO(os.lstat(dst).st_mode)
    else:
        assert os.readlink(dst) == os.devnull
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    assert os.listdir(tmp_path) == ['dst.pth']  # no temporary file left


@pytest.mark.parametrize('bad', ['float16', 'int64', 'bool', 'nan', 'inf'])
def test_weights_of_another_dtype_or_not_finite_are_refused(ref_sd, tmp_path, bad):
    sd = dict(ref_sd.get('state_dict', ref_sd))
    key = next(k for k in sd if k.endswith('.weight'))
    w = sd[key]
    if bad in ('nan', 'inf'):
        w = w.clone()
        w.view(-1)[3] = float(bad)
    else:
        w = w.to(getattr(torch, bad))
    sd[key] = w
    src = tmp_path / 'src.pth'
    torch.save({'state_dict': sd}, src)
    msg = (r'1 non-finite value\(s\)' if bad in ('nan', 'inf')
           else f'dtype {bad}, the model needs float32')
    with pytest.raises(ConversionError, match=msg):
        convert_checkpoint(str(src), str(tmp_path / 'out.pth'))
    assert not (tmp_path / 'out.pth').exists()


def test_check_weights_names_every_bad_key():
    ok = {'a.weight': torch.zeros(2), 'bn.num_batches_tracked': torch.tensor(3)}
    check_weights(ok)
    bad = dict(ok, **{'b.weight': torch.zeros(2, dtype=torch.float64),
                      'bn.num_batches_tracked': torch.tensor(3.0)})
    with pytest.raises(ConversionError) as e:
        check_weights(bad)
    assert 'b.weight: dtype float64' in str(e.value)
    assert 'bn.num_batches_tracked: dtype float32, the model needs int64' in str(e.value)


def test_default_base_config_is_never_inside_site_packages(monkeypatch, tmp_path):
    """In a clone the default base is the clone's config; where the package is installed
    without the clone there is no default (ValueError asking for --base)."""
    from logocap_mm.convert import config_text
    path = config_text.default_base_config()
    assert osp.isfile(path) and 'site-packages' not in path
    fake = tmp_path / 'site-packages' / 'logocap_mm' / 'convert' / 'config_text.py'
    monkeypatch.setattr(config_text, '__file__', str(fake))
    with pytest.raises(ValueError, match='pass --base'):
        config_text.default_base_config()


def test_missing_torch_names_the_extra(capsys, monkeypatch, tmp_path):
    import sys

    from logocap_mm.testing import load_tool
    tool = load_tool('tools/convert_official_ckpt.py', 'convert_tool_missing')
    monkeypatch.setitem(sys.modules, 'mmpose', None)
    assert tool.main([str(tmp_path / 'a.pth'), str(tmp_path / 'b.pth')]) == 1
    assert capsys.readouterr().err.strip() == (
        "convert_official_ckpt: error: mmpose is not installed (needed by the converter): "
        "pip install 'logocap-mm[mmpose,lite]'")
