"""Kept import path: the module lives in the torch-free runtime (:mod:`logocap_rt.model`)."""
from logocap_rt.model import *  # noqa: F401,F403
from logocap_rt.model import __all__  # noqa: F401
