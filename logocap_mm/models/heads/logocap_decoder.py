"""LogoCapDecoder: the test-time LOGO-CAP decoding pipeline.

The decoder has no parameters. It is built from the small functions of
:mod:`logocap_mm.codecs.decode_utils` and :mod:`logocap_mm.models.utils`, and exposes each
stage as a method so that tools (``tools/benchmark.py``) can time them separately::

    initial_poses   centre NMS on the x4-upsampled centre map, top-k, centre-offset poses
    local_kams      KEM grids, embedding sampling, CMP (passed in by the head), clamp
    global_refine   97x97 windows, Gaussian re-weighting, LOGO-CA convolution, top-2 decode
    finalize        keypoint/pose scores, validity, pose NMS, cap on the number of people

Everything is batched over images (``B``) and centre slots (``T``); the only Python loop is
the pose-NMS greedy pass over at most ``topk`` slots, vectorised over the batch.
"""
import math
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmpose.registry import MODELS
from torch import Tensor

from logocap_mm.codecs.decode_utils import (centre_offset_poses, find_centers,
                                            sample_heatmaps_at_poses,
                                            upsample_heatmaps)
from logocap_mm.models.utils.global_adapt import global_adaptation, partial_decode
from logocap_mm.models.utils.kem import expansion_rates, local_kem_grid
from logocap_mm.models.utils.pose_nms import pose_nms
from logocap_mm.models.utils.sampling import sample_kem_latents

ADAPTATION_LEVELS = ('full', 'partial', 'none')


def _odd_positive(name, value):
    if not isinstance(value, int) or value < 1 or value % 2 == 0:
        raise ValueError(f'{name} must be a positive odd int, got {value!r}')


def _finite(name, value, low=None, strict=False):
    """``value`` as a float; a ValueError naming ``name`` unless it is a finite real number
    (``> low`` when ``strict``, ``>= low`` otherwise)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)
    if ok and low is not None:
        ok = value > low if strict else value >= low
    if not ok:
        bound = '' if low is None else f' {">" if strict else ">="} {low:g}'
        raise ValueError(f'{name} must be a finite number{bound}, got {value!r}')
    return float(value)


def check_finite_outputs(**maps: Tensor) -> None:
    """Refuse NaN / inf head outputs with a clear error (instead of an index error deep in
    the sampler). ``maps``: name -> tensor of any shape."""
    maps = {n: t for n, t in maps.items() if t.numel()}
    if not maps:
        return
    ok = torch.stack([torch.isfinite(t).all() for t in maps.values()])
    if not bool(ok.all()):  # one host sync per batch
        bad = [n for n, good in zip(maps, ok.tolist()) if not good]
        raise ValueError(
            f'LogoCapDecoder: the head produced non-finite (NaN / inf) {", ".join(bad)}; '
            'the model weights or the input image contain NaN / inf (check the checkpoint '
            'and the input array)')


@MODELS.register_module()
class LogoCapDecoder(nn.Module):
    """Test-time decoder of LOGO-CAP.

    Args:
        sigmas (Sequence[float]): per-keypoint OKS sigmas (K,), for the KEM expansion rates.
        stride (int): I pixels per F pixel (4).
        topk (int): centre slots (30).
        center_thr (float): centre score threshold (0.01).
        kem_size (int): local KEM side s (11, odd).
        kem_radius (float): half extent of the unscaled KEM grid (5: linspace(-5, 5, 11)).
        window_size (int): global window side S (97, odd, >= kem_size).
        window_sigma (float): Gaussian re-weighting σ (16).
        convex_lambda (float): weight of the best response in the top-2 average (0.75).
        adaptation (str): 'full' | 'partial' | 'none'.
        nms_dist_ratio (float): pose NMS distance as a fraction of the pose diagonal (0.05).
        nms_num_joints (int): pose pair is a duplicate if more than this many joints are close (8).
        max_people (int): cap on returned poses per image (30).
        fast (bool): use the fast global path (numerically equal to the plain one).
    """

    def __init__(self,
                 sigmas: Sequence[float],
                 stride: int = 4,
                 topk: int = 30,
                 center_thr: float = 0.01,
                 kem_size: int = 11,
                 kem_radius: float = 5.,
                 window_size: int = 97,
                 window_sigma: float = 16.,
                 convex_lambda: float = 0.75,
                 adaptation: str = 'full',
                 nms_dist_ratio: float = 0.05,
                 nms_num_joints: int = 8,
                 max_people: int = 30,
                 pose_nms: bool = True,
                 fast: bool = True):
        super().__init__()
        sigmas = [float(s) for s in sigmas]
        if len(sigmas) == 0 or min(sigmas) <= 0:
            raise ValueError(f'sigmas must be a non-empty list of positive floats, got {sigmas}')
        if not isinstance(topk, int) or topk < 1:
            raise ValueError(f'topk must be a positive int, got {topk!r}')
        if not isinstance(max_people, int) or max_people < 1:
            raise ValueError(f'max_people must be a positive int, got {max_people!r}')
        _odd_positive('kem_size', kem_size)
        _odd_positive('window_size', window_size)
        if window_size < kem_size:
            raise ValueError(f'window_size ({window_size}) must be >= kem_size ({kem_size})')
        if not (0. <= convex_lambda <= 1.):
            raise ValueError(f'convex_lambda must be in [0, 1], got {convex_lambda!r}')
        _finite('window_sigma', window_sigma, 0, strict=True)
        _finite('kem_radius', kem_radius, 0, strict=True)
        _finite('stride', stride, 0, strict=True)
        _finite('center_thr', center_thr)
        _finite('nms_dist_ratio', nms_dist_ratio, 0)
        if isinstance(nms_num_joints, bool) or not isinstance(nms_num_joints, int) or \
                nms_num_joints < 0:
            raise ValueError(f'nms_num_joints must be an int >= 0, got {nms_num_joints!r}')
        self.check_adaptation(adaptation)
        self.num_keypoints = len(sigmas)
        self.register_buffer('rates', expansion_rates(torch.tensor(sigmas)), persistent=False)
        self.stride = stride
        self.topk = topk
        self.center_thr = float(center_thr)
        self.kem_size = kem_size
        self.kem_radius = float(kem_radius)
        self.window_size = window_size
        self.window_sigma = float(window_sigma)
        self.convex_lambda = float(convex_lambda)
        self.adaptation = adaptation
        self.nms_dist_ratio = float(nms_dist_ratio)
        self.nms_num_joints = nms_num_joints
        self.max_people = max_people
        self.use_pose_nms = pose_nms
        self.fast = fast

    @staticmethod
    def check_adaptation(adaptation):
        if adaptation not in ADAPTATION_LEVELS:
            raise ValueError(f'adaptation must be one of {ADAPTATION_LEVELS}, '
                             f'got {adaptation!r}')
        return adaptation

    # ------------------------------------------------------------------ stages
    def initial_poses(self, heatmaps: Tensor, offsets: Tensor,
                      canvas_hw: Optional[Sequence[Sequence[int]]] = None,
                      thr: Optional[float] = 'default',
                      topk: Optional[int] = None) -> Dict[str, Tensor]:
        """Centres and centre-offset initial poses.

        Args:
            heatmaps: (B, K+1, h, w) raw heatmaps (centre last), F grid.
            offsets: (B, 2K, h, w) offsets (pixel − keypoint), F units.
            canvas_hw: per image (H_i, W_i) of the valid input canvas; centre peaks outside
                it (batch padding) are suppressed. None: the whole map.
            thr: centre threshold (default: ``center_thr``; None: all top-k valid, training).

        Returns:
            dict with ``heatmaps_up`` (B, K+1, H, W) in I, ``centers`` (B, T, 2) long,
            ``center_scores`` (B, T), ``valid`` (B, T) bool, ``poses`` (B, T, K, 2) in I.
            T is trimmed to the largest number of valid slots in the batch (valid slots are
            a prefix of the score-sorted top-k).
        """
        B, C, h, w = heatmaps.shape
        H, W = h * self.stride, w * self.stride
        hr = upsample_heatmaps(heatmaps, (H, W))
        cmap = hr[:, -1]
        if canvas_hw is not None:
            ys = torch.arange(H, device=hr.device)[:, None]
            xs = torch.arange(W, device=hr.device)[None, :]
            lim = torch.as_tensor([[int(c[0]), int(c[1])] for c in canvas_hw],
                                  device=hr.device)
            inside = (ys[None] < lim[:, 0, None, None]) & (xs[None] < lim[:, 1, None, None])
            cmap = torch.where(inside, cmap, torch.zeros((), dtype=cmap.dtype,
                                                          device=cmap.device))
        thr = self.center_thr if thr == 'default' else thr
        centers, scores, valid = find_centers(cmap, topk or self.topk, thr)
        if thr is not None:
            t = max(int(valid.sum(1).max().item()), 1)
            centers, scores, valid = centers[:, :t], scores[:, :t], valid[:, :t]
        poses = centre_offset_poses(centers, offsets, self.stride)
        return dict(heatmaps_up=hr, centers=centers, center_scores=scores, valid=valid,
                    poses=poses)

    def kem(self, poses: Tensor) -> Tensor:
        """(B, T, K, 2) -> local KEM grids (B, T, s, s, K, 2) in I."""
        return local_kem_grid(poses, self.rates.to(poses), self.kem_size, self.kem_radius)

    def local_kams(self, embedding: Tensor, poses: Tensor, cmp: nn.Module,
                   clamp: bool = True) -> Dict[str, Tensor]:
        """Local KEMs -> KAMs.

        Args:
            embedding: (B, D, h, w) embedding (F grid).
            poses: (B, T, K, 2) initial poses in I.
            cmp: the head's CMP module, (N, K*D, s, s) -> (N, K, s, s).
            clamp: clamp the KAM to [0, 1] (test time).

        Returns:
            dict with ``kem`` (B, T, s, s, K, 2) and ``kams`` (B, T, K, s, s).
        """
        B, T, K, _ = poses.shape
        kem = self.kem(poses)
        s = self.kem_size
        if B * T == 0:
            return dict(kem=kem, kams=poses.new_zeros(B, T, K, s, s))
        lat = sample_kem_latents(embedding, kem, self.stride)          # (B, T, K*D, s, s)
        kams = cmp(lat.flatten(0, 1)).reshape(B, T, K, s, s)
        if clamp:
            kams = kams.clamp(0, 1)
        return dict(kem=kem, kams=kams)

    def global_refine(self, heatmaps_up: Tensor, poses: Tensor, kams: Tensor,
                      valid: Optional[Tensor] = None):
        """LOGO-CA: (B, K, H, W), (B, T, K, 2), (B, T, K, s, s) -> keypoints (B, T, K, 2) in
        I and values (B, T, K). ``valid`` (B, T) lets the fast path skip padded slots."""
        return global_adaptation(heatmaps_up, poses, kams, size=self.window_size,
                                 sigma=self.window_sigma, lam=self.convex_lambda,
                                 fast=self.fast, valid=valid)

    def partial_refine(self, kem: Tensor, kams: Tensor):
        """'partial': per keypoint the KEM point with the largest clamped KAM (first maximum
        in i*s + j order). (B, T, s, s, K, 2), (B, T, K, s, s) -> (B, T, K, 2), (B, T, K)."""
        return partial_decode(kem, kams)

    def finalize(self, keypoints: Tensor, values: Tensor, center_scores: Tensor,
                 valid: Tensor) -> List[Dict[str, Tensor]]:
        """Scores, validity, pose NMS and the people cap.

        Args:
            keypoints: (B, T, K, 2) in I; values: (B, T, K) keypoint values v̄;
            center_scores: (B, T) s_c; valid: (B, T) centre validity.

        Returns:
            one dict per image: ``keypoints`` (N, K, 2) I, ``keypoint_scores`` (N, K) = v̄·s_c,
            ``scores`` (N,) = mean over keypoints, in keep order (centre order of the
            NMS keep decisions, as the reference), N <= max_people.
        """
        kpt_scores = values * center_scores[..., None]
        pose_scores = kpt_scores.mean(-1)
        ok = valid & (pose_scores > 0)
        B, T = ok.shape
        if self.use_pose_nms and T > 0:
            rank = pose_nms(keypoints, pose_scores, ok, self.nms_dist_ratio,
                            self.nms_num_joints)
        else:
            rank = torch.where(ok, torch.cumsum(ok.long(), 1) - 1,
                               torch.full_like(ok, -1, dtype=torch.long))
        results = []
        for b in range(B):  # per image output packing only (ragged lists)
            keep = rank[b] >= 0
            order = torch.argsort(rank[b].masked_fill(~keep, T + 1))[:int(keep.sum())]
            if order.numel() > self.max_people:
                top = pose_scores[b, order].topk(self.max_people).indices
                order = order[top.sort().values]
            results.append(dict(keypoints=keypoints[b, order],
                                keypoint_scores=kpt_scores[b, order],
                                scores=pose_scores[b, order]))
        return results

    # ------------------------------------------------------------------ all stages
    def forward(self, heatmaps: Tensor, offsets: Tensor, embedding: Tensor, cmp: nn.Module,
                canvas_hw=None, adaptation: Optional[str] = None) -> List[Dict[str, Tensor]]:
        """Decode a batch.

        Args:
            heatmaps: (B, K+1, h, w); offsets: (B, 2K, h, w); embedding: (B, D, h, w);
            cmp: the CMP module; canvas_hw: per-image valid canvas (H, W) in I;
            adaptation: override of ``self.adaptation``.

        Returns:
            per image dict(keypoints (N, K, 2) I, keypoint_scores (N, K), scores (N,)).

        Raises:
            ValueError: if any head output holds NaN / inf (bad weights or input).
        """
        level = self.check_adaptation(adaptation or self.adaptation)
        check_finite_outputs(heatmaps=heatmaps, offsets=offsets, embedding=embedding)
        init = self.initial_poses(heatmaps, offsets, canvas_hw)
        poses, K = init['poses'], self.num_keypoints
        hr = init['heatmaps_up'][:, :K]
        if level == 'none':
            kpts = poses
            vals = sample_heatmaps_at_poses(hr, poses)
        else:
            loc = self.local_kams(embedding, poses, cmp, clamp=True)
            if level == 'partial':
                kpts, vals = self.partial_refine(loc['kem'], loc['kams'])
            else:
                kpts, vals = self.global_refine(hr, poses, loc['kams'], init['valid'])
        return self.finalize(kpts, vals, init['center_scores'], init['valid'])
