"""tools/deploy/bench_start.py: the runtime's start-up against a bare onnxruntime + cv2
script, in fresh processes; the runtime process imports none of torch / mm* / logocap_mm."""
import importlib.util
import json
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))  # tests/<group>/<file>


def _tool():
    spec = importlib.util.spec_from_file_location(
        'bench_start_under_test', osp.join(ROOT, 'tools', 'deploy', 'bench_start.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_start_times_and_no_heavy_import(tiny_onnx, tmp_path):
    tool = _tool()
    out = tmp_path / 'start.json'
    res = tool.main([tiny_onnx, '--rounds', '1', '--threads', '1', '--out', str(out)])
    assert res['heavy_modules_imported'] == []
    assert all(len(v) == 1 and v[0] > 0 for v in res['samples_s'].values())
    assert res['runtime_extra_s'] == pytest.approx(res['best_s']['runtime'] -
                                                   res['best_s']['bare'])
    assert json.loads(out.read_text())['best_s'] == res['best_s']
    with pytest.raises(ValueError, match='is the input'):  # never over an input
        tool.main([tiny_onnx, '--rounds', '1', '--out', tiny_onnx])
    with pytest.raises(SystemExit):
        tool.main([tiny_onnx, '--rounds', '0'])
