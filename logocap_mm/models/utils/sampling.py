"""Bilinear sampling of feature maps at arbitrary points.

Two conventions, both corner-aligned (pixel i sits at coordinate i):

* ``'reference'``: the LOGO-CAP reference sampler. Left/top: clamped to the border.
  Right/bottom: for ``x`` in ``(W-1, W)`` the value ramps linearly from 0 to the border
  value, exactly ``x == W-1`` gives 0, and ``x >= W`` gives the border value (as in the reference).
* ``'border'``: ``grid_sample(align_corners=True, padding_mode='border')``, identical to
  ``'reference'`` except in that last one-pixel strip.
"""
import torch
import torch.nn.functional as F
from torch import Tensor

from logocap_mm.utils.bilinear import axis_weights, bilinear_combine

__all__ = ['axis_weights', 'sample_bilinear', 'sample_kem_latents']

_MODES = ('reference', 'border')


def sample_bilinear(maps: Tensor, points: Tensor, mode: str = 'reference') -> Tensor:
    """Sample ``maps`` at ``points``.

    Args:
        maps: (B, C, H, W) feature maps.
        points: (B, P, 2) (x, y) in map pixels (corner-aligned).
        mode: ``'reference'`` or ``'border'`` (see module docstring).

    Returns:
        (B, P, C) samples.
    """
    if mode not in _MODES:
        raise ValueError(f'mode must be one of {_MODES}, got {mode!r}')
    if maps.dim() != 4:
        raise ValueError(f'maps must be (B, C, H, W), got {tuple(maps.shape)}')
    if points.dim() != 3 or points.shape[-1] != 2 or points.shape[0] != maps.shape[0]:
        raise ValueError(f'points must be (B, P, 2) with B={maps.shape[0]}, '
                         f'got {tuple(points.shape)}')
    B, C, H, W = maps.shape
    points = points.to(maps.dtype)
    if mode == 'border':
        gx = points[..., 0] * (2.0 / max(W - 1, 1)) - 1
        gy = points[..., 1] * (2.0 / max(H - 1, 1)) - 1
        grid = torch.stack([gx, gy], -1)[:, :, None]                  # (B, P, 1, 2)
        out = F.grid_sample(maps, grid, mode='bilinear', padding_mode='border',
                            align_corners=True)                      # (B, C, P, 1)
        return out[..., 0].transpose(1, 2)
    xt = [t[..., None] for t in axis_weights(points[..., 0], W)]     # (B, P, 1) taps
    yt = [t[..., None] for t in axis_weights(points[..., 1], H)]
    flat = maps.flatten(2).transpose(1, 2)                            # (B, HW, C)

    def g(yy, xx):
        idx = (yy * W + xx).expand(-1, -1, C)
        return torch.gather(flat, 1, idx)

    return bilinear_combine(g, yt, xt)


def sample_kem_latents(embedding: Tensor, kem: Tensor, stride: float = 4,
                       mode: str = 'reference') -> Tensor:
    """Sample the embedding at local KEM points.

    Args:
        embedding: (B, D, h, w) embedding in the F frame.
        kem: (B, T, s, s, K, 2) KEM points in I; sampled at ``kem / stride``.
        stride: I -> F stride (4).

    Returns:
        (B, T, K*D, s, s) latents, channel ``k*D + c`` (k-major), ready for the CMP.
    """
    if kem.dim() != 6 or kem.shape[-1] != 2 or kem.shape[2] != kem.shape[3]:
        raise ValueError(f'kem must be (B, T, s, s, K, 2), got {tuple(kem.shape)}')
    if embedding.dim() != 4 or embedding.shape[0] != kem.shape[0]:
        raise ValueError(f'embedding must be (B, D, h, w) with B={kem.shape[0]}, '
                         f'got {tuple(embedding.shape)}')
    B, T, s, _, K, _ = kem.shape
    D = embedding.shape[1]
    pts = (kem / stride).reshape(B, T * s * s * K, 2)
    lat = sample_bilinear(embedding, pts, mode)                        # (B, T*s*s*K, D)
    lat = lat.reshape(B, T, s, s, K, D).permute(0, 1, 4, 5, 2, 3)     # (B, T, K, D, s, s)
    return lat.reshape(B, T, K * D, s, s)
