"""The ``mmcv._ext`` stand-in is in place at interpreter start in a mmcv-lite environment
(``.pth`` file written by tools/install_env.sh), without the user importing logocap_mm."""
import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHIM = osp.join(ROOT, 'logocap_mm', 'mmcv_ext_shim.py')
TINY_COCO = osp.join(ROOT, 'tests', 'configs', 'tiny_coco.py')


def _real_ext_present():
    import importlib.machinery
    import mmcv
    d = osp.dirname(mmcv.__file__)
    return any(f.startswith('_ext') and f.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
               for f in os.listdir(d))


def _run(code, site_dir=None, timeout=600):
    """Fresh interpreter with this checkout first on the path (not its logocap_mm import)."""
    pre = f'import site; site.addsitedir({site_dir!r}); ' if site_dir else ''
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, '-c', pre + code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def site_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('site'))
    r = subprocess.run([sys.executable, SHIM, d], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert osp.isfile(osp.join(d, 'logocap_mm_mmcv_ext.pth'))
    return d


def test_pth_is_lazy_and_scoped(site_dir):
    r = _run('import sys, importlib.util as u; '
             'assert not {"torch", "mmcv", "logocap_mm", "numpy"} & set(sys.modules), '
             'sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "mmcv")); '
             'f = [x for x in sys.meta_path if type(x).__name__ == "MmcvExtFinder"]; '
             'assert len(f) == 1 and sys.meta_path[-1] is f[0]; '
             'assert f[0].find_spec("mmcv") is None and f[0].find_spec("mmcv.ops") is None; '
             'print("OK")', site_dir)
    assert r.returncode == 0 and 'OK' in r.stdout, r.stderr[-2000:]


def test_without_pth_mmpose_apis_needs_the_plugin():
    if _real_ext_present():
        pytest.skip('full mmcv: mmpose.apis imports without any stand-in')
    # hide the hook if this environment has it installed (make's venv does)
    hide = ('import sys; sys.meta_path[:] = [f for f in sys.meta_path '
            "if 'mmcv_ext' not in type(f).__module__]; ")
    r = _run(hide + 'from mmpose.apis import MMPoseInferencer')
    assert r.returncode != 0 and "No module named 'mmcv._ext'" in r.stderr


def test_fresh_interpreter_inferencer_and_init_model_without_import(site_dir, tmp_path):
    """Only the config's custom_imports load logocap_mm."""
    img = osp.join(ROOT, 'tests', 'data', 'coco', '000000197388.jpg')
    code = (
        'import sys\n'
        'from mmpose.apis import MMPoseInferencer, init_model\n'
        'assert "logocap_mm" not in sys.modules\n'
        f'model = init_model({TINY_COCO!r}, None, device="cpu")\n'
        'assert type(model).__name__ == "LogoCapPoseEstimator"\n'
        f'inf = MMPoseInferencer(pose2d={TINY_COCO!r}, device="cpu", show_progress=False)\n'
        f'res = next(inf({img!r}))\n'
        'import mmcv._ext, logocap_mm.compat as c\n'
        'print("STUB", getattr(mmcv._ext, "__logocap_stub__", False), c.MMCV_EXT_IS_STUB)\n'
        'print("N", len(res["predictions"][0]))\n')
    r = _run(code, site_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    stub = not _real_ext_present()
    assert f'STUB {stub} {stub}' in r.stdout


def test_stub_inactive_when_real_extension_is_found(tmp_path, site_dir):
    """A real ``mmcv._ext`` found by another finder wins over the stand-in."""
    fake = tmp_path / 'fakeroot' / 'mmcv'
    fake.mkdir(parents=True)
    (fake / '__init__.py').write_text('')
    (fake / '_ext.py').write_text('REAL = True\n')
    r = _run(f'import sys; sys.path.insert(0, {str(fake.parent)!r}); import mmcv._ext as e; '
             'print("REAL", getattr(e, "REAL", False), getattr(e, "__logocap_stub__", False))',
             site_dir)
    assert r.returncode == 0, r.stderr
    assert 'REAL True False' in r.stdout


def test_install_env_writes_pth_only_for_lite():
    with open(osp.join(ROOT, 'tools', 'install_env.sh')) as f:
        sh = f.read()
    lite = sh[sh.index('[ "$MMCV" = lite ]'):]
    assert 'logocap_mm/mmcv_ext_shim.py' in lite and 'site.getsitepackages' in lite
    assert 'rm -f' in sh and 'logocap_mm_mmcv_ext.pth' in sh
