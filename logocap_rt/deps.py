"""One-line messages for optional dependencies that are not installed.

The distribution ``logocap-mm`` ships the runtime and the MMPose plugin with their
dependencies split into extras; :func:`require` imports a module or raises
:class:`MissingDependency` whose message names the ``pip install`` line that brings it.
"""
import importlib
from types import ModuleType

__all__ = ['MissingDependency', 'EXTRA_OF', 'require', 'install_hint']

#: top-level module -> the extra(s) of ``logocap-mm`` that install it
EXTRA_OF = {
    'onnxruntime': 'runtime',
    'openvino': 'openvino',
    'onnx': 'deploy',
    'onnxscript': 'deploy',
    'torch': 'mmpose,lite',
    'torchvision': 'mmpose,lite',
    'mmengine': 'mmpose,lite',
    'mmcv': 'mmpose,lite',
    'mmpose': 'mmpose,lite',
    'cv2': 'runtime',
}


class MissingDependency(ImportError):
    """An optional dependency is not installed; ``str(e)`` is the one-line message."""


def install_hint(module: str, extra: str = None) -> str:
    extra = extra or EXTRA_OF.get(module.split('.')[0], 'full')
    return f"pip install 'logocap-mm[{extra}]'"


def require(module: str, extra: str = None, purpose: str = '') -> ModuleType:
    """``importlib.import_module(module)``, or :class:`MissingDependency` naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        missing = getattr(e, 'name', None) or module
        raise MissingDependency(
            f"{missing} is not installed{' (needed ' + purpose + ')' if purpose else ''}: "
            f"{install_hint(missing if missing.split('.')[0] in EXTRA_OF else module, extra)}"
        ) from None
