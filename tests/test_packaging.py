"""Packaging: registration through custom_imports, mmcv-lite stand-in, safe checkpoints."""
import inspect
import os
import pickle
import pkgutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from logocap_mm.testing import REPO_ROOT as ROOT


def _run(code, **kw):
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300, **kw)


def _logocap_classes():
    """Every class named LogoCap* defined anywhere in the package (except the ONNX deploy
    package, whose runtime classes work without MMPose and are not MMPose modules)."""
    import logocap_mm
    found = {}
    for info in pkgutil.walk_packages(logocap_mm.__path__, 'logocap_mm.'):
        if info.name.startswith('logocap_mm.deploy'):
            continue
        mod = __import__(info.name, fromlist=['_'])
        for name, obj in vars(mod).items():
            if (inspect.isclass(obj) and name.startswith('LogoCap')
                    and obj.__module__ == info.name):
                found[name] = info.name
    return found


def test_custom_imports_registers_every_logocap_module(tmp_path):
    classes = _logocap_classes()
    # the plugin's core modules must exist once the head issue landed; the list grows
    assert classes, 'no LogoCap* class found in the package'
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("custom_imports = dict(imports=['logocap_mm'], "
                   "allow_failed_imports=False)\ndefault_scope = 'mmpose'\n")
    names = sorted(classes)
    r = _run(f"""
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        cfg = Config.fromfile({str(cfg)!r})
        init_default_scope(cfg.default_scope)
        from mmpose import registry as R
        regs = [R.MODELS, R.KEYPOINT_CODECS, R.TRANSFORMS, R.METRICS, R.DATASETS,
                R.HOOKS, R.VISUALIZERS]
        missing = [n for n in {names!r} if not any(r.get(n) is not None for r in regs)]
        print('MISSING', missing)
        """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'MISSING []' in r.stdout, r.stdout


def test_config_without_custom_imports_does_not_see_plugin(tmp_path):
    """Control: the registry lookup above really depends on the import."""
    r = _run("""
        from mmpose.registry import KEYPOINT_CODECS
        print('FOUND', KEYPOINT_CODECS.get('LogoCapCodec') is not None)
        """)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'FOUND False' in r.stdout


def test_mmpose_models_importable_and_stub_errors_clearly():
    r = _run("""
        import logocap_mm
        import mmpose.models, mmpose.apis  # both need mmcv.ops under mmcv-lite
        from logocap_mm import compat
        print('STUB', compat.MMCV_EXT_IS_STUB)
        if compat.MMCV_EXT_IS_STUB:
            import mmcv._ext as ext
            try:
                ext.deform_conv_forward(1, 2)
            except NotImplementedError as e:
                print('ERR', e)
        """)
    assert r.returncode == 0, r.stderr[-3000:]
    if 'STUB True' in r.stdout:
        assert 'ERR mmcv op "deform_conv_forward" needs full mmcv' in r.stdout


def test_numpy_2_gives_clear_error(monkeypatch):
    from logocap_mm import compat
    monkeypatch.setattr(np, '__version__', '2.1.0')
    monkeypatch.setitem(sys.modules, 'xtcocotools._mask', None)  # import -> ImportError
    with pytest.raises(ImportError, match=r'numpy 2\.1\.0 .*numpy<2'):
        compat.check_numpy()


def test_runner_style_checkpoint_loads_with_weights_only(tmp_path):
    import logocap_mm  # noqa: F401  (registers the allow-list)
    from mmengine.logging import HistoryBuffer, MessageHub
    hub = MessageHub.get_instance('logocap_test_hub')
    hub.update_scalar('train/loss', np.float64(0.5))
    hub.update_scalar('train/lr', 0.001)
    hub.update_info('epoch', np.int64(3))
    ckpt = dict(
        meta=dict(epoch=1, iter=4, seed=np.int64(0), hook_msgs=dict(best_score=np.float64(0.1)),
                  dataset_meta=dict(sigmas=np.array([0.1, 0.2], dtype=np.float32))),
        state_dict={'w': torch.ones(2)},
        message_hub=hub.state_dict(),
        optimizer={'state': {}, 'param_groups': [{'lr': 1e-3}]},
    )
    path = tmp_path / 'runner_like.pth'
    torch.save(ckpt, path)
    from mmengine.runner.checkpoint import _load_checkpoint  # load_from / mim test / inferencer
    loaded = _load_checkpoint(str(path), map_location='cpu')  # weights_only=True (torch>=2.6)
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))
    assert loaded['meta']['dataset_meta']['sigmas'].tolist() == pytest.approx([0.1, 0.2])
    assert isinstance(loaded['message_hub']['log_scalars']['train/loss'], HistoryBuffer)


class _Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned',))


def test_malicious_checkpoint_is_refused(tmp_path):
    import logocap_mm  # noqa: F401
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': _Evil()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, map_location='cpu')
    from logocap_mm.safe_load import checkpoint_safe_globals
    with checkpoint_safe_globals(), \
            pytest.raises(pickle.UnpicklingError, match=r'GLOBAL (posix|os)\.system'):
        torch.load(path, map_location='cpu')
    # and the process-wide insecure switch is not set by the plugin
    assert os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD') in (None, '0', '')


class _EvilGetattr:
    """A pickle that walks attributes with getattr (the HistoryBuffer path)."""
    def __init__(self, obj, name):
        self.obj, self.name = obj, name

    def __reduce__(self):
        return (getattr, (self.obj, self.name))


def test_getattr_walk_is_refused(tmp_path):
    import logocap_mm  # noqa: F401
    path = tmp_path / 'evil_getattr.pth'
    from mmengine.logging import HistoryBuffer
    from logocap_mm.safe_load import checkpoint_safe_globals
    for obj, name in [(np.ndarray, 'tofile'), (HistoryBuffer, '__init__'),
                      (HistoryBuffer, 'mro'), (HistoryBuffer, 'register_statistics'),
                      (HistoryBuffer, 'update')]:
        torch.save({'x': _EvilGetattr(obj, name)}, path)
        with checkpoint_safe_globals(), pytest.raises(pickle.UnpicklingError):
            torch.load(path, map_location='cpu')
    # while the legitimate statistics methods resolve (inside checkpoint loading only)
    for name in ('min', 'max', 'current', 'mean'):
        torch.save({'x': _EvilGetattr(HistoryBuffer, name)}, path)
        with checkpoint_safe_globals():
            assert torch.load(path, map_location='cpu')['x'] is getattr(HistoryBuffer, name)
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path, map_location='cpu')


def test_cpu_only_set_device_noop_only_without_cuda():
    r = _run("""
        import torch
        had_cuda = torch.cuda.is_available()
        import logocap_mm
        from logocap_mm import compat
        print('CUDA', had_cuda, 'NOOP', getattr(torch.cuda.set_device, '_logocap_noop', False))
        if not had_cuda:
            print('RET', torch.cuda.set_device(0))
        """)
    assert r.returncode == 0, r.stderr[-2000:]
    if 'CUDA False' in r.stdout:
        assert 'NOOP True' in r.stdout and 'RET None' in r.stdout
    else:
        assert 'NOOP False' in r.stdout


def test_no_product_module_is_named_like_a_test():
    """pytest would collect (and a reader would skip) a product module named ``test_*``."""
    import glob
    found = [p for pkg in ('logocap_mm', 'logocap_rt')
             for p in glob.glob(os.path.join(ROOT, pkg, '**', '*.py'), recursive=True)
             if os.path.basename(p).startswith('test_')]
    assert not found, found
