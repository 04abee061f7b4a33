"""Kept import path: the module lives in the torch-free runtime (:mod:`logocap_rt.draw`)."""
from logocap_rt.draw import *  # noqa: F401,F403
from logocap_rt.draw import __all__  # noqa: F401
