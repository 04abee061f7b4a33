"""LogoCapCodec: LOGO-CAP training targets and centre-offset decoding.

Frames: **O** original image, **I** network-input canvas (what MMPose's bottom-up transforms
deliver; ``encode`` takes keypoints here), **F** heatmap grid, ``x_F = x_I / stride``
(stride = ``input_size / heatmap_size`` = 4). Coordinates are ``(x, y)``.

Choices where MMPose and the reference differ (all documented in the class docstring):

* O-area for the ``32**2`` centre rule: MMPose's ``BottomupRandomAffine`` multiplies ``area``
  by ``det(warp_mat)`` and stores ``warp_mat`` in ``results``; the codec takes both through
  ``auxiliary_encode_keys`` and recovers ``area_O = area / |det(warp_mat[:2, :2])|``. Without a
  ``warp_mat`` the given area is used as-is for both rules (identity affine).
* Flip: MMPose flips keypoints in I (``x -> W_I - 1 - x``) before encoding, so our targets are
  exactly ``x_I / 4`` of the flipped image. The reference flips in F (``x_F -> W_F - 1 - x_F``),
  which is ``(stride - 1) / stride`` = 0.75 F-px left of that (as in the reference). Default: not
  reproduced (consistent targets); ``flip_target_shift=True`` reproduces it by shifting the
  keypoints of flipped samples by ``-(stride - 1)`` I-px before encoding.
"""
import warnings
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from mmpose.codecs.base import BaseKeypointCodec
from mmpose.registry import KEYPOINT_CODECS

from .decode_utils import (centre_offset_poses, find_centers, sample_heatmaps_at_poses,
                           upsample_heatmaps)
from .targets import check_positive, check_size, render_gaussians

__all__ = ['LogoCapCodec']

ArrayLike = Union[np.ndarray, Tensor]


@KEYPOINT_CODECS.register_module()
class LogoCapCodec(BaseKeypointCodec):
    """LOGO-CAP targets (keypoint + centre heatmaps, centre offsets) and P0 decoding.

    Args:
        input_size: ``(w, h)`` of the I canvas (512x512 for W32 training).
        heatmap_size: ``(w, h)`` of the F grid (128x128); stride = input/heatmap (4).
        sigma: keypoint Gaussian sigma in F px (2); a float, or a sequence with one value per
            keypoint (its length is checked against ``K`` at encode time).
        center_sigma: centre Gaussian sigma in F px (4).
        bg_weight: heatmap weight outside every Gaussian support square (0.1).
        offset_radius: offsets are written on ``[ct - r, ct + r)`` squared, ``ct = int(c_F)``
            (4, i.e. 8x8 pixels).
        min_center_area: persons whose **O-image** area is below this get no centre (32**2).
        topk: centre slots for decoding (30).
        center_thr: centre score threshold for decoding (0.01); ``None`` keeps all top-k.
        bbox_center_fallback: a non-crowd person without visible keypoints (area above the
            limit) gets its centre at the bbox centre, as the reference does. Needs
            the ``bbox`` and ``iscrowd`` pipeline keys (MMPose's bottom-up datasets provide
            them; ``bbox`` may be xyxy ``(N, 4)`` or corners ``(N, 4, 2)``). Default True.
        flip_target_shift: reproduce the reference's 0.75 F-px offset of flipped targets
            (as in the reference) by moving flipped samples' keypoints by ``-(stride - 1)`` I-px.
            Default False: MMPose flips in I, and the targets stay exact.

    Encoded (all float32 numpy, F grid ``(H, W)`` = ``heatmap_size[::-1]``):
        ``heatmaps (K+1, H, W)``: keypoint Gaussians (sigma) then the centre (center_sigma,
        channel K, last); people merge by max. Only visible keypoints (``v > 0``) inside
        ``[0, W) x [0, H)`` are drawn.
        ``heatmap_weights (K+1, H, W)``: the one-channel {1, bg_weight} map of the reference
        broadcast to every channel: 1 inside the support square of any drawn Gaussian.
        Multiply by MMPose's ``heatmap_mask`` (``BottomupGetHeatmapMask``) for the ignore
        regions; the mask is packed because ``field_mapping_table`` lists it.
        ``displacements (2K, H, W)``: ``pixel - keypoint`` in F units, channel 2k = x, 2k+1 =
        y, on the square around the centre cell, for visible in-map keypoints of persons with a
        valid centre. Where squares overlap, the person with the smaller I-area wins (ties: the
        later person, as the reference's overwrite).
        ``displacement_weights (2K, H, W)``: ``1 / sqrt(area_I)`` of the winner, 0 elsewhere.

    Centre rule: mean of the visible keypoints (all labelled ones, also those
    outside the canvas, as the reference averages before cropping); no centre if the O-area
    is below ``min_center_area`` (``area_O = area / |det(warp_mat)|``) or not finite. The
    centre Gaussian needs the centre inside the map; the offset square needs ``int(c_F)``
    (truncation, as the reference) inside the map.

    Reference points not reproduced, with the reason:
        * Offset overlap: the reference keeps one shared "area of last writer" map for all
          channels and treats an existing exact ``(0, 0)`` offset as empty. We resolve each
          channel independently by the smaller-area rule. The two agree unless three or more
          squares overlap with different visible-keypoint sets, or a keypoint lies exactly on an
          integer F pixel inside another person's square.
        * Flip quirk: see ``flip_target_shift``.
        * ``area=None`` (no pipeline area): every person passes the area rule and the offset
          weight uses the area of the visible keypoints' box in I (at least 1).
    """

    label_mapping_table = dict()
    field_mapping_table = dict(
        heatmaps='heatmaps',
        heatmap_weights='heatmap_weights',
        displacements='displacements',
        displacement_weights='displacement_weights',
        heatmap_mask='heatmap_mask',
    )
    instance_mapping_table = dict(
        keypoints='keypoints',
        keypoints_visible='keypoints_visible',
        bbox='bboxes',
        bbox_score='bbox_scores',
        area='areas',
    )

    def __init__(self,
                 input_size: Tuple[int, int],
                 heatmap_size: Tuple[int, int],
                 sigma: Union[float, Sequence[float]] = 2.0,
                 center_sigma: float = 4.0,
                 bg_weight: float = 0.1,
                 offset_radius: int = 4,
                 min_center_area: float = 32**2,
                 topk: int = 30,
                 center_thr: Optional[float] = 0.01,
                 bbox_center_fallback: bool = True,
                 flip_target_shift: bool = False) -> None:
        super().__init__()
        self.input_size = check_size('input_size', input_size)
        self.heatmap_size = check_size('heatmap_size', heatmap_size)
        self.scale_factor = (np.array(self.input_size, dtype=np.float64) /
                             np.array(self.heatmap_size, dtype=np.float64))
        if np.ndim(sigma) == 0:
            self.sigma = check_positive('sigma', sigma)
        else:
            sig = [check_positive('sigma', s) for s in sigma]
            if not sig:
                raise ValueError('sigma must be a positive float or a non-empty sequence of '
                                 'positive floats (one per keypoint), got []')
            self.sigma = np.asarray(sig, dtype=np.float64)
        self.center_sigma = check_positive('center_sigma', center_sigma)
        self.bg_weight = check_positive('bg_weight', bg_weight, allow_zero=True)
        if int(offset_radius) != offset_radius or offset_radius < 1:
            raise ValueError(f'offset_radius must be a positive int, got {offset_radius!r}')
        self.offset_radius = int(offset_radius)
        self.min_center_area = check_positive('min_center_area', min_center_area,
                                               allow_zero=True)
        if int(topk) != topk or topk < 1:
            raise ValueError(f'topk must be a positive int, got {topk!r}')
        self.topk = int(topk)
        if center_thr is not None:
            center_thr = float(center_thr)
        self.center_thr = center_thr
        self.bbox_center_fallback = bool(bbox_center_fallback)
        self.flip_target_shift = bool(flip_target_shift)
        keys = {'area', 'warp_mat'}
        if self.bbox_center_fallback:
            keys |= {'bbox', 'iscrowd'}
        if self.flip_target_shift:
            keys |= {'flip', 'flip_direction'}
        self.auxiliary_encode_keys = keys

    # ------------------------------------------------------------------ encode
    def _keypoint_sigmas(self, K: int) -> np.ndarray:
        if np.ndim(self.sigma) == 0:
            return np.full(K, self.sigma, dtype=np.float64)
        if len(self.sigma) != K:
            raise ValueError(f'sigma has {len(self.sigma)} values but the data has K={K} '
                             'keypoints; give one sigma or one per keypoint')
        return self.sigma

    def _centres(self, kpts_i: np.ndarray, vis: np.ndarray, area_o: np.ndarray,
                 bbox, iscrowd) -> Tuple[np.ndarray, np.ndarray]:
        """Centres ``(N, 2)`` in I and their validity ``(N,)``."""
        N = kpts_i.shape[0]
        nvis = vis.sum(1)
        safe = np.where(vis[..., None], kpts_i, 0.0)
        centres = safe.sum(1) / np.maximum(nvis, 1)[:, None]
        has = nvis > 0
        if self.bbox_center_fallback and bbox is not None and iscrowd is not None:
            b = np.asarray(bbox, dtype=np.float64)
            if b.ndim == 2 and b.shape == (N, 4):
                bc = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], -1)
            elif b.ndim == 3 and b.shape[0] == N and b.shape[2] == 2:
                bc = b.mean(1)  # corners: the mean is the warped bbox centre (affine)
            else:
                raise ValueError(f'bbox must be (N, 4) xyxy or (N, 4, 2) corners with N={N}, '
                                 f'got shape {b.shape}')
            crowd = np.asarray(iscrowd).reshape(-1).astype(bool)
            if crowd.shape[0] != N:
                raise ValueError(f'iscrowd must have N={N} entries, got {crowd.shape[0]}')
            use_box = (~has) & (~crowd) & np.isfinite(bc).all(1)
            centres = np.where(use_box[:, None], bc, centres)
            has = has | use_box
        # relative slack: area arrives as float32 area_O * det and is divided back here
        with np.errstate(invalid='ignore'):
            big = ~np.isnan(area_o) & (area_o * (1 + 1e-6) >= self.min_center_area)
        valid = has & big & np.isfinite(centres).all(1)
        return centres, valid

    def encode(self,
               keypoints: np.ndarray,
               keypoints_visible: Optional[np.ndarray] = None,
               area: Optional[np.ndarray] = None,
               warp_mat: Optional[np.ndarray] = None,
               bbox: Optional[np.ndarray] = None,
               iscrowd: Optional[np.ndarray] = None,
               flip: Optional[bool] = None,
               flip_direction: Optional[str] = None) -> Dict[str, np.ndarray]:
        """Encode one image's people into LOGO-CAP targets.

        Args:
            keypoints: ``(N, K, 2)`` in I pixels (after the pipeline's affine / flip).
            keypoints_visible: ``(N, K)`` (``> 0`` = labelled); None = all visible.
            area: ``(N,)`` person areas in I (MMPose's ``area`` after ``BottomupRandomAffine``,
                i.e. the COCO area times ``det(warp_mat)``).
            warp_mat: ``(2, 3)`` or ``(3, 3)`` O->I affine from the pipeline (for the O-area).
            bbox, iscrowd: for the bbox-centre fallback (see class docstring).
            flip, flip_direction: for ``flip_target_shift``.

        Returns:
            dict with ``heatmaps``, ``heatmap_weights``, ``displacements``,
            ``displacement_weights`` (see class docstring).
        """
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.ndim != 3 or kp.shape[-1] != 2:
            raise ValueError(f'keypoints must be (N, K, 2), got shape {kp.shape}')
        N, K, _ = kp.shape
        if K < 1:
            raise ValueError('keypoints must have K >= 1 keypoints, got K=0')
        if keypoints_visible is None:
            vis = np.ones((N, K), dtype=bool)
        else:
            v = np.asarray(keypoints_visible)
            if v.ndim == 3 and v.shape[-1] == 2:
                v = v[..., 0]
            if v.shape != (N, K):
                raise ValueError(f'keypoints_visible must be (N, K) = {(N, K)}, got {v.shape}')
            vis = v > 0
        vis = vis & np.isfinite(kp).all(-1)
        sig_k = self._keypoint_sigmas(K)
        stride = self.scale_factor
        if self.flip_target_shift and flip and flip_direction in (None, 'horizontal'):
            kp = kp.copy()
            kp[..., 0] -= stride[0] - 1

        # areas: I for weights, O for the centre rule
        if area is None:
            vx = np.where(vis[..., None], kp, np.nan)
            with np.errstate(all='ignore'), warnings.catch_warnings():
                warnings.simplefilter('ignore', RuntimeWarning)  # all-NaN rows
                box = np.nanmax(vx, 1) - np.nanmin(vx, 1)
            area_i = np.nan_to_num(box[:, 0] * box[:, 1], nan=1.0).clip(min=1.0)
            area_o = np.full(N, np.inf)
        else:
            area_i = np.asarray(area, dtype=np.float64).reshape(-1)
            if area_i.shape[0] != N:
                raise ValueError(f'area must have N={N} entries, got {area_i.shape[0]}')
            area_o = area_i.copy()
            if warp_mat is not None:
                wm = np.asarray(warp_mat, dtype=np.float64)
                if wm.shape not in ((2, 3), (3, 3)):
                    raise ValueError(f'warp_mat must be (2, 3) or (3, 3), got {wm.shape}')
                det = abs(np.linalg.det(wm[:2, :2]))
                if not np.isfinite(det) or det <= 0:
                    raise ValueError(f'warp_mat must be invertible, got det={det}')
                area_o = area_i / det

        W, H = self.heatmap_size
        heatmaps = np.zeros((K + 1, H, W), dtype=np.float32)
        foreground = np.zeros((H, W), dtype=bool)
        displacements = np.zeros((2 * K, H, W), dtype=np.float32)
        disp_weights = np.zeros((2 * K, H, W), dtype=np.float32)

        if N > 0:
            centres_i, cvalid = self._centres(kp, vis, area_o, bbox, iscrowd)
            kf = kp / stride  # (N, K, 2) F
            cf = centres_i / stride  # (N, 2) F

            def in_map(p):
                return ((p[..., 0] >= 0) & (p[..., 0] < W) & (p[..., 1] >= 0) &
                        (p[..., 1] < H))

            with np.errstate(invalid='ignore'):
                kin = vis & in_map(kf)
                cin = cvalid & in_map(cf)

            # heatmaps: keypoints then centres, one vectorised pass
            n_idx, k_idx = np.nonzero(kin)
            c_idx = np.nonzero(cin)[0]
            pts = np.concatenate([kf[n_idx, k_idx], cf[c_idx]], 0)
            chans = np.concatenate([k_idx, np.full(len(c_idx), K, np.int64)])
            sigmas = np.concatenate([sig_k[k_idx], np.full(len(c_idx), self.center_sigma)])
            render_gaussians(heatmaps, foreground, pts, chans, sigmas)

            # displacements
            self._offsets(displacements, disp_weights, kf, kin, cf, cvalid, area_i)

        weights = np.where(foreground, 1.0, self.bg_weight).astype(np.float32)
        return dict(
            heatmaps=heatmaps,
            heatmap_weights=np.ascontiguousarray(
                np.broadcast_to(weights, heatmaps.shape)),
            displacements=displacements,
            displacement_weights=disp_weights)

    def _offsets(self, disp: np.ndarray, wts: np.ndarray, kf: np.ndarray, kin: np.ndarray,
                 cf: np.ndarray, cvalid: np.ndarray, area_i: np.ndarray) -> None:
        """Fill offset targets in place, smaller person winning per pixel."""
        N, K, _ = kf.shape
        _, H, W = disp.shape
        r = self.offset_radius
        with np.errstate(invalid='ignore'):
            ct = np.trunc(np.nan_to_num(cf, nan=-1.0)).astype(np.int64)  # int(): truncation
        ok_c = (cvalid & (ct[:, 0] >= 0) & (ct[:, 1] >= 0) & (ct[:, 0] < W) &
                (ct[:, 1] < H) & np.isfinite(area_i) & (area_i > 0))
        d = np.arange(-r, r)
        px = ct[:, 0, None] + d  # (N, 2r)
        py = ct[:, 1, None] + d
        okx = (px >= 0) & (px < W)
        oky = (py >= 0) & (py < H)
        # candidates (n, k, iy, ix)
        cand = (ok_c[:, None, None, None] & kin[:, :, None, None] &
                oky[:, None, :, None] & okx[:, None, None, :])
        n, k, iy, ix = np.nonzero(cand)
        if n.size == 0:
            return
        yy = py[n, iy]
        xx = px[n, ix]
        cell = (k * H + yy) * W + xx
        # winner per (k, pixel): smallest area, ties -> largest person index (last writer)
        order = np.lexsort((-n, area_i[n], cell))
        cell_s = cell[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = cell_s[1:] != cell_s[:-1]
        win = order[first]
        n, k, yy, xx = n[win], k[win], yy[win], xx[win]
        disp[2 * k, yy, xx] = (xx - kf[n, k, 0]).astype(np.float32)
        disp[2 * k + 1, yy, xx] = (yy - kf[n, k, 1]).astype(np.float32)
        w = (1.0 / np.sqrt(area_i[n])).astype(np.float32)
        wts[2 * k, yy, xx] = w
        wts[2 * k + 1, yy, xx] = w

    # ------------------------------------------------------------------ decode
    def decode(self, heatmaps: ArrayLike, displacements: ArrayLike):
        """Centre-offset initial poses (the ``adaptation='none'`` baseline).

        Args:
            heatmaps: ``(K+1, h, w)`` or ``(B, K+1, h, w)`` (centre last), torch or numpy.
            displacements: ``(2K, h, w)`` or ``(B, 2K, h, w)`` (pixel - keypoint, F units).

        Returns:
            Per sample ``(keypoints (N, K, 2) in I pixels, (center_scores (N,),
            keypoint_scores (N, K)))``, like MMPose's SPR: the centres kept by 3x3 NMS on the
            I-upsampled centre map, top-``topk`` and ``score >= center_thr`` (the best is kept
            if none passes); ``P0 = c - stride * O[floor(c / stride)]``; keypoint score =
            upsampled keypoint heatmap at P0 (reference sampler) times the centre score.
            Batched input gives a list of per-sample tuples. Output type follows the input
            (numpy in, numpy out; tensors stay on their device).
        """
        is_np = isinstance(heatmaps, np.ndarray)
        hm = torch.from_numpy(np.asarray(heatmaps)) if is_np else heatmaps
        dp = (torch.from_numpy(np.asarray(displacements))
              if isinstance(displacements, np.ndarray) else displacements)
        dp = dp.to(device=hm.device)
        batched = hm.dim() == 4
        if not batched:
            hm, dp = hm[None], dp[None]
        if hm.dim() != 4 or dp.dim() != 4:
            raise ValueError('heatmaps/displacements must be (C, h, w) or (B, C, h, w), got '
                             f'{tuple(hm.shape)} and {tuple(dp.shape)}')
        B, C, h, w = hm.shape
        K = C - 1
        if K < 1 or dp.shape != (B, 2 * K, h, w):
            raise ValueError(f'displacements must be (B, 2K, h, w) = {(B, 2 * K, h, w)} for '
                             f'heatmaps {tuple(hm.shape)}, got {tuple(dp.shape)}')
        hm = hm.float() if not hm.is_floating_point() else hm
        dp = dp.to(hm.dtype)
        sx, sy = self.scale_factor
        if sx != sy or sx != int(sx):
            raise ValueError('decode needs one integer stride (input_size / heatmap_size), '
                             f'got {tuple(self.scale_factor)}')
        s = int(sx)
        up = upsample_heatmaps(hm, (h * s, w * s))
        centers, scores, valid = find_centers(up[:, K], self.topk, self.center_thr)
        poses = centre_offset_poses(centers, dp, stride=s)  # (B, T, K, 2)
        v = sample_heatmaps_at_poses(up[:, :K], poses)  # (B, T, K)
        kpt_scores = v * scores[..., None]
        out = []
        for b in range(B):  # per image (the top-k slots are already vectorised)
            m = valid[b]
            item = (poses[b][m], (scores[b][m], kpt_scores[b][m]))
            if is_np:
                item = (item[0].cpu().numpy(),
                        (item[1][0].cpu().numpy(), item[1][1].cpu().numpy()))
            out.append(item)
        return out if batched else out[0]

