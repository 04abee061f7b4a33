"""Kept import path: the module lives in the torch-free runtime (:mod:`logocap_rt.postprocess`)."""
from logocap_rt.postprocess import *  # noqa: F401,F403
from logocap_rt.postprocess import __all__  # noqa: F401
