"""logocap_mm: LOGO-CAP (CVPR 2022) as an MMPose 1.x plugin.

``import logocap_mm`` (or ``custom_imports=dict(imports=['logocap_mm'])`` in a config)
registers every ``LogoCap*`` module into MMPose's registries. :mod:`logocap_mm.compat`
runs first: numpy check, the ``mmcv._ext`` stand-in for mmcv-lite, and the
checkpoint-scoped allow-list for ``torch.load(weights_only=True)`` (active only while
mmengine's checkpoint loader runs; torch's process-wide allow-list is unchanged).

Where torch, mmengine, mmcv or mmpose is not installed (a deployment machine), nothing is
registered and only the torch-free parts are usable: :mod:`logocap_mm.deploy` (the ONNX
Runtime inference), :mod:`logocap_mm.resize_geometry` and :mod:`logocap_mm.input_checks`.
"""
import importlib.util as _util

__version__ = '0.1.0'


def _installed(name: str) -> bool:
    try:
        return _util.find_spec(name) is not None
    except (ImportError, ValueError):  # a finder that refuses the name: not usable here
        return False


HAS_MMPOSE = all(_installed(m) for m in ('torch', 'mmengine', 'mmcv', 'mmpose'))

if HAS_MMPOSE:
    from . import compat  # noqa: F401  (must run before anything imports mmpose.models)
    from . import codecs, datasets, models  # noqa: F401,E402
    __all__ = ['codecs', 'datasets', 'models', 'compat', '__version__']
else:
    __all__ = ['__version__']
