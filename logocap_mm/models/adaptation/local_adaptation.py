"""Local adaptation of LOGO-CAP: KEM geometry, embedding sampling and the CMP.

Frames: poses and KEM points are (x, y) in the input canvas **I**; the embedding lives on the
**F** grid (``x_F = x_I / stride``). The module owns the CMP (the only learned part of the
local stage); :meth:`LogoCapLocalAdaptation.kams` is the one place that calls it, for the
training loss and for test-time decoding alike.
"""
from typing import Dict, NamedTuple, Optional, Sequence

import torch
import torch.nn as nn
from mmpose.registry import MODELS
from torch import Tensor

from logocap_mm.models.layers import LogoCapCMP
from logocap_mm.models.precision import current_plan
from logocap_mm.models.utils.kem import expansion_rates, local_kem_grid
from logocap_mm.models.utils.matching import (MATCH_CHUNK_ELEMENTS, KemMatch,
                                              match_kem_chunked)
from logocap_mm.models.utils.sampling import sample_kem_latents

__all__ = ['LogoCapLocalAdaptation', 'LogoCapKemMatcher', 'KemTargets']


class KemTargets(NamedTuple):
    """Training targets of the local KEMs (everything in I; ``B`` images, ``T`` slots).

    ``poses`` (B, T, K, 2) P0; ``kem`` (B, T, s, s, K, 2); ``match``: the
    :class:`~logocap_mm.models.utils.matching.KemMatch` of the slots to the ground truth."""
    poses: Tensor
    kem: Tensor
    match: KemMatch


@MODELS.register_module()
class LogoCapKemMatcher(nn.Module):
    """Training-time matching of the KEM candidates of initial poses to the ground truth
    (no parameters; a module so that forward hooks can observe or replace its in/outputs).

    Args:
        sigmas: (K,) OKS sigmas. gate: instance gate on the shifted-pose OKS (0.5).
        max_elements: element budget of the largest matching intermediate; images with many
            ground-truth people are matched in chunks of people so that memory stays bounded
            (same result; see :func:`~logocap_mm.models.utils.matching.match_kem_chunked`).
    """

    def __init__(self, sigmas: Sequence[float], gate: float = 0.5,
                 max_elements: int = MATCH_CHUNK_ELEMENTS):
        super().__init__()
        if not (0. <= gate <= 1.):
            raise ValueError(f'oks_gate must be in [0, 1], got {gate!r}')
        if isinstance(max_elements, bool) or int(max_elements) != max_elements or \
                max_elements < 1:
            raise ValueError(f'max_elements must be a positive int, got {max_elements!r}')
        self.sigmas = [float(s) for s in sigmas]
        self.gate = float(gate)
        self.max_elements = int(max_elements)

    def forward(self, poses: Tensor, kem: Tensor, gt_kpts: Tensor, gt_vis: Tensor,
                gt_area: Tensor) -> KemTargets:
        """(B, T, K, 2) P0, (B, T, s, s, K, 2) KEMs, GT (B, G, K, 2) / (B, G, K) / (B, G) in I
        -> :class:`KemTargets`."""
        sig = torch.tensor(self.sigmas, device=kem.device, dtype=kem.dtype)
        return KemTargets(poses, kem, match_kem_chunked(kem, gt_kpts, gt_vis, gt_area, sig,
                                                        self.gate, self.max_elements))


@MODELS.register_module()
class LogoCapLocalAdaptation(nn.Module):
    """KEM geometry, embedding sampling and the CMP (KEM latents -> KAMs).

    Args:
        num_keypoints (int): K. embed_channels (int): D of the embedding.
        cmp_channels, cmp_attn_norm, num_affine: the :class:`LogoCapCMP` settings.
        sigmas (Sequence[float]): (K,) OKS sigmas (KEM expansion rates, training matching).
        stride (int): I pixels per F pixel (4).
        kem_size (int): KEM side s (11). kem_radius (float): unscaled half extent (5).
        oks_gate (float): training gate of :class:`LogoCapKemMatcher` (0.5).

    State dict: ``cmp.layers.*`` (the CMP's own keys); the KEM rates are a non-persistent
    buffer.
    """

    def __init__(self, num_keypoints: int, embed_channels: int, sigmas: Sequence[float],
                 cmp_channels: Sequence[int] = (512, 256, 128),
                 cmp_attn_norm: Sequence[bool] = (False, True, False), num_affine: int = 20,
                 stride: int = 4, kem_size: int = 11, kem_radius: float = 5.,
                 oks_gate: float = 0.5):
        super().__init__()
        sigmas = [float(s) for s in sigmas]
        if len(sigmas) != num_keypoints:
            raise ValueError(f'sigmas has {len(sigmas)} entries for num_keypoints='
                             f'{num_keypoints}')
        self.num_keypoints = num_keypoints
        self.stride = stride
        self.kem_size = kem_size
        self.kem_radius = float(kem_radius)
        self.cmp = LogoCapCMP(num_keypoints, embed_channels, cmp_channels, cmp_attn_norm,
                              num_affine)
        self.matcher = LogoCapKemMatcher(sigmas, oks_gate)
        with torch.device('cpu'):  # a real tensor also when the head is built on 'meta'
            rates = expansion_rates(torch.tensor(sigmas))
        self.register_buffer('rates', rates, persistent=False)

    def kem(self, poses: Tensor) -> Tensor:
        """(..., K, 2) poses in I -> local KEM grids (..., s, s, K, 2) in I."""
        return local_kem_grid(poses, self.rates.to(poses), self.kem_size, self.kem_radius)

    def latents(self, embedding: Tensor, kem: Tensor) -> Tensor:
        """(B, D, h, w) F, (B, T, s, s, K, 2) I -> KEM latents (B, T, K*D, s, s)."""
        return sample_kem_latents(embedding, kem, self.stride)

    def kams(self, latents: Tensor) -> Tensor:
        """The CMP: latents (N, K*D, s, s) -> raw KAMs (N, K, s, s) (no clamp). The one call
        of the CMP (training and test), in the memory format and autocast precision of the
        current network plan (:mod:`logocap_mm.models.precision`; fp32 KAMs back)."""
        return current_plan().run(self.cmp, latents)

    def forward(self, embedding: Tensor, poses: Tensor,
                kams_raw: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Test-time local stage.

        Args:
            embedding: (B, D, h, w) F grid (unused when ``kams_raw`` is given).
            poses: (B, T, K, 2) initial poses in I.
            kams_raw: optional (B, T, K, s, s) raw KAMs to use instead of the CMP's.

        Returns:
            dict(kem (B, T, s, s, K, 2) I, kams_raw (B, T, K, s, s), kams = clamp(kams_raw,
            0, 1)).
        """
        B, T, K, _ = poses.shape
        kem = self.kem(poses)
        s = self.kem_size
        if kams_raw is None:
            if B * T == 0:
                kams_raw = poses.new_zeros(B, T, K, s, s)
            else:
                lat = self.latents(embedding, kem)
                kams_raw = self.kams(lat.flatten(0, 1)).reshape(B, T, K, s, s)
        return dict(kem=kem, kams_raw=kams_raw, kams=kams_raw.clamp(0, 1))

    def targets(self, poses: Tensor, gt_kpts: Tensor, gt_vis: Tensor,
                gt_area: Tensor) -> KemTargets:
        """Training: KEMs of ``poses`` (B, T, K, 2) and their match to the ground truth."""
        return self.matcher(poses, self.kem(poses), gt_kpts, gt_vis, gt_area)
