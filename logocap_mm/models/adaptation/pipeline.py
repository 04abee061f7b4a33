"""LogoCapDecoder: the one test-time decode pipeline of LOGO-CAP.

Stages, in order (the names :meth:`LogoCapDecoder.decode` reports to ``on_stage``)::

    initial    x4 upsampling, centre NMS, top-k, centre-offset initial poses P0
    local      KEM grids, embedding sampling, CMP, clamp (LogoCapLocalAdaptation)
    global     LOGO-CA windows, KAM convolution, top-2 decode (LogoCapGlobalAdaptation);
               or 'partial' (best KEM point) or 'none' (P0 and the heatmap at P0)
    finalize   pose NMS, people cap, per-image packing

The pipeline has no parameters. It holds plain (not registered) references to the head's
local and global adaptation modules (:meth:`LogoCapDecoder.bind`), so the head's state dict
has each tensor once. :meth:`padded` is the tensor-only core (fixed T = topk and no host
sync with ``trim=False``); :meth:`finalize` does the ragged per-image part.
"""
import contextlib
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmpose.registry import MODELS
from torch import Tensor

from logocap_mm.codecs.decode_utils import (centre_offset_poses, find_centers,
                                            sample_heatmaps_at_poses, upsample_heatmaps)
from logocap_mm.models.utils.pose_nms import pose_nms
from .checks import (ADAPTATION_LEVELS, check_adaptation, check_finite_outputs,
                     check_value, finite, odd_positive)
from .slots import autocast_on as _autocast_on
from .slots import pad_slots as _pad_slots
from .slots import padded_local as _padded_local

__all__ = ['LogoCapDecoder', 'ADAPTATION_LEVELS', 'check_finite_outputs']

StageHook = Optional[Callable[[str], None]]


def _refine_stage(level: str) -> str:
    return 'global' if level == 'full' else level


@MODELS.register_module()
class LogoCapDecoder(nn.Module):
    """Test-time decoder of LOGO-CAP (the settings of ``model.head.pose_decoder``).

    Args:
        sigmas (Sequence[float]): per-keypoint OKS sigmas (K,), for the KEM expansion rates.
        stride (int): I pixels per F pixel (4).
        topk (int): centre slots T (30).
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
        pose_nms (bool): run the pose NMS.
        fast (bool): use the fast global path in :meth:`decode` (numerically equal).

    The KEM and window settings are read by the head to build its
    ``LogoCapLocalAdaptation`` / ``LogoCapGlobalAdaptation``, bound here with :meth:`bind`.
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
        if not sigmas:
            raise ValueError('sigmas must be a non-empty list of positive floats, got []')
        sigmas = check_value('sigmas', sigmas)
        topk = check_value('topk', topk)
        max_people = check_value('max_people', max_people)
        odd_positive('kem_size', kem_size)
        odd_positive('window_size', window_size)
        if window_size < kem_size:
            raise ValueError(f'window_size ({window_size}) must be >= kem_size ({kem_size})')
        if not (0. <= convex_lambda <= 1.):
            raise ValueError(f'convex_lambda must be in [0, 1], got {convex_lambda!r}')
        finite('window_sigma', window_sigma, 0, strict=True)
        finite('kem_radius', kem_radius, 0, strict=True)
        stride = check_value('stride', stride)
        center_thr = check_value('center_thr', center_thr)
        nms_dist_ratio = check_value('nms_dist_ratio', nms_dist_ratio)
        nms_num_joints = check_value('nms_num_joints', nms_num_joints)
        pose_nms = check_value('pose_nms', pose_nms)
        check_adaptation(adaptation)
        self.sigmas = sigmas
        self.num_keypoints = len(sigmas)
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
        object.__setattr__(self, '_local', None)
        object.__setattr__(self, '_global', None)
        object.__setattr__(self, '_sinks', [])

    check_adaptation = staticmethod(check_adaptation)

    # ------------------------------------------------------------------ composition
    def bind(self, local_adaptation: nn.Module, global_adaptation: nn.Module) -> None:
        """Use these (head-owned) modules for the local and global stages. Plain
        references: they are not registered here (no duplicate state-dict keys)."""
        object.__setattr__(self, '_local', local_adaptation)
        object.__setattr__(self, '_global', global_adaptation)

    @property
    def local_adaptation(self) -> nn.Module:
        if self._local is None:
            raise ValueError('LogoCapDecoder has no local adaptation: it is bound by '
                             'LogoCapHead (use head.pose_decoder)')
        return self._local

    @property
    def global_adaptation(self) -> nn.Module:
        if self._global is None:
            raise ValueError('LogoCapDecoder has no global adaptation: it is bound by '
                             'LogoCapHead (use head.pose_decoder)')
        return self._global

    @contextlib.contextmanager
    def tracing(self):
        """``with decoder.tracing() as traces:`` every :meth:`decode` inside the block (e.g.
        a whole ``model.predict``, one call per image chunk) appends its trace dict to the
        list ``traces``; nothing is patched or swapped."""
        sink: List[dict] = []
        self._sinks.append(sink)
        try:
            yield sink
        finally:
            self._sinks.remove(sink)

    # ------------------------------------------------------------------ stages
    def initial_poses(self, heatmaps: Tensor, offsets: Tensor, canvas_hw=None,
                      thr: Optional[float] = 'default', topk: Optional[int] = None,
                      trim: bool = True) -> Dict[str, Tensor]:
        """Centres and centre-offset initial poses (stage 'initial').

        Args:
            heatmaps: (B, K+1, h, w) raw heatmaps (centre last), F grid.
            offsets: (B, 2K, h, w) offsets (pixel − keypoint), F units.
            canvas_hw: per image (H_i, W_i) of the valid input canvas (list or (B, 2)
                tensor); centre peaks outside it (batch padding) are suppressed. None: all.
            thr: centre threshold (default: ``center_thr``; None: all top-k valid, training).
            trim: cut T to the largest number of valid slots in the batch (valid slots are
                a prefix of the score-sorted top-k; one host sync). False: T = topk.

        Returns:
            dict with ``heatmaps_up`` (B, K+1, H, W) in I, ``centers`` (B, T, 2) long,
            ``center_scores`` (B, T), ``valid`` (B, T) bool, ``poses`` (B, T, K, 2) in I.
        """
        B, C, h, w = heatmaps.shape
        H, W = h * self.stride, w * self.stride
        hr = upsample_heatmaps(heatmaps, (H, W))
        cmap = hr[:, -1]
        if canvas_hw is not None:
            ys = torch.arange(H, device=hr.device)[:, None]
            xs = torch.arange(W, device=hr.device)[None, :]
            lim = torch.as_tensor(canvas_hw, device=hr.device).reshape(B, 2)
            inside = (ys[None] < lim[:, 0, None, None]) & (xs[None] < lim[:, 1, None, None])
            cmap = torch.where(inside, cmap, torch.zeros((), dtype=cmap.dtype,
                                                          device=cmap.device))
        thr = self.center_thr if thr == 'default' else thr
        centers, scores, valid = find_centers(cmap, topk or self.topk, thr)
        if thr is not None and trim:
            t = max(int(valid.sum(1).max().item()), 1)
            centers, scores, valid = centers[:, :t], scores[:, :t], valid[:, :t]
        poses = centre_offset_poses(centers, offsets, self.stride)
        return dict(heatmaps_up=hr, centers=centers, center_scores=scores, valid=valid,
                    poses=poses)

    def refine(self, level: str, heatmaps_up: Tensor, poses: Tensor,
               local: Optional[Dict[str, Tensor]] = None, valid: Optional[Tensor] = None,
               fast: Optional[bool] = None) -> Tuple[Tensor, Tensor]:
        """Stage 'global' | 'partial' | 'none': (B, K, H, W) keypoint maps in I, P0
        (B, T, K, 2), the local stage's dict -> keypoints (B, T, K, 2) I, values (B, T, K).
        ``valid`` (B, T) lets the global stage skip padded slots (host sync)."""
        if level == 'none':
            return poses, sample_heatmaps_at_poses(heatmaps_up, poses)
        if level == 'partial':
            return self.global_adaptation.partial(local['kem'], local['kams'])
        return self.global_adaptation(heatmaps_up, poses, local['kams'], valid,
                                      fast=self.fast if fast is None else fast)

    def scores(self, keypoints: Tensor, values: Tensor, center_scores: Tensor,
               valid: Tensor) -> Dict[str, Tensor]:
        """Keypoint scores v̄·s_c, pose scores (their mean) and validity (centre valid and
        pose score > 0): the padded result (see :meth:`padded`)."""
        kpt_scores = values * center_scores[..., None]
        pose_scores = kpt_scores.mean(-1)
        return dict(keypoints=keypoints, keypoint_scores=kpt_scores, scores=pose_scores,
                    valid=valid & (pose_scores > 0), center_scores=center_scores)

    # ------------------------------------------------------------------ the pipeline
    def padded(self, heatmaps: Tensor, offsets: Tensor, embedding: Tensor, canvas_hw=None,
               adaptation: Optional[str] = None, trim: bool = False,
               fast: Optional[bool] = None, trace: Optional[dict] = None,
               on_stage: StageHook = None, local_valid_only: bool = False) -> Dict[str, Tensor]:
        """Tensor-only core of the decode (no NMS, no per-image packing).

        Args:
            heatmaps, offsets, embedding: (B, K+1, h, w), (B, 2K, h, w), (B, D, h, w), F grid.
            canvas_hw: per-image valid (H, W) in I, list or (B, 2) tensor; None: whole map.
            adaptation: 'full' | 'partial' | 'none' (None: ``self.adaptation``).
            trim: False: T = topk and no host sync (with ``canvas_hw`` None or a tensor and
                the plain global path); True: T = the batch's largest valid count.
            fast: global path (None: ``self.fast`` when trimming, else the plain path).
            trace: a dict to fill with every intermediate (keys: :meth:`decode`).
            on_stage: ``on_stage(name, phase)`` with phase 'start' / 'end' around the
                stages 'initial', 'local' (not for 'none'), 'global' | 'partial' | 'none'.
            local_valid_only: the local stage (KEM sampling, CMP) runs on the valid slots
                (a prefix of the score-sorted top-k; in a batch, the prefix of the image
                with the most) and its outputs are padded
                back to T with zeros (P0 for 'partial' keypoints), so its cost follows the
                number of people when T is fixed (``trim=False``, the ONNX graph). The
                valid slots' results are the same; it reads the count from the device.

        Returns:
            dict(keypoints (B, T, K, 2) I, keypoint_scores (B, T, K), scores (B, T) pose
            score, valid (B, T) bool (centre valid and score > 0), center_scores (B, T)).
        """
        dev = heatmaps.device.type
        if _autocast_on(dev):  # a caller's autocast: geometry fp32, CMP as test_cfg.precision
            with torch.autocast(dev, enabled=False):
                return self.padded(heatmaps.float(), offsets.float(), embedding.float(),
                                   canvas_hw, adaptation, trim, fast, trace, on_stage,
                                   local_valid_only)
        level = check_adaptation(adaptation or self.adaptation)
        fast = (self.fast and trim) if fast is None else fast
        hook = on_stage or (lambda name, phase: None)
        hook('initial', 'start')
        init = self.initial_poses(heatmaps, offsets, canvas_hw, trim=trim)
        hook('initial', 'end')
        poses, valid = init['poses'], init['valid']
        hr = init['heatmaps_up'][:, :self.num_keypoints]
        local, n = None, None
        if level != 'none':
            hook('local', 'start')
            if local_valid_only:
                local, n = self._local_on_valid(embedding, poses, valid)
            else:
                local = self.local_adaptation(embedding, poses)
            hook('local', 'end')
        stage = _refine_stage(level)
        hook(stage, 'start')
        if n is not None and level == 'partial':
            kpts, vals = self.refine(level, hr, poses[:, :n], local)
            kpts, vals = _pad_slots(kpts, poses.shape[1], poses), _pad_slots(vals, poses.shape[1])
        elif n is not None and level == 'full' and poses.shape[0] == 1:
            # (batch 1: a batched file keeps the padded global stage below)
            # the global stage on the n valid slots too (plain path, the KAM convolution as
            # a loop over the slots: no group count that depends on n), padded back to T
            # with (P0, 0): its cost follows the number of people in the exported graph
            kpts, vals = self.global_adaptation(hr, poses[:, :n], local['kams'], fast=False,
                                                per_slot=True)
            kpts, vals = _pad_slots(kpts, poses.shape[1], poses), _pad_slots(vals, poses.shape[1])
        else:
            kpts, vals = self.refine(level, hr, poses, _padded_local(local, n, poses.shape[1]),
                                     valid if trim else None, fast)
        hook(stage, 'end')
        out = self.scores(kpts, vals, init['center_scores'], valid)
        if trace is not None:
            trace.update(level=level, heatmaps_up=init['heatmaps_up'], centers=init['centers'],
                         center_scores=init['center_scores'], valid=valid, poses=poses,
                         keypoints=kpts, values=vals, keypoint_scores=out['keypoint_scores'],
                         scores=out['scores'], ok=out['valid'])
            if local is not None:
                trace.update(kem=local['kem'], kams_raw=local['kams_raw'],
                             kams=local['kams'])
        return out

    def _local_on_valid(self, embedding: Tensor, poses: Tensor, valid: Tensor):
        """The local stage on the first n slots of (B, T, K, 2) P0, n the largest valid
        count of the batch (valid slots are a prefix of each image's slots; an image's slots
        between its own count and n are invalid and stay so). Returns its dict and n (a
        graph value when exported)."""
        n = valid.sum(1).max().item()
        if torch.compiler.is_exporting():   # bounds of the data-dependent slot count
            torch._check(n >= 1)
            torch._check(n <= poses.shape[1])
        return self.local_adaptation(embedding, poses[:, :n]), n

    def finalize(self, padded, values: Optional[Tensor] = None,
                 center_scores: Optional[Tensor] = None, valid: Optional[Tensor] = None,
                 trace: Optional[dict] = None) -> List[Dict[str, Tensor]]:
        """Pose NMS, the people cap and per-image packing of a :meth:`padded` result.

        ``finalize(keypoints, values, center_scores, valid)`` (the stage tensors, as
        :meth:`scores` takes them) is accepted too.

        Returns:
            one dict per image: ``keypoints`` (N, K, 2) I, ``keypoint_scores`` (N, K),
            ``scores`` (N,), in keep order (centre order of the NMS keep decisions, as the
            reference), N <= max_people. ``trace`` gets ``keep_rank`` (B, T) long (rank in
            keep order, -1 dropped) and ``order`` (per image the kept slots, output order).
        """
        if values is not None:
            padded = self.scores(padded, values, center_scores, valid)
        keypoints, kpt_scores = padded['keypoints'], padded['keypoint_scores']
        pose_scores, ok = padded['scores'], padded['valid']
        B, T = ok.shape
        if self.use_pose_nms and T > 0:
            rank = pose_nms(keypoints, pose_scores, ok, self.nms_dist_ratio,
                            self.nms_num_joints)
        else:
            rank = torch.where(ok, torch.cumsum(ok.long(), 1) - 1,
                               torch.full_like(ok, -1, dtype=torch.long))
        results, orders = [], []
        for b in range(B):  # per image output packing only (ragged lists)
            keep = rank[b] >= 0
            order = torch.argsort(rank[b].masked_fill(~keep, T + 1))[:int(keep.sum())]
            if order.numel() > self.max_people:
                top = pose_scores[b, order].topk(self.max_people).indices
                order = order[top.sort().values]
            orders.append(order)
            results.append(dict(keypoints=keypoints[b, order],
                                keypoint_scores=kpt_scores[b, order],
                                scores=pose_scores[b, order]))
        if trace is not None:
            trace.update(keep_rank=rank, order=orders)
        return results

    def decode(self, heatmaps: Tensor, offsets: Tensor, embedding: Tensor, canvas_hw=None,
               adaptation: Optional[str] = None, trace: bool = False,
               on_stage: StageHook = None
               ) -> Tuple[List[Dict[str, Tensor]], Optional[Dict[str, object]]]:
        """Full test-time decode of a batch (what ``LogoCapHead.predict`` calls).

        Args:
            heatmaps: (B, K+1, h, w); offsets: (B, 2K, h, w); embedding: (B, D, h, w), F grid.
            canvas_hw: per-image valid canvas (H, W) in I (list or (B, 2) tensor).
            adaptation: 'full' | 'partial' | 'none' (None: ``self.adaptation``).
            trace: also return every intermediate.
            on_stage: ``on_stage(name, phase)``, phase 'start' / 'end', around 'initial',
                'local' (not for 'none'), 'global' | 'partial' | 'none', 'finalize'. The
                pipeline does not synchronise devices: a CUDA timer synchronises itself.

        Returns:
            (results, trace): results as :meth:`finalize`; trace None or a dict with
            ``level``, ``heatmaps_up`` (B, K+1, H, W) I, ``centers`` (B, T, 2) long I,
            ``center_scores`` (B, T), ``valid`` (B, T) centre validity, ``poses`` P0
            (B, T, K, 2) I, ``kem`` (B, T, s, s, K, 2) I, ``kams_raw`` / ``kams`` (clamped)
            (B, T, K, s, s) (no kem/kams for 'none'), ``keypoints`` (B, T, K, 2) I,
            ``values`` (B, T, K), ``keypoint_scores`` (B, T, K), ``scores`` (B, T), ``ok``
            (B, T) (valid and score > 0), ``keep_rank`` (B, T), ``order`` (list of (N_b,)).
            T = the batch's largest number of valid centres.

        Raises:
            ValueError: if any head output holds NaN / inf (bad weights or input).
        """
        check_adaptation(adaptation or self.adaptation)
        check_finite_outputs(heatmaps=heatmaps, offsets=offsets, embedding=embedding)
        tr = {} if trace or self._sinks else None
        padded = self.padded(heatmaps, offsets, embedding, canvas_hw, adaptation, trim=True,
                             trace=tr, on_stage=on_stage)
        if on_stage is not None:
            on_stage('finalize', 'start')
        results = self.finalize(padded, trace=tr)
        if on_stage is not None:
            on_stage('finalize', 'end')
        for sink in self._sinks:
            sink.append(tr)
        return results, tr if trace else None

    def forward(self, heatmaps: Tensor, offsets: Tensor, embedding: Tensor,
                cmp: Optional[nn.Module] = None, canvas_hw=None,
                adaptation: Optional[str] = None) -> List[Dict[str, Tensor]]:
        """``decode(...)[0]``. ``cmp`` (legacy argument) must be None or the bound CMP."""
        if cmp is not None and cmp is not getattr(self.local_adaptation, 'cmp', None):
            raise ValueError('LogoCapDecoder uses the CMP of its bound local adaptation; '
                             'set head.local_adaptation.cmp to use another one')
        return self.decode(heatmaps, offsets, embedding, canvas_hw, adaptation)[0]
