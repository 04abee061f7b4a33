"""Local keypoint-expansion maps (KEMs): the 11x11 per-keypoint candidate grids.

All coordinates are (x, y) in the input frame **I** (stride 1).
"""
from typing import Sequence, Union

import torch
from torch import Tensor

__all__ = ['expansion_rates', 'kem_offsets', 'local_kem_grid']


def _check_size_radius(size: int, radius: float) -> None:
    if not isinstance(size, int) or size < 1:
        raise ValueError(f'size must be a positive int, got {size!r}')
    if not radius > 0:
        raise ValueError(f'radius must be > 0, got {radius!r}')


def expansion_rates(sigmas: Union[Tensor, Sequence[float]]) -> Tensor:
    """Per-keypoint expansion rate ``r_k = sigma_k / min(sigma)``.

    Args:
        sigmas: (K,) COCO-style OKS sigmas (all > 0).

    Returns:
        (K,) float tensor (1.04 nose, 1.00 eyes, ..., 4.28 hips for COCO).
    """
    s = torch.as_tensor(sigmas)
    if not s.is_floating_point():
        s = s.float()
    if s.dim() != 1 or s.numel() == 0:
        raise ValueError(f'sigmas must be a non-empty 1-D sequence, got shape {tuple(s.shape)}')
    if not bool((s > 0).all()):
        raise ValueError('sigmas must all be > 0')
    return s / s.min()


def kem_offsets(rates: Tensor, size: int = 11, radius: float = 5.) -> Tensor:
    """Offsets of the local KEM grid relative to the initial keypoint.

    ``off[i, j, k] = r_k * (d_j, d_i)`` with ``d = linspace(-radius, radius, size)``:
    the column index j moves x, the row index i moves y.

    Args:
        rates: (K,) expansion rates.
        size: grid side s (11).
        radius: half-width in units of r_k (5).

    Returns:
        (s, s, K, 2) offsets (x, y) in I pixels.
    """
    _check_size_radius(size, radius)
    rates = torch.as_tensor(rates)
    if rates.dim() != 1:
        raise ValueError(f'rates must be 1-D (K,), got shape {tuple(rates.shape)}')
    if not rates.is_floating_point():
        rates = rates.float()
    d = torch.linspace(-radius, radius, size, dtype=rates.dtype, device=rates.device)
    dy, dx = torch.meshgrid(d, d, indexing='ij')                     # (s, s)
    base = torch.stack([dx, dy], -1)                                  # (s, s, 2)
    return base[:, :, None, :] * rates[None, None, :, None]          # (s, s, K, 2)


def local_kem_grid(poses: Tensor, rates: Tensor, size: int = 11,
                   radius: float = 5.) -> Tensor:
    """Local KEM grid around initial poses.

    ``grid[..., i, j, k] = P0[..., k] + r_k * (d_j, d_i)``; ``grid[..., s//2, s//2] == P0``.

    Args:
        poses: (..., K, 2) initial poses P0 in I.
        rates: (K,) expansion rates.

    Returns:
        (..., s, s, K, 2) candidate keypoints in I.
    """
    if poses.dim() < 2 or poses.shape[-1] != 2:
        raise ValueError(f'poses must have shape (..., K, 2), got {tuple(poses.shape)}')
    rates = torch.as_tensor(rates, device=poses.device)
    if rates.numel() != poses.shape[-2]:
        raise ValueError(f'rates has {rates.numel()} entries but poses has '
                         f'K={poses.shape[-2]} keypoints')
    off = kem_offsets(rates.to(poses.dtype), size, radius)            # (s, s, K, 2)
    return poses[..., None, None, :, :] + off
