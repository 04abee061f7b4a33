"""Kept import path: the module lives in the torch-free runtime (:mod:`logocap_rt.metadata`)."""
from logocap_rt.metadata import *  # noqa: F401,F403
from logocap_rt.metadata import __all__  # noqa: F401
