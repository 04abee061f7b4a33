# Copyright (c) logocap_mm contributors.
"""LOGO-CAP layers: Attentive Normalization and the CMP module (both in MMPose's MODELS)."""
from .attentive_norm import LogoCapAttnBatchNorm2d
from .cmp import LogoCapCMP

__all__ = ['LogoCapAttnBatchNorm2d', 'LogoCapCMP']
