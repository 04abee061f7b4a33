"""Flip-test merge of LogoCapHead outputs (F grid)."""
from typing import Sequence, Tuple

import torch
from mmpose.models.utils.tta import flip_heatmaps
from torch import Tensor

from .meta_checks import check_flip_indices

__all__ = ['FLIP_MODES', 'flip_merge', 'shift_aligned']

FLIP_MODES = ('reference', 'aligned')


def shift_aligned(x: Tensor, ratio: float) -> Tensor:
    """Resample a flipped-back F map by the sub-pixel misalignment of ``torch.flip``.

    After flipping the image (x → W_I − 1 − x) and the map back, F pixel i holds the
    value of F coordinate i + (1 − 1/stride); interpolate to get coordinate i.
    """
    frac = 1. - ratio
    prev = torch.cat([x[..., :1], x[..., :-1]], dim=-1)
    return frac * prev + (1 - frac) * x


def flip_merge(out: Tuple[Tensor, Tensor, Tensor], out_flip: Tuple[Tensor, ...],
               flip_indices: Sequence[int], num_keypoints: int, stride: float,
               flip_mode: str = 'reference'):
    """Average un-flipped and flipped-back head outputs.

    Args:
        out: heatmaps (B, K+1, h, w), offsets (B, 2K, h, w), embedding (B, D, h, w).
        out_flip: heatmaps and offsets of the flipped images.
        flip_indices: (K,) symmetric keypoint of each keypoint.
        flip_mode: ``'reference'``: plain ``torch.flip`` + keypoint permutation (MMPose's
            ``flip_heatmaps`` without its shift; offsets: x negated); ``'aligned'``: also
            shift the flipped-back maps by 1 − 1/stride F px (deviation, off by default).

    Returns:
        merged heatmaps, offsets and the un-flipped embedding.
    """
    if flip_mode not in FLIP_MODES:
        raise ValueError(f'flip_mode must be one of {FLIP_MODES}, got {flip_mode!r}')
    K = num_keypoints
    idx = check_flip_indices(flip_indices, K, 'flip_indices (data sample metainfo)')
    hm, off, emb = out
    hm_f = flip_heatmaps(out_flip[0], idx + [K], 'heatmap', shift_heatmap=False)
    off_f = flip_heatmaps(out_flip[1].contiguous(), idx, 'offset', shift_heatmap=False)
    if flip_mode == 'aligned':
        # MMPose's shift_heatmap moves by a whole F pixel; the misalignment is 1 - 1/stride
        hm_f = shift_aligned(hm_f, 1. / stride)
        off_f = shift_aligned(off_f, 1. / stride)
    return 0.5 * (hm + hm_f), 0.5 * (off + off_f), emb
