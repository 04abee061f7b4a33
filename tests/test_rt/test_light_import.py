"""The runtime package imports nothing of the training stack, even where it is installed."""
import subprocess
import sys

from logocap_mm.testing import REPO_ROOT as ROOT

HEAVY = ('torch', 'torchvision', 'mmengine', 'mmcv', 'mmpose', 'mmdet', 'logocap_mm',
         'openvino')  # the OpenVINO backend is imported only when chosen


def test_runtime_imports_no_torch_or_openmmlab_module():
    code = ('import sys, logocap_rt, logocap_rt.cli, logocap_rt.model, logocap_rt.geometry, '
            'logocap_rt.pixels, logocap_rt.metadata, logocap_rt.postprocess, logocap_rt.draw, '
            'logocap_rt.outputs, logocap_rt.images, logocap_rt.video, logocap_rt.deps, logocap_rt.checks, logocap_rt.tracking, logocap_rt.smoothing, '
            'logocap_rt.backends\n'
            # top-level packages only: the mmcv-lite stand-in's start-up hook (stdlib only)
            # registers 'logocap_mm.mmcv_ext_shim' without importing logocap_mm
            f'print(sorted(m for m in {HEAVY!r} if m in sys.modules))')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == '[]', r.stdout


def test_cli_help_is_fast_and_light():
    r = subprocess.run([sys.executable, '-m', 'logocap_rt', '--help'], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and '--out-dir' in r.stdout, r.stderr[-2000:]
