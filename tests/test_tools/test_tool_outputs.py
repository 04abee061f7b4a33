"""The analysis, device and benchmark tools write through the shared output rules
(:mod:`logocap_rt.outputs`): an output that is an input (also through a link), a directory
or a FIFO is refused with a ``ValueError`` before any model runs, and a failed write leaves
no file behind."""
import json
import os
import stat

import pytest

from logocap_mm.testing import TEST_TINY_CONFIG, load_tool
from logocap_rt.outputs import InputSet


def _make(kind, path, target=None):
    """Make ``path`` a FIFO, a directory, or a symlink / hard link to ``target``."""
    if kind == 'fifo':
        os.mkfifo(path)
    elif kind == 'directory':
        os.mkdir(path)
    elif kind == 'symlink':
        os.symlink(target, path)
    else:
        os.link(target, path)


WANT = dict(fifo='not a regular file', directory='is a directory', symlink='is the input',
            hardlink='is the input')


# ------------------------------------------------------------------------ kem_upper_bound
@pytest.fixture(scope='module')
def kem():
    return load_tool('tools/analysis/kem_upper_bound.py', 'kem_upper_bound_outputs')


def test_kem_results_written_atomically_and_sorted(kem, tmp_path):
    summary = dict(images=2, ap=dict(none=0.25, upper=0.5, full=0.375), b=1, a=[1, 2])
    preds = tmp_path / 'preds'
    preds.mkdir()
    (preds / 'preds_full.keypoints.json').write_text('[]')
    out = tmp_path / 'out'
    paths = kem.write_results(str(out), summary, 'title', InputSet(), str(preds))
    text = (out / 'kem_upper_bound.json').read_text()
    assert json.loads(text) == summary and text.index('"a"') < text.index('"b"')
    assert (out / 'kem_upper_bound.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert (out / 'preds_full.keypoints.json').read_text() == '[]'
    assert sorted(os.listdir(out)) == ['kem_upper_bound.json', 'kem_upper_bound.png',
                                       'preds_full.keypoints.json']
    assert paths['json'] == str(out / 'kem_upper_bound.json')


@pytest.mark.parametrize('kind,name', [('fifo', 'kem_upper_bound.json'),
                                       ('directory', 'kem_upper_bound.png'),
                                       ('symlink', 'kem_upper_bound.json'),
                                       ('hardlink', 'preds_none.keypoints.json')])
def test_kem_outputs_refused_before_the_model_is_built(kem, tmp_path, kind, name):
    ckpt = tmp_path / 'ckpt.pth'
    ckpt.write_bytes(b'not a checkpoint: never loaded')
    out = tmp_path / 'out'
    out.mkdir()
    _make(kind, out / name, ckpt)
    with pytest.raises(ValueError, match=WANT[kind]):
        kem.main([TEST_TINY_CONFIG, str(ckpt), '--out-dir', str(out)])
    assert ckpt.read_bytes() == b'not a checkpoint: never loaded'
    assert os.listdir(out) == [name]
    (tmp_path / 'file').write_text('x')
    with pytest.raises(ValueError, match='exists and is not a directory'):
        kem.main([TEST_TINY_CONFIG, str(ckpt), '--out-dir', str(tmp_path / 'file')])


# ------------------------------------------------------------------------ device tools
@pytest.mark.parametrize('kind', ['fifo', 'symlink'])
def test_timing_out_refused_before_timing(tmp_path, kind):
    tool = load_tool('tools/device/timing.py', 'device_timing_outputs')
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(f'_base_ = [{TEST_TINY_CONFIG!r}]\n')
    out = tmp_path / 't.json'
    _make(kind, out, cfg)
    with pytest.raises(ValueError, match=WANT[kind]):
        tool.main(['--config', str(cfg), '--device', 'cpu', '--out', str(out),
                   '--input-size', '64', '--batch-size', '1', '--persons', '1',
                   '--repeats', '1', '--warmup', '0', '--precisions', 'fp32',
                   '--formats', 'contiguous'])
    assert stat.S_ISFIFO(os.lstat(out).st_mode) if kind == 'fifo' else \
        cfg.read_text() == f'_base_ = [{TEST_TINY_CONFIG!r}]\n'


def test_checks_json_failed_write_leaves_nothing_and_refuses_a_directory(tmp_path):
    tool = load_tool('tools/device/checks.py', 'device_checks_outputs')
    loop = {}
    loop['self'] = loop  # json raises midway
    with pytest.raises(ValueError, match='Circular reference'):
        tool.write_json(str(tmp_path / 'c.json'), dict(a=1, b=loop))
    assert os.listdir(tmp_path) == []
    tool.write_json(str(tmp_path / 'new' / 'c.json'), dict(a=1, t=tmp_path))
    assert json.loads((tmp_path / 'new' / 'c.json').read_text()) == dict(a=1, t=str(tmp_path))
    (tmp_path / 'd.json.bench.json').mkdir()
    with pytest.raises(ValueError, match='is a directory'):
        tool.main(['--device', 'cpu', '--out', str(tmp_path / 'd.json'), '--skip', 'pytest',
                   'mim_train', 'timing', 'benchmark'])
    assert not (tmp_path / 'd.json').exists()


# ------------------------------------------------------------------------ benchmarks
def test_benchmark_peak_out_is_not_an_onnx_input(tmp_path):
    tool = load_tool('tools/benchmark_peak.py', 'benchmark_peak_outputs')
    net = tmp_path / 'net.onnx'
    net.write_bytes(b'graph')
    with pytest.raises(ValueError, match='is the input'):
        tool.main([TEST_TINY_CONFIG, '--input-size', '64', '--repeats', '1',
                   '--min-time', '0.01', '--onnx', f'x={net}', '--out', str(net)])
    assert net.read_bytes() == b'graph'


@pytest.mark.parametrize('kind', ['hardlink', 'directory'])
def test_eval_onnx_out_refused_before_evaluation(tmp_path, kind):
    tool = load_tool('tools/deploy/eval_onnx.py', 'eval_onnx_outputs')
    net = tmp_path / 'net.onnx'
    net.write_bytes(b'graph')
    out = tmp_path / 'r.json'
    _make(kind, out, net)
    with pytest.raises(ValueError, match=WANT[kind]):
        tool.main([TEST_TINY_CONFIG, str(net), '--out', str(out)])
    assert net.read_bytes() == b'graph'


@pytest.mark.parametrize('name', ['bench_onnx', 'bench_runtime'])
@pytest.mark.parametrize('kind', ['symlink', 'fifo'])
def test_deploy_bench_out_refused_before_the_model_is_built(tmp_path, name, kind):
    tool = load_tool(f'tools/deploy/{name}.py', f'{name}_outputs')
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(f'_base_ = [{TEST_TINY_CONFIG!r}]\n')
    out = tmp_path / 'b.json'
    _make(kind, out, cfg)
    # --persons 2 is refused later, once the model is built: the --out check comes first
    with pytest.raises(ValueError, match=WANT[kind]):
        tool.main([str(cfg), '--input-size', '64', '--persons', '2', '--repeats', '1',
                   '--out', str(out)])
    assert cfg.read_text() == f'_base_ = [{TEST_TINY_CONFIG!r}]\n'
