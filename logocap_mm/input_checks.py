"""Image-array checks; they live in the torch-free runtime package
(:mod:`logocap_rt.pixels`) so that the PyTorch and ONNX paths apply one rule set. This
module keeps the old import path."""
from logocap_rt.pixels import *  # noqa: F401,F403
from logocap_rt.pixels import __all__  # noqa: F401
