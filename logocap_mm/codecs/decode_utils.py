"""Torch helpers for LOGO-CAP centre-offset decoding.

Frames (see docs/CONTRACTS.md): **I** = network-input canvas (stride 1), **F** = heatmap
grid (stride ``s``, 4 for LOGO-CAP). Coordinates are always ``(x, y)``. Every function is
batched over ``B`` images and ``T`` centre slots, follows the device/dtype of its inputs and
contains no Python loop over people or keypoints.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from logocap_mm.utils.bilinear import axis_weights, bilinear_combine

__all__ = ['upsample_heatmaps', 'find_centers', 'centre_offset_poses',
           'sample_heatmaps_at_poses']


def upsample_heatmaps(heatmaps: Tensor, size_hw: Sequence[int]) -> Tensor:
    """Bilinear upsampling of F-grid maps to the I canvas (``align_corners=False``).

    Args:
        heatmaps: ``(B, C, h, w)`` maps on the F grid.
        size_hw: ``(H, W)`` of the I canvas (``4h, 4w`` for LOGO-CAP).

    Returns:
        ``(B, C, H, W)``. F-pixel ``i`` lands at I-coordinate ``4i + 1.5``.
    """
    if heatmaps.dim() != 4:
        raise ValueError(f'heatmaps must be (B, C, h, w), got shape {tuple(heatmaps.shape)}')
    # symbolic sizes (ONNX export with a dynamic canvas) stay symbolic: int() would freeze them
    size_hw = tuple(s if isinstance(s, torch.SymInt) else int(s) for s in size_hw)
    if len(size_hw) != 2 or min(size_hw) <= 0:
        raise ValueError(f'size_hw must be two positive ints, got {size_hw}')
    return F.interpolate(heatmaps, size=size_hw, mode='bilinear', align_corners=False)


def find_centers(center_map: Tensor, topk: int = 30, thr: Optional[float] = 0.01
                 ) -> Tuple[Tensor, Tensor, Tensor]:
    """Person centres on the I-resolution centre map (training form: the codec).

    A pixel is a peak iff ``maxpool3x3(clamp(C, min=0)) == C``; peak values are ``C`` and
    every other pixel scores 0. The ``topk`` largest scores are taken (sorted, descending,
    ``torch.topk`` order for ties, exactly as the reference).

    Args:
        center_map: ``(B, H, W)`` upsampled centre heatmap (channel ``K`` of the head).
        topk: number of centre slots ``T`` (``min(topk, H*W)``).
        thr: score threshold; ``valid = score >= thr`` and, where no slot of an image
            passes, its first (best) slot is kept. ``None``: every slot is valid (training).

    Returns:
        centers ``(B, T, 2)`` long, ``(x, y)`` I pixels; scores ``(B, T)`` (dtype of the map);
        valid ``(B, T)`` bool.
    """
    if center_map.dim() != 3:
        raise ValueError(
            f'center_map must be (B, H, W), got shape {tuple(center_map.shape)}')
    if int(topk) < 1:
        raise ValueError(f'topk must be a positive int, got {topk}')
    B, H, W = center_map.shape
    c = center_map[:, None]
    pooled = F.max_pool2d(c.clamp(min=0), 3, 1, 1)
    peaks = ((pooled == c).to(c.dtype) * c).reshape(B, H * W)
    # T is the Python int ``topk`` whenever the map has that many pixels (a static slot count
    # for ONNX export); x = idx - y * W rather than idx % W (exportable with a symbolic W)
    T = int(topk) if H * W >= int(topk) else H * W
    scores, idx = peaks.topk(T, dim=-1, sorted=True)
    ys = torch.div(idx, W, rounding_mode='floor')
    xs = idx - ys * W
    centers = torch.stack((xs, ys), dim=-1)
    if thr is None:
        valid = torch.ones_like(scores, dtype=torch.bool)
    else:
        valid = scores >= thr
        none_kept = ~valid.any(dim=1)
        valid[:, 0] = valid[:, 0] | none_kept
    return centers, scores, valid


def centre_offset_poses(centers: Tensor, offsets: Tensor, stride: int = 4) -> Tensor:
    """Initial poses ``P0 = c - stride * O[:, floor(c_y/stride), floor(c_x/stride)]``.

    Args:
        centers: ``(B, T, 2)`` centre ``(x, y)`` in I pixels (long or float).
        offsets: ``(B, 2K, h, w)`` offset maps in F units; channel ``2k`` is x, ``2k+1`` is y,
            sign ``pixel - keypoint``.
        stride: I pixels per F pixel.

    Returns:
        ``(B, T, K, 2)`` float poses in I pixels (dtype of ``offsets``). The offset is read at the
        floored F cell but added to the full-resolution centre. Cells are
        clamped into the map (centres found on the map itself are always inside).
    """
    if centers.dim() != 3 or centers.shape[-1] != 2:
        raise ValueError(f'centers must be (B, T, 2), got shape {tuple(centers.shape)}')
    if offsets.dim() != 4 or offsets.shape[1] % 2:
        raise ValueError(
            f'offsets must be (B, 2K, h, w), got shape {tuple(offsets.shape)}')
    if offsets.shape[0] != centers.shape[0]:
        raise ValueError('centers and offsets must have the same batch size, got '
                         f'{centers.shape[0]} and {offsets.shape[0]}')
    B, C2, h, w = offsets.shape
    T = centers.shape[1]
    cf = centers.to(offsets.dtype)
    q = torch.div(cf, stride, rounding_mode='floor').long()
    qx = q[..., 0].clamp(0, w - 1)
    qy = q[..., 1].clamp(0, h - 1)
    flat = (qy * w + qx)[:, None, :].expand(B, C2, T)
    o = offsets.reshape(B, C2, h * w).gather(2, flat)  # (B, 2K, T)
    o = o.permute(0, 2, 1).reshape(B, T, C2 // 2, 2)
    return cf[:, :, None, :] - stride * o


def sample_heatmaps_at_poses(heatmaps: Tensor, poses: Tensor) -> Tensor:
    """Value of keypoint map ``k`` at keypoint ``k`` of every pose (reference sampler).

    Corner-aligned bilinear sampling (pixel ``i`` at coordinate ``i``) with the reference's
    index and weight clamping: left/top clamp to the border, on the right/bottom
    ``x = W-1`` gives 0 and ``x in (W-1, W)`` ramps to the border value (as in the reference).

    Args:
        heatmaps: ``(B, K, H, W)`` maps (normally the I-upsampled keypoint heatmaps).
        poses: ``(B, T, K, 2)`` ``(x, y)`` in the maps' pixel frame.

    Returns:
        ``(B, T, K)`` sampled values (the ``adaptation='none'`` keypoint score ``v``).
    """
    B, K, H, W = heatmaps.shape
    if poses.dim() != 4 or poses.shape[0] != B or poses.shape[2] != K:
        raise ValueError(f'poses must be (B, T, {K}, 2) for heatmaps {tuple(heatmaps.shape)}, '
                         f'got {tuple(poses.shape)}')
    xt = axis_weights(poses[..., 0].to(heatmaps.dtype), W)          # (B, T, K) taps
    yt = axis_weights(poses[..., 1].to(heatmaps.dtype), H)
    flat_maps = heatmaps.reshape(B, K, H * W)

    def gather(yy: Tensor, xx: Tensor) -> Tensor:
        idx = (yy * W + xx).permute(0, 2, 1)  # (B, K, T)
        return flat_maps.gather(2, idx).permute(0, 2, 1)  # (B, T, K)

    return bilinear_combine(gather, yt, xt)
