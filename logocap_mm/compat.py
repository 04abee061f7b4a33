"""Environment shims for the pinned OpenMMLab stack, kept in one place.

Importing this module (``import logocap_mm`` does it first) does four things:

1. **Checks numpy**: xtcocotools 1.14.3 wheels (used by MMPose's bottom-up mask transform
   and by CocoMetric) are built against numpy 1.x; under numpy 2 they fail with
   ``ValueError: numpy.dtype size changed``. We turn that into a clear error with the fix.
2. **Installs an ``mmcv._ext`` stand-in when the real one is missing** (mmcv-lite). MMPose
   imports ``mmcv.ops`` at module level in a few heads, so ``mmpose.models`` would not import
   without it. LOGO-CAP needs no compiled op; any op that is actually *called* raises a
   ``NotImplementedError`` that says which op needs full mmcv.
3. **Allow-lists the few types mmengine's Runner puts into checkpoints**, for
   ``torch.load(weights_only=True)`` (the default since torch 2.6), *only while mmengine's
   checkpoint loader runs* (:mod:`logocap_mm.safe_load`), so ``mim test``, ``--resume``,
   ``load_from`` and ``MMPoseInferencer`` load our checkpoints without the insecure
   ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` and torch's process-wide allow-list stays as it was.
   Object / structured numpy dtypes and anything else a pickle asks for (e.g. ``os.system``)
   are refused.
4. **Lets mmengine's CPU distributed launch work** (:func:`allow_cpu_distributed`).
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


def register_safe_globals():
    """Scope the checkpoint allow-list to checkpoint loading (see :mod:`logocap_mm.safe_load`).

    mmengine's ``CheckpointLoader.load_checkpoint`` (``load_from``, ``--resume``, ``mim test``,
    the inferencer, ``tools/demo.py``) runs inside
    :func:`~logocap_mm.safe_load.checkpoint_safe_globals`, and loaded ``HistoryBuffer`` state can no longer rewrite the class-wide statistics table.
    torch's process-wide allow-list is left unchanged.

    Returns:
        list: the entries allow-listed while a checkpoint loads.
    """
    from .safe_load import (install_history_buffer_guard, install_scoped_checkpoint_loading,
                            safe_global_entries)
    install_scoped_checkpoint_loading()
    install_history_buffer_guard()
    SAFE_GLOBALS[:] = safe_global_entries()
    return list(SAFE_GLOBALS)


SAFE_GLOBALS = []


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
