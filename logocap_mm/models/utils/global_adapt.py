"""Global contextual adaptation (LOGO-CA): 97x97 windows, Gaussian prior, dynamic KAM
convolution and top-2 decoding.

Frames: ``heatmaps_up`` are the keypoint heatmaps upsampled x4 to the input canvas I
(bilinear, align_corners=False); poses and returned keypoints are (x, y) in I.
Window pixel (a, b) of instance-keypoint (n, k) is the map sampled (reference sampler)
at ``P0[n, k] + (b - S//2, a - S//2)``.

Two paths give the same result:

* plain (``fast=False``): sample every window point, multiply by the Gaussian, one grouped
  ``conv2d`` with the flipped ``KAM / k**2`` kernels (padding k//2), ``topk(2)``. This is the
  reference formulation and the one to use for training (full response with gradient).
* fast (``fast=True``, inference): the window taps are separable, so sampling and Gaussian
  weighting are one integer crop plus two separable 2-tap passes; the convolution is then
  evaluated only on a tile around the window's maximum, and a per-block upper bound of the
  response (``sum(k+) * max(G) - sum(k-) * min(G)`` over each block's receptive field)
  certifies that no position outside the tile can enter the top 2. Rows whose certificate
  fails are recomputed with the plain convolution. The result equals the plain path up to
  float rounding (values ~1e-6 relative); positions can differ only where the 2nd and 3rd
  (or 1st and 2nd) responses tie within that rounding.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from .global_adapt_fast import fast_rows, weighted_windows_crop
from .global_windows import (_check_maps_poses, _check_size, _sample_rows, gaussian_window,
                             kam_convolution, kam_convolution_per_slot, sample_windows,
                             top2_decode)

__all__ = ['gaussian_window', 'sample_windows', 'kam_convolution', 'kam_convolution_per_slot',
           'top2_decode', 'global_adaptation', 'partial_decode']


def global_adaptation(heatmaps_up: Tensor, poses: Tensor, kams: Tensor, size: int = 97,
                      sigma: float = 16., lam: float = 0.75, fast: bool = True,
                      valid: Optional[Tensor] = None,
                      per_slot: bool = False) -> Tuple[Tensor, Tensor]:
    """Full LOGO-CA refinement of initial poses.

    Args:
        heatmaps_up: (B, K, H, W) keypoint heatmaps (no centre channel) in I.
        poses: (B, T, K, 2) initial poses P0 in I.
        kams: (B, T, K, k, k) KAMs (clamped to [0, 1] by the caller at test time).
        size, sigma, lam: window side (97), Gaussian sigma (16), top-2 weight (0.75).
        fast: use the pruned path (same result, see module docstring).
        valid: optional (B, T) bool; invalid slots are skipped and return (P0, 0).
        per_slot: plain path only: the KAM convolution as a loop over the slots
            (:func:`kam_convolution_per_slot`, same values), so that an exported graph's
            cost follows a data-dependent T; and the Gaussian-weighted windows by one
            integer crop and two separable 2-tap passes, as the fast path takes them
            (:func:`weighted_windows_crop`, no data-dependent branch: one ``take`` instead
            of the reference sampler's four; equal up to float rounding).

    Returns:
        keypoints (B, T, K, 2) in I (``P0 + top-2 offset``), values (B, T, K) (the convex
        top-2 response, not yet multiplied by the centre score).
    """
    _check_size(size)
    _check_maps_poses(heatmaps_up, poses)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f'lam must be in [0, 1], got {lam!r}')
    B, T, K, _ = poses.shape
    if kams.dim() != 5 or kams.shape[:3] != (B, T, K) or kams.shape[-1] != kams.shape[-2] \
            or kams.shape[-1] % 2 == 0:
        raise ValueError(f'kams must be (B={B}, T={T}, K={K}, k, k) with odd k, '
                         f'got {tuple(kams.shape)}')
    dt = heatmaps_up.dtype
    poses = poses.to(dt)
    if valid is None:
        sel = None
        P = poses.reshape(B * T, K, 2)
        KA = kams.reshape(B * T, K, *kams.shape[-2:])
        bidx = torch.arange(B, device=poses.device).repeat_interleave(T)
    else:
        if valid.shape != (B, T):
            raise ValueError(f'valid must be (B, T)=({B}, {T}), got {tuple(valid.shape)}')
        sel = valid.reshape(-1).nonzero()[:, 0]
        P = poses.reshape(B * T, K, 2)[sel]
        KA = kams.reshape(B * T, K, *kams.shape[-2:])[sel]
        bidx = sel // T
    N = P.shape[0]
    maps = heatmaps_up.reshape(B * K, *heatmaps_up.shape[2:])
    mrow = (bidx[:, None] * K + torch.arange(K, device=poses.device)).reshape(-1)
    if N == 0:
        off = poses.new_zeros(N, K, 2)
        v = poses.new_zeros(N, K)
    elif fast:
        o, vv = fast_rows(maps, mrow, P.reshape(-1, 2), KA.reshape(N * K, *KA.shape[-2:]).to(dt),
                           size, sigma, lam)
        off, v = o.reshape(N, K, 2), vv.reshape(N, K)
    elif per_slot:
        G = weighted_windows_crop(maps, mrow, P.reshape(-1, 2), size, sigma)
        R = kam_convolution_per_slot(G.reshape(N, K, size, size), KA)
        off, v = top2_decode(R, lam)
    else:
        win = _sample_rows(maps, mrow, P.reshape(-1, 2), size).reshape(N, K, size, size)
        G = win * gaussian_window(size, sigma, heatmaps_up.device, dt)
        R = kam_convolution(G, KA)
        off, v = top2_decode(R, lam)
    kp = P + off
    if sel is None:
        return kp.reshape(B, T, K, 2), v.reshape(B, T, K)
    out_kp = poses.reshape(B * T, K, 2).clone()
    out_v = poses.new_zeros(B * T, K)
    out_kp[sel] = kp
    out_v[sel] = v
    return out_kp.reshape(B, T, K, 2), out_v.reshape(B, T, K)


def partial_decode(kem: Tensor, kams: Tensor) -> Tuple[Tensor, Tensor]:
    """``'partial'`` level: per keypoint the KEM point with the largest KAM.

    Args:
        kem: (..., s, s, K, 2) KEM points in I; kams: (..., K, s, s) (clamped by the caller).

    Returns:
        keypoints (..., K, 2), values (..., K); ties resolve to the FIRST maximum in the
        flattened ``i * s + j`` order (as the reference).
    """
    if kem.dim() < 4 or kem.shape[-1] != 2 or kams.dim() != kem.dim() - 1 or \
            kams.shape[-3] != kem.shape[-2] or kams.shape[-2:] != kem.shape[-4:-2]:
        raise ValueError(f'kem (..., s, s, K, 2) and kams (..., K, s, s) do not match: '
                         f'{tuple(kem.shape)} vs {tuple(kams.shape)}')
    s = kams.shape[-1]
    K = kams.shape[-3]
    flat = kams.flatten(-2)                                            # (..., K, s*s)
    am = flat.argmax(-1)                                               # first maximum
    val = flat.gather(-1, am[..., None])[..., 0]
    pts = kem.reshape(*kem.shape[:-4], s * s, K, 2).transpose(-3, -2)  # (..., K, s*s, 2)
    kp = pts.gather(-2, am[..., None, None].expand(*am.shape, 1, 2))[..., 0, :]
    return kp, val
