"""logocap_mm: LOGO-CAP (CVPR 2022) as an MMPose 1.x plugin.

``import logocap_mm`` (or ``custom_imports=dict(imports=['logocap_mm'])`` in a config)
registers every ``LogoCap*`` module into MMPose's registries. :mod:`logocap_mm.compat`
runs first: numpy check, the ``mmcv._ext`` stand-in for mmcv-lite, and the
checkpoint-scoped allow-list for ``torch.load(weights_only=True)`` (active only while
mmengine's checkpoint loader runs; torch's process-wide allow-list is unchanged).
"""
from . import compat  # noqa: F401  (must run before anything imports mmpose.models)
from . import codecs, datasets, models  # noqa: F401,E402

__version__ = '0.1.0'
__all__ = ['codecs', 'datasets', 'models', 'compat', '__version__']
