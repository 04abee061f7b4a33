# Copyright (c) logocap_mm contributors.
"""Low-level helpers shared by the codecs and the models (no model or head imports)."""
from .bilinear import axis_weights, bilinear_combine
from .config import strip_pretrained

__all__ = ['axis_weights', 'bilinear_combine', 'strip_pretrained']
