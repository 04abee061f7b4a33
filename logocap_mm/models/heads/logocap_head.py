"""LogoCapHead: heads, CMP, losses and batched, flip-tested prediction.

Frames: **F** is the head's output grid (stride 4 in the paper), **I** the network input
canvas (stride 1). ``predict`` returns keypoints in I, as MMPose's bottom-up estimator
expects (it maps them to the original image).
"""
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.structures import InstanceData, PixelData
from mmpose.models.heads.base_head import BaseHead
from mmpose.registry import KEYPOINT_CODECS, MODELS
from mmpose.utils.typing import (ConfigType, Features, OptConfigType,
                                 OptSampleList, Predictions)
from torch import Tensor

from logocap_mm.models.layers import LogoCapCMP
from logocap_mm.models.utils.global_adapt import (gaussian_window,
                                                  kam_convolution,
                                                  sample_windows)
from logocap_mm.models.utils.matching import (kem_oks, match_kem_targets,
                                              pad_ground_truth)
from logocap_mm.models.utils.sampling import sample_kem_latents
from .logocap_decoder import LogoCapDecoder
from .meta_checks import check_flip_indices, config_flip_indices
from .test_options import TEST_CFG_KEYS, resolve_adaptation  # noqa: F401

COCO_SIGMAS = [.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, .107,
               .107, .087, .087, .089, .089]
FLIP_MODES = ('reference', 'aligned')


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def _parse_metainfo(metainfo):
    if metainfo is None:
        return None
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    if isinstance(metainfo, str) and not osp.isfile(metainfo):
        # an MMPose-relative path ('configs/_base_/datasets/coco.py'): the copy that
        # ships inside mmpose, found without MMPose's "does not exist" warning
        import mmpose
        shipped = osp.join(osp.dirname(mmpose.__file__), '.mim', metainfo)
        metainfo = shipped if osp.isfile(shipped) else metainfo
    return parse_pose_metainfo(
        dict(from_file=metainfo) if isinstance(metainfo, str) else metainfo)


def _load_sigmas(sigmas, meta, num_keypoints):
    if sigmas is None and meta is not None:
        sigmas = meta['sigmas']
    if sigmas is None:
        if num_keypoints != 17:
            raise ValueError(f'sigmas must be given for num_keypoints={num_keypoints} '
                             '(the COCO sigmas are only the default for 17 keypoints)')
        sigmas = COCO_SIGMAS
    sigmas = [float(s) for s in np.asarray(sigmas).reshape(-1)]
    if len(sigmas) != num_keypoints:
        raise ValueError(f'sigmas has {len(sigmas)} entries but num_keypoints is '
                         f'{num_keypoints}')
    if min(sigmas) <= 0:
        raise ValueError(f'sigmas must be positive, got {sigmas}')
    return sigmas


def _compact(mask: Tensor) -> Tuple[Tensor, Tensor]:
    """Move the True slots of each row to the front.

    Args:
        mask: (B, T) bool.

    Returns:
        index (B, T2) long into T, and the compacted mask (B, T2), T2 = max row count.
    """
    B, T = mask.shape
    t2 = int(mask.sum(1).max().item()) if mask.numel() else 0
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :t2]
    return order, mask.gather(1, order)


@MODELS.register_module()
class LogoCapHead(BaseHead):
    """LOGO-CAP head.

    Three parallel 1x1 branches on one feature map ``feat`` (B, C, h, w):
    heatmaps (B, K+1, h, w) (keypoints + centre, raw), offsets (B, 2K, h, w)
    (pixel − keypoint, F units), embedding (B, D, h, w); the CMP turns local KEM latents
    into KAMs; :class:`LogoCapDecoder` does the test-time decoding.

    Args:
        in_channels (int): channels C of the (single) input feature map.
        num_keypoints (int): K.
        heatmap_channels (int): c_h of the heatmap transition (32 for W32, 48 for W48).
        offset_channels (int): transition width of the offset branch (256).
        embed_channels (int): D of the embedding (64).
        cmp_channels (Sequence[int]): CMP widths (512, 256, 128).
        cmp_attn_norm (Sequence[bool]): which CMP layers use Attentive Norm.
        num_affine (int): Attentive Norm mixtures (20).
        sigmas (Sequence[float], optional): OKS sigmas; default from ``metainfo`` or COCO.
        metainfo (str | dict, optional): dataset metainfo file (MMPose style) for sigmas.
        decoder (dict): the ``LogoCapCodec`` config (training targets; stride).
        pose_decoder (dict): extra ``LogoCapDecoder`` arguments (topk, sizes, NMS...).
        train_topk (int): centre slots per image for the OKS matching (30).
        oks_gate (float): shifted-pose OKS an instance needs to be trained (0.5).
        feature_index (int): which map of a multi-output neck to use (-1: the last; FPN: 0).
        loss_heatmap, loss_offset, loss_oks, loss_refine (dict): loss configs.
        init_cfg: PyTorch default init for the heads (the reference has no custom init).
    """

    def __init__(self,
                 in_channels: Union[int, Sequence[int]],
                 num_keypoints: int = 17,
                 heatmap_channels: int = 32,
                 offset_channels: int = 256,
                 embed_channels: int = 64,
                 cmp_channels: Sequence[int] = (512, 256, 128),
                 cmp_attn_norm: Sequence[bool] = (False, True, False),
                 num_affine: int = 20,
                 sigmas: Optional[Sequence[float]] = None,
                 metainfo: Optional[Union[str, dict]] = None,
                 decoder: OptConfigType = None,
                 pose_decoder: OptConfigType = None,
                 train_topk: int = 30,
                 oks_gate: float = 0.5,
                 feature_index: int = -1,
                 loss_heatmap: ConfigType = dict(type='KeypointMSELoss',
                                                 use_target_weight=True, loss_weight=1.0),
                 loss_offset: ConfigType = dict(type='LogoCapOffsetLoss', loss_weight=0.01),
                 loss_oks: ConfigType = dict(type='LogoCapOKSLoss', loss_weight=0.01),
                 loss_refine: ConfigType = dict(type='LogoCapRefineLoss', sigma=4.,
                                                loss_weight=1.0),
                 init_cfg: OptConfigType = None):
        super().__init__(init_cfg)
        if isinstance(in_channels, (list, tuple)):
            in_channels = sum(in_channels)
        for name, v in (('in_channels', in_channels), ('num_keypoints', num_keypoints),
                        ('heatmap_channels', heatmap_channels),
                        ('offset_channels', offset_channels),
                        ('embed_channels', embed_channels), ('train_topk', train_topk)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f'{name} must be a positive int, got {v!r}')
        if not (0. <= oks_gate <= 1.):
            raise ValueError(f'oks_gate must be in [0, 1], got {oks_gate!r}')
        self.in_channels = in_channels
        self.feature_index = feature_index
        self.num_keypoints = K = num_keypoints
        self.embed_channels = embed_channels
        self.train_topk = train_topk
        self.oks_gate = float(oks_gate)
        meta = _parse_metainfo(metainfo)
        self.sigmas = _load_sigmas(sigmas, meta, K)
        # the config's flip pairs: checked now, compared with any dataset meta given later
        self.config_flip_indices = config_flip_indices(meta)
        if self.config_flip_indices:
            check_flip_indices(self.config_flip_indices, K,
                               f'flip_indices of the head metainfo {metainfo!r}')

        self.heatmap_layers = _conv_bn_relu(in_channels, heatmap_channels)
        self.heatmap_final = nn.Conv2d(heatmap_channels, K + 1, 1)
        self.offset_layers = _conv_bn_relu(in_channels, offset_channels)
        self.offset_final = nn.Conv2d(offset_channels, 2 * K, 1)
        self.embedding_layers = _conv_bn_relu(in_channels, embed_channels)
        self.cmp = LogoCapCMP(K, embed_channels, cmp_channels, cmp_attn_norm, num_affine)

        self.decoder = KEYPOINT_CODECS.build(decoder) if decoder is not None else None
        stride = 4
        if self.decoder is not None:
            sx = self.decoder.input_size[0] / self.decoder.heatmap_size[0]
            stride = int(round(sx))
        pd = dict(type='LogoCapDecoder', sigmas=self.sigmas, stride=stride)
        pd.update(pose_decoder or {})
        self.pose_decoder: LogoCapDecoder = MODELS.build(pd)
        # set explicitly in the config? (then model.test_cfg.adaptation may not contradict it)
        self._decoder_adaptation = (pose_decoder or {}).get('adaptation')
        if self.pose_decoder.num_keypoints != K:
            raise ValueError(f'pose_decoder has {self.pose_decoder.num_keypoints} sigmas, '
                             f'num_keypoints is {K}')
        self.stride = stride
        self.loss_heatmap = MODELS.build(loss_heatmap)
        self.loss_offset = MODELS.build(loss_offset)
        self.loss_oks = MODELS.build(loss_oks)
        self.loss_refine = MODELS.build(loss_refine)

    # ---------------------------------------------------------------- forward
    def _feature(self, feats: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        x = feats if isinstance(feats, Tensor) else feats[self.feature_index]
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'LogoCapHead expects one (B, {self.in_channels}, h, w) feature '
                             f'map (use a neck that concatenates to one stride-{self.stride} '
                             f'map), got {tuple(x.shape)}')
        return x

    def forward(self, feats: Union[Tensor, Sequence[Tensor]]) -> Tuple[Tensor, Tensor, Tensor]:
        """feats -> heatmaps (B, K+1, h, w), offsets (B, 2K, h, w), embedding (B, D, h, w)."""
        x = self._feature(feats)
        heatmaps = self.heatmap_final(self.heatmap_layers(x))
        offsets = self.offset_final(self.offset_layers(x))
        embedding = self.embedding_layers(x)
        return heatmaps, offsets, embedding

    # ---------------------------------------------------------------- flip
    @staticmethod
    def _shift_aligned(x: Tensor, ratio: float) -> Tensor:
        """Resample a flipped-back F map by the sub-pixel misalignment of ``torch.flip``.

        After flipping the image (x → W_I − 1 − x) and the map back, F pixel i holds the
        value of F coordinate i + (1 − 1/stride); interpolate to get coordinate i.
        """
        frac = 1. - ratio
        prev = torch.cat([x[..., :1], x[..., :-1]], dim=-1)
        return frac * prev + (1 - frac) * x

    def flip_merge(self, out: Tuple[Tensor, Tensor, Tensor], out_flip: Tuple[Tensor, ...],
                   flip_indices: Sequence[int], flip_mode: str = 'reference'):
        """Average un-flipped and flipped-back outputs.

        ``'reference'``: plain ``torch.flip`` without any half-pixel correction (as in the reference);
        ``'aligned'``: also shift the flipped-back maps by 1 − 1/stride F px (deviation, off
        by default).
        """
        if flip_mode not in FLIP_MODES:
            raise ValueError(f'flip_mode must be one of {FLIP_MODES}, got {flip_mode!r}')
        K = self.num_keypoints
        idx = check_flip_indices(flip_indices, K, 'flip_indices (data sample metainfo)')
        hm, off, emb = out
        hm_f, off_f = out_flip[0].flip(-1), out_flip[1].flip(-1)
        hm_f = hm_f[:, idx + [K]]
        B, _, h, w = off_f.shape
        off_f = off_f.reshape(B, K, 2, h, w)[:, idx]
        off_f = torch.stack([-off_f[:, :, 0], off_f[:, :, 1]], dim=2).reshape(B, 2 * K, h, w)
        if flip_mode == 'aligned':
            hm_f = self._shift_aligned(hm_f, 1. / self.stride)
            off_f = self._shift_aligned(off_f, 1. / self.stride)
        return 0.5 * (hm + hm_f), 0.5 * (off + off_f), emb

    # ---------------------------------------------------------------- test_cfg
    @property
    def test_cfg(self) -> dict:
        """``model.test_cfg`` as the estimator hands it over (checked when it is set)."""
        return self.__dict__.get('_test_cfg', {})

    @test_cfg.setter
    def test_cfg(self, cfg: Optional[dict]):
        # BasePoseEstimator sets ``head.test_cfg`` right after building the head: a
        # conflicting or misspelt option fails at build time, not at the first image
        self.resolve_test_cfg(cfg or {})
        self.__dict__['_test_cfg'] = cfg or {}

    def resolve_test_cfg(self, test_cfg: dict) -> str:
        """The adaptation level ``model.test_cfg`` selects (see :mod:`.test_options`)."""
        return resolve_adaptation(test_cfg, self.pose_decoder.adaptation,
                                  self._decoder_adaptation)

    # ---------------------------------------------------------------- predict
    def predict(self, feats: Features, batch_data_samples: OptSampleList,
                test_cfg: ConfigType = {}) -> Predictions:
        """Predict poses (keypoints in I) for a batch; flip test as one batched head pass.

        ``test_cfg`` keys: ``flip_test`` (bool), ``flip_mode`` ('reference' | 'aligned'),
        ``adaptation`` ('full' | 'partial' | 'none'), ``output_heatmaps`` (bool).
        """
        test_cfg = test_cfg or {}
        level = self.resolve_test_cfg(test_cfg)
        flip = test_cfg.get('flip_test', False)
        if flip:
            if not (isinstance(feats, (list, tuple)) and len(feats) == 2):
                raise ValueError('flip_test=True expects [feats, flipped_feats] from the '
                                 'estimator')
            xo, xf = self._feature(feats[0]), self._feature(feats[1])
            B = xo.shape[0]
            hm, off, emb = self.forward(torch.cat([xo, xf]))
            flip_indices = batch_data_samples[0].metainfo.get('flip_indices')
            if flip_indices is None:
                raise ValueError('flip_test needs `flip_indices` in the data samples metainfo '
                                 '(dataset metainfo)')
            hm, off, emb = self.flip_merge((hm[:B], off[:B], emb[:B]),
                                           (hm[B:], off[B:]), flip_indices,
                                           test_cfg.get('flip_mode', 'reference'))
        else:
            hm, off, emb = self.forward(feats)
            B = hm.shape[0]
        canvas = []
        for ds in batch_data_samples:
            w, h = ds.metainfo.get('input_size', (hm.shape[-1] * self.stride,
                                                  hm.shape[-2] * self.stride))
            canvas.append((int(h), int(w)))
        dets = self.pose_decoder(hm, off, emb, self.cmp, canvas_hw=canvas, adaptation=level)
        preds = [self._to_instances(d) for d in dets]
        if test_cfg.get('output_heatmaps', False):
            return preds, [PixelData(heatmaps=hm[b].detach()) for b in range(B)]
        return preds

    def _to_instances(self, det: Dict[str, Tensor]) -> InstanceData:
        kpts = det['keypoints'].detach().float().cpu().numpy().reshape(-1, self.num_keypoints, 2)
        scores = det['keypoint_scores'].detach().float().cpu().numpy().reshape(
            -1, self.num_keypoints)
        pose_scores = det['scores'].detach().float().cpu().numpy().reshape(-1)
        if len(kpts):
            bboxes = np.concatenate([kpts.min(1), kpts.max(1)], axis=1)
        else:
            bboxes = np.zeros((0, 4), dtype=np.float32)
        return InstanceData(keypoints=kpts, keypoint_scores=scores, bboxes=bboxes,
                            bbox_scores=pose_scores)

    # ---------------------------------------------------------------- loss
    def _gt_instances(self, batch_data_samples, device, dtype):
        """Pad the ground truth to (B, G, ...) tensors in I (G >= 1; empty -> all zero)."""
        K = self.num_keypoints
        items = []
        for ds in batch_data_samples:
            gi = ds.gt_instances
            kp = np.asarray(gi.keypoints, dtype=np.float32) \
                if 'keypoints' in gi else np.zeros((0, K, 2), np.float32)
            if kp.size and (kp.ndim != 3 or kp.shape[1] != K):
                raise ValueError(
                    f'annotations have keypoints of shape {tuple(kp.shape)} but the model has '
                    f'num_keypoints={K}: use a config for this dataset (e.g. '
                    'configs/logocap/w32_crowdpose.py for 14-keypoint CrowdPose)')
            kp = kp.reshape(-1, K, 2)
            vis = np.zeros((len(kp), K), np.float32)
            if 'keypoints_visible' in gi and len(kp):
                vis = np.asarray(gi.keypoints_visible, dtype=np.float32).reshape(
                    len(kp), K, -1)[..., 0]
            area = np.asarray(gi.areas, dtype=np.float32).reshape(-1) \
                if 'areas' in gi else np.zeros(len(kp), np.float32)
            if len(area) != len(kp):
                raise ValueError(f'gt_instances.areas has {len(area)} entries for '
                                 f'{len(kp)} instances')
            # invisible / out-of-canvas keypoints do not count
            w, h = ds.metainfo.get('input_size', (np.inf, np.inf))
            # the crop test is the one before a horizontal flip (x -> w - 1 - x), as the
            # reference: [0, w) before the flip is (-1, w - 1] after it
            if ds.metainfo.get('flip', False) and \
                    ds.metainfo.get('flip_direction', 'horizontal') == 'horizontal':
                in_x = (kp[..., 0] > -1) & (kp[..., 0] <= w - 1)
            else:
                in_x = (kp[..., 0] >= 0) & (kp[..., 0] < w)
            inside = in_x & (kp[..., 1] >= 0) & (kp[..., 1] < h)
            vis = np.where(inside & np.isfinite(kp).all(-1), (vis > 0).astype(np.float32), 0.)
            items.append((np.nan_to_num(kp), vis, np.nan_to_num(area)))
        return pad_ground_truth(items, K, device, dtype)

    def loss(self, feats: Tuple[Tensor], batch_data_samples: OptSampleList,
             train_cfg: ConfigType = {}) -> dict:
        """Losses: heatmap, offset, OKS kernel (KAM) and refined heatmap."""
        hm, off, emb = self.forward(feats)
        B, C, h, w = hm.shape
        K = self.num_keypoints
        gt_fields = [d.gt_fields for d in batch_data_samples]
        gt_hm = torch.stack([f.heatmaps for f in gt_fields]).to(hm)
        hw = torch.stack([f.heatmap_weights for f in gt_fields]).to(hm)
        hw = hw.expand_as(gt_hm) if hw.shape[1] == 1 else hw
        mask = None
        if 'heatmap_mask' in gt_fields[0]:
            mask = torch.stack([f.heatmap_mask for f in gt_fields]).to(hm)
            if mask.dim() == 3:
                mask = mask[:, None]
        losses = dict()
        losses['loss_heatmap'] = self.loss_heatmap(hm, gt_hm, hw, mask)
        gt_off = torch.stack([f.displacements for f in gt_fields]).to(off)
        off_w = torch.stack([f.displacement_weights for f in gt_fields]).to(off)
        losses['loss_offset'] = self.loss_offset(off, gt_off, off_w)

        # ---- LOGO-CAP branch: detached top-k initial poses matched to the ground truth
        dec = self.pose_decoder
        with torch.no_grad():
            init = dec.initial_poses(hm.detach(), off.detach(), None, thr=None,
                                     topk=self.train_topk)
            poses = init['poses']                                   # (B, T, K, 2) I
            kem = dec.kem(poses)                                    # (B, T, s, s, K, 2)
            gt_kpts, gt_vis, gt_area = self._gt_instances(batch_data_samples, hm.device,
                                                          hm.dtype)
            oks = kem_oks(kem, gt_kpts, gt_vis, gt_area,
                          torch.tensor(self.sigmas, device=hm.device, dtype=hm.dtype))
            match = match_kem_targets(oks, gt_vis, gate=self.oks_gate)
            keep = match['keep']                                    # (B, T)
            passed = match['oks_person'].flatten(2).max(-1).values >= self.oks_gate
            num_pos = (passed & keep).sum()
            idx, mask2 = _compact(keep)                             # (B, T2)
            T2 = idx.shape[1]

            def take(x):
                return x.gather(1, idx.reshape(B, T2, *([1] * (x.dim() - 2))).expand(
                    B, T2, *x.shape[2:]))

            poses_k, kem_k = take(poses), take(kem)
            oks_k = take(match['oks_joints'])                       # (B, T2, K, s, s)
            w_k = take(match['weights'])                            # (B, T2, K)
            assigned = take(match['assigned'])                      # (B, T2)
            gt_k = gt_kpts.gather(1, assigned[..., None, None].expand(B, T2, K, 2))

        s = dec.kem_size
        lat = sample_kem_latents(emb, kem_k, dec.stride)           # (B, T2, K*D, s, s)
        kams = self.cmp(lat[mask2])                                 # (M, K, s, s) raw
        losses['loss_oks'] = self.loss_oks(kams, oks_k[mask2], w_k[mask2], num_pos)

        hr = F.interpolate(hm[:, :K], size=(h * dec.stride, w * dec.stride),
                           mode='bilinear', align_corners=False)    # not detached
        win = sample_windows(hr, poses_k, dec.window_size)          # (B, T2, K, S, S)
        win = win * gaussian_window(dec.window_size, dec.window_sigma, device=hm.device,
                                    dtype=hm.dtype)
        kam_full = kams.new_zeros(B, T2, K, s, s)
        kam_full[mask2] = kams
        resp = kam_convolution(win, kam_full)[mask2]                # (M, K, S, S)
        losses['loss_refine'] = self.loss_refine(resp, poses_k[mask2], gt_k[mask2],
                                                 w_k[mask2])
        # every term must stay in the graph of every branch (DDP) and be finite
        zero = sum(p.sum() for p in (hm, off, emb)) * 0.
        for k_ in ('loss_oks', 'loss_refine'):
            losses[k_] = losses[k_] + zero
        return losses
