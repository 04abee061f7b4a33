"""The test-time canvas geometry; it lives in the torch-free runtime package
(:mod:`logocap_rt.geometry`) so that ``LogoCapResize`` and the ONNX runtime share one
implementation. This module keeps the old import path."""
from logocap_rt.geometry import *  # noqa: F401,F403
from logocap_rt.geometry import __all__  # noqa: F401
