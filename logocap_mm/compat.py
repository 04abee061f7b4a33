"""Environment shims for the pinned OpenMMLab stack, kept in one place.

Importing this module (``import logocap_mm`` does it first) does four things:

1. **Checks numpy**: xtcocotools 1.14.3 wheels (used by MMPose's bottom-up mask transform
   and by CocoMetric) are built against numpy 1.x; under numpy 2 they fail with
   ``ValueError: numpy.dtype size changed``. We turn that into a clear error with the fix.
2. **Installs an ``mmcv._ext`` stand-in when the real one is missing** (mmcv-lite). MMPose
   imports ``mmcv.ops`` at module level in a few heads, so ``mmpose.models`` would not import
   without it. LOGO-CAP needs no compiled op; any op that is actually *called* raises a
   ``NotImplementedError`` that says which op needs full mmcv.
3. **Allow-lists the few types mmengine's Runner puts into checkpoints** for
   ``torch.load(weights_only=True)`` (the default since torch 2.6), so ``mim test``,
   ``--resume``, ``load_from`` and ``MMPoseInferencer`` load our checkpoints without the
   insecure process-wide ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``. Anything else a pickle asks
   for (e.g. ``os.system``) is still refused by torch.
"""

__all__ = ['check_numpy', 'install_mmcv_ext_stub', 'register_safe_globals', 'allow_cpu_distributed',
           'MMCV_EXT_IS_STUB', 'SAFE_GLOBALS']

MMCV_EXT_IS_STUB = False


def check_numpy():
    """Fail early, and clearly, on a numpy that the pinned stack cannot use."""
    import numpy as np
    major = int(np.__version__.split('.')[0])
    if major < 2:
        return
    try:
        import xtcocotools._mask  # noqa: F401
    except (ValueError, ImportError, AttributeError) as e:
        raise ImportError(
            f'logocap_mm: numpy {np.__version__} is installed, but the xtcocotools build '
            f'in this environment needs numpy 1.x ({type(e).__name__}: {e}). '
            'Fix: `pip install "numpy<2" "opencv-python<4.12"` (the pins of '
            'tools/install_env.sh), or rebuild xtcocotools for numpy 2 '
            '(see README, "Environment").') from e


def install_mmcv_ext_stub():
    """Register a stand-in ``mmcv._ext`` if mmcv has no compiled ops (mmcv-lite).

    The stand-in lives in :mod:`logocap_mm.mmcv_ext_shim` (also loaded at interpreter start
    by the ``.pth`` file of a mmcv-lite environment built by ``tools/install_env.sh``).

    Returns:
        bool: True if the stand-in was installed, False if the real extension exists.
    """
    global MMCV_EXT_IS_STUB
    from . import mmcv_ext_shim
    MMCV_EXT_IS_STUB = mmcv_ext_shim.install_stub()
    return MMCV_EXT_IS_STUB


def _safe_global_objects():
    """The types a checkpoint written by mmengine's Runner (and by our converter) holds."""
    import numpy as np
    objs = [np.ndarray, np.dtype]
    # numpy 1.x: numpy.core.multiarray; numpy 2.x: numpy._core.multiarray
    for modname in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        try:
            mod = __import__(modname, fromlist=['_reconstruct'])
        except ImportError:
            continue
        for attr in ('_reconstruct', 'scalar'):
            if hasattr(mod, attr):
                objs.append(getattr(mod, attr))
    # dtype classes (np.dtypes exists from numpy 1.25)
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for name in dir(dtypes):
            if name.endswith('DType'):
                objs.append(getattr(dtypes, name))
    # numpy scalar types that appear as meta values (np.float64(...) etc.)
    for name in ('float64', 'float32', 'float16', 'int64', 'int32', 'int16', 'int8',
                 'uint8', 'bool_'):
        objs.append(getattr(np, name))
    try:
        from mmengine.logging.history_buffer import HistoryBuffer
        objs.append(HistoryBuffer)
    except ImportError:  # pragma: no cover - mmengine is a hard requirement
        pass
    try:
        from mmengine.config import ConfigDict
        objs.append(ConfigDict)
    except ImportError:  # pragma: no cover
        pass
    import collections
    objs.append(collections.OrderedDict)
    objs.append(collections.defaultdict)
    return objs


def _history_buffer_getattr(obj, name):
    """Restricted stand-in for ``builtins.getattr`` during weights-only loading.

    mmengine's ``HistoryBuffer.__getstate__`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')`` etc. Allowing the real ``getattr`` would open the
    door to arbitrary attribute walks (``__globals__`` ...), so this only resolves public
    methods of ``HistoryBuffer`` and refuses everything else.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if (obj is HistoryBuffer and isinstance(name, str) and not name.startswith('_')
            and callable(getattr(HistoryBuffer, name, None))):
        return getattr(HistoryBuffer, name)
    import pickle
    raise pickle.UnpicklingError(
        f'logocap_mm: refusing getattr({obj!r}, {name!r}) in a weights-only checkpoint load '
        '(only HistoryBuffer statistics methods are allowed)')


SAFE_GLOBALS = []


def register_safe_globals():
    """Allow-list the checkpoint types for ``torch.load(weights_only=True)``.

    Only types are added (numpy arrays/scalars/dtypes, mmengine's ``HistoryBuffer`` and
    ``ConfigDict``, ``OrderedDict``), plus a restricted ``getattr`` that resolves nothing
    but ``HistoryBuffer``'s statistics methods; no callable that could run code is allowed.
    """
    import torch
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # torch < 2.4: weights_only is not the default there
        return []
    objs = _safe_global_objects()
    objs.append((_history_buffer_getattr, 'builtins.getattr'))
    add(objs)
    SAFE_GLOBALS[:] = objs
    return objs


def allow_cpu_distributed():
    """Let mmengine's ``pytorch`` launcher start on machines without CUDA.

    mmengine 0.10's ``init_dist('pytorch')`` calls ``torch.cuda.set_device(LOCAL_RANK)``
    unconditionally, which raises "Found no NVIDIA driver" on CPU-only machines. When (and
    only when) no CUDA device exists, that call is made a no-op, so that ``torchrun`` +
    ``--launcher pytorch`` with ``--cfg-options env_cfg.dist_cfg.backend=gloo
    model_wrapper_cfg.device_ids=None`` trains with gloo on CPU. Nothing changes where CUDA
    is available.

    Returns:
        bool: True if the no-op was installed.
    """
    import torch
    if torch.cuda.is_available() or getattr(torch.cuda.set_device, '_logocap_noop', False):
        return False

    def set_device(device):  # noqa: ARG001 - no CUDA device to select
        return None

    set_device._logocap_noop = True
    set_device.__doc__ = 'logocap_mm: no-op on a machine without CUDA (CPU distributed runs).'
    torch.cuda.set_device = set_device
    return True


check_numpy()
install_mmcv_ext_stub()
register_safe_globals()
allow_cpu_distributed()
