"""Global contextual adaptation (LOGO-CA) as a module: the plain path (training, reference,
export) and the fast path (test), plus the 'partial' alternative.

Frames: ``heatmaps_up`` (B, K, H, W) keypoint heatmaps upsampled to the input canvas I;
poses, keypoints (x, y) in I. No parameters (the KAMs come from the local adaptation).
"""
from typing import Optional, Tuple

import torch.nn as nn
from mmpose.registry import MODELS
from torch import Tensor

from logocap_mm.models.utils.global_adapt import (gaussian_window, global_adaptation,
                                                  kam_convolution, partial_decode,
                                                  sample_windows)

__all__ = ['LogoCapGlobalAdaptation']


@MODELS.register_module()
class LogoCapGlobalAdaptation(nn.Module):
    """LOGO-CA: S x S windows, Gaussian prior, KAM convolution, top-2 decode.

    Args:
        window_size (int): S (97, odd). window_sigma (float): Gaussian σ (16).
        convex_lambda (float): weight of the best response in the top-2 average (0.75).
        fast (bool): default path of :meth:`forward` (the fast one is numerically equal).
    """

    def __init__(self, window_size: int = 97, window_sigma: float = 16.,
                 convex_lambda: float = 0.75, fast: bool = True):
        super().__init__()
        self.window_size = window_size
        self.window_sigma = float(window_sigma)
        self.convex_lambda = float(convex_lambda)
        self.fast = fast

    # ---------------------------------------------------------------- plain pieces
    def windows(self, heatmaps_up: Tensor, poses: Tensor) -> Tensor:
        """Gaussian-weighted windows (B, T, K, S, S); differentiable w.r.t. the maps."""
        S = self.window_size
        return sample_windows(heatmaps_up, poses, S) * gaussian_window(
            S, self.window_sigma, device=heatmaps_up.device, dtype=heatmaps_up.dtype)

    @staticmethod
    def response(windows: Tensor, kams: Tensor) -> Tensor:
        """Response R (..., K, S, S) of the windows to their KAMs (..., K, k, k)."""
        return kam_convolution(windows, kams)

    # ---------------------------------------------------------------- decode
    def forward(self, heatmaps_up: Tensor, poses: Tensor, kams: Tensor,
                valid: Optional[Tensor] = None,
                fast: Optional[bool] = None, per_slot: bool = False) -> Tuple[Tensor, Tensor]:
        """(B, K, H, W), (B, T, K, 2), clamped (B, T, K, k, k) -> keypoints (B, T, K, 2) in I
        and values (B, T, K). ``valid`` (B, T): slots to compute (others return (P0, 0));
        ``fast``: None = ``self.fast``. ``valid=None, fast=False`` has no host sync.
        ``per_slot`` (plain path): the KAM convolution as a loop over the T slots (same
        values; an exported graph with a data-dependent T then costs in proportion to T)."""
        return global_adaptation(heatmaps_up, poses, kams, size=self.window_size,
                                 sigma=self.window_sigma, lam=self.convex_lambda,
                                 fast=self.fast if fast is None else fast, valid=valid,
                                 per_slot=per_slot)

    @staticmethod
    def partial(kem: Tensor, kams: Tensor) -> Tuple[Tensor, Tensor]:
        """'partial': per keypoint the KEM point with the largest clamped KAM (first
        maximum in i*s + j order). (B, T, s, s, K, 2), (B, T, K, s, s) -> (B, T, K, 2),
        (B, T, K)."""
        return partial_decode(kem, kams)
