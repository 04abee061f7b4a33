# Copyright (c) logocap_mm contributors.
"""Pure tensor utilities of LOGO-CAP (KEM grids, sampling, global adaptation, matching, NMS)."""
from .global_adapt import (gaussian_window, global_adaptation, kam_convolution,
                           partial_decode, sample_windows, top2_decode)
from .kem import expansion_rates, kem_offsets, local_kem_grid
from .matching import kem_oks, match_kem_targets
from .pose_nms import pose_nms
from .sampling import sample_bilinear, sample_kem_latents

__all__ = [
    'expansion_rates', 'kem_offsets', 'local_kem_grid', 'sample_bilinear',
    'sample_kem_latents', 'gaussian_window', 'sample_windows', 'kam_convolution',
    'top2_decode', 'global_adaptation', 'partial_decode', 'kem_oks',
    'match_kem_targets', 'pose_nms'
]
