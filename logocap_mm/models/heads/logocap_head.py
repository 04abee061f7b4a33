"""LogoCapHead: the 1x1 branches, local/global adaptation, losses and batched, flip-tested
prediction (flip merge: :mod:`.head_flip`; losses: :mod:`.head_loss`).

Frames: **F** is the head's output grid (stride 4 in the paper), **I** the network input
canvas (stride 1). ``predict`` returns keypoints in I, as MMPose's bottom-up estimator
expects (it maps them to the original image).
"""
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.structures import InstanceData, PixelData
from mmpose.models.heads.base_head import BaseHead
from mmpose.registry import KEYPOINT_CODECS, MODELS
from mmpose.utils.typing import (ConfigType, Features, OptConfigType,
                                 OptSampleList, Predictions)
from torch import Tensor

from logocap_mm.models.adaptation import (LogoCapDecoder, LogoCapGlobalAdaptation,
                                          LogoCapLocalAdaptation)
from logocap_mm.models.fusion import FoldedCopy
from logocap_mm.models.precision import current_plan, prepare_module
from .head_flip import FLIP_MODES, flip_merge, shift_aligned  # noqa: F401
from .head_loss import HeadLossMixin
from .meta_checks import check_flip_indices, config_flip_indices
from .inference_options import TEST_CFG_KEYS, resolve_adaptation  # noqa: F401

COCO_SIGMAS = [.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, .107,
               .107, .087, .087, .089, .089]


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class MapBranches(nn.Module):
    """The head's three map branches as one module over the same parameters (what
    ``test_cfg.fuse_conv_bn`` folds and the memory format applies to).

    features (B, C, h, w) F -> heatmaps (B, K+1, h, w), offsets (B, 2K, h, w),
    embedding (B, D, h, w), all F."""

    def __init__(self, head: nn.Module):
        super().__init__()
        for name in ('heatmap_layers', 'heatmap_final', 'offset_layers', 'offset_final',
                     'embedding_layers'):
            setattr(self, name, getattr(head, name))
        self.training = head.training  # a view of the head's parts, in their mode

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        return (self.heatmap_final(self.heatmap_layers(x)),
                self.offset_final(self.offset_layers(x)), self.embedding_layers(x))


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


def _canvases(data_samples) -> list:
    """(H_I, W_I) of each data sample that carries ``input_size`` (W_I, H_I)."""
    out = []
    for ds in data_samples or ():
        wh = ds.metainfo.get('input_size')
        if wh is not None:
            out.append((int(wh[1]), int(wh[0])))
    return out


@MODELS.register_module()
class LogoCapHead(HeadLossMixin, BaseHead):
    """LOGO-CAP head.

    Three parallel 1x1 branches on one feature map ``feat`` (B, C, h, w):
    heatmaps (B, K+1, h, w) (keypoints + centre, raw), offsets (B, 2K, h, w)
    (pixel − keypoint, F units), embedding (B, D, h, w). ``local_adaptation``
    (:class:`LogoCapLocalAdaptation`: KEMs, embedding sampling, the CMP that turns KEM
    latents into KAMs) and ``global_adaptation`` (:class:`LogoCapGlobalAdaptation`, LOGO-CA)
    serve the loss and the test-time pipeline ``pose_decoder`` (:class:`LogoCapDecoder`),
    which holds plain references to them. ``head.cmp`` is a read-only alias of
    ``local_adaptation.cmp``; checkpoints with the older ``cmp.*`` keys load unchanged.

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
        dec = self.pose_decoder
        self.local_adaptation = LogoCapLocalAdaptation(
            K, embed_channels, self.sigmas, cmp_channels, cmp_attn_norm, num_affine,
            stride=stride, kem_size=dec.kem_size, kem_radius=dec.kem_radius,
            oks_gate=oks_gate)
        self.global_adaptation = LogoCapGlobalAdaptation(
            dec.window_size, dec.window_sigma, dec.convex_lambda, dec.fast)
        dec.bind(self.local_adaptation, self.global_adaptation)
        self._register_load_state_dict_pre_hook(self._upgrade_hook)
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

    def check_stride(self, x: Tensor, canvas_hw: Sequence[Tuple[int, int]]) -> None:
        """Refuse a feature map whose output stride is not the head's.

        Args:
            x: (B, C, h, w) feature map (F grid).
            canvas_hw: the (H_I, W_I) input canvases it was computed from (a padded batch
                has the largest one's size).

        Raises:
            ValueError: ``max(H_I / h, W_I / w)`` is not within a factor 2 of
                ``self.stride`` (e.g. a ResNet without an upsampling neck: stride 32),
                naming both strides. Shapes only: no host sync.
        """
        if not canvas_hw:
            return
        H, W = max(c[0] for c in canvas_hw), max(c[1] for c in canvas_hw)
        h, w = int(x.shape[-2]), int(x.shape[-1])
        seen = max(H / max(h, 1), W / max(w, 1))
        if not (self.stride / 2 < seen < self.stride * 2):
            raise ValueError(
                f'LogoCapHead: the feature map is {h}x{w} (h x w) for a {H}x{W} input canvas, '
                f'an output stride of {seen:g}, but the head works at stride {self.stride} '
                '(the codec input_size / heatmap_size); use a backbone or neck whose output '
                f'is at stride {self.stride} (e.g. HRNet with FeatureMapProcessor(concat=True), '
                'or a ResNet with an upsampling neck)')

    # the estimator may hand over features in the network plan's dtype and layout
    follows_network_plan = True

    def forward(self, feats: Union[Tensor, Sequence[Tensor]]) -> Tuple[Tensor, Tensor, Tensor]:
        """feats -> heatmaps (B, K+1, h, w), offsets (B, 2K, h, w), embedding (B, D, h, w).

        Inside ``predict`` the branches run in the current network plan's memory format and
        autocast precision (:mod:`logocap_mm.models.precision`); the maps come back fp32
        contiguous for the decoder."""
        x = self._feature(feats)
        plan = current_plan()
        if plan.identity:
            return self._branches(x)
        x = plan.input(x)
        run = branches = MapBranches(self)
        if plan.fuse_conv_bn:  # the 1x1 conv + BatchNorm of each branch, folded
            folded = self.__dict__.setdefault('_logocap_folded', FoldedCopy('head branches'))
            copy = folded.get(branches, x, warn=plan.fuse_conv_bn is True)
            run = branches if copy is None else copy
        if run is branches:
            for m in branches.children():
                prepare_module(m, plan.channels_last)
        else:
            prepare_module(run, plan.channels_last)
        if plan.dtype is not None:
            x = x.to(plan.dtype)  # one cast for the three branches
        with plan.autocast():
            return plan.output(run(x))

    def _branches(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        return MapBranches(self)(x)

    # ---------------------------------------------------------------- modules
    @property
    def cmp(self) -> nn.Module:
        """Read-only alias of ``local_adaptation.cmp`` (assign to that one)."""
        return self.local_adaptation.cmp

    @property
    def oks_gate(self) -> float:
        """Training OKS gate (held by ``local_adaptation.matcher``)."""
        return self.local_adaptation.matcher.gate

    @oks_gate.setter
    def oks_gate(self, value: float):
        self.local_adaptation.matcher.gate = float(value)

    #: older checkpoint key prefixes (relative to the head) -> current ones
    LEGACY_KEY_PREFIXES = (('cmp.', 'local_adaptation.cmp.'), )

    @classmethod
    def upgrade_state_dict_keys(cls, state_dict, prefix: str = '') -> None:
        """Rename older keys of this head (``prefix`` + ``cmp.*``) in place."""
        for old, new in cls.LEGACY_KEY_PREFIXES:
            old_p = prefix + old
            for k in [k for k in state_dict if k.startswith(old_p)]:
                state_dict[prefix + new + k[len(old_p):]] = state_dict.pop(k)

    @staticmethod
    def _upgrade_hook(state_dict, prefix, *args):
        LogoCapHead.upgrade_state_dict_keys(state_dict, prefix)

    # ---------------------------------------------------------------- flip
    def flip_merge(self, out: Tuple[Tensor, Tensor, Tensor], out_flip: Tuple[Tensor, ...],
                   flip_indices: Sequence[int], flip_mode: str = 'reference'):
        """Average un-flipped and flipped-back outputs (:func:`.head_flip.flip_merge`)."""
        return flip_merge(out, out_flip, flip_indices, self.num_keypoints, self.stride,
                          flip_mode)

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
        """The adaptation level ``model.test_cfg`` selects (see :mod:`.inference_options`)."""
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
            self.check_stride(xo, _canvases(batch_data_samples))
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
            self.check_stride(self._feature(feats), _canvases(batch_data_samples))
            hm, off, emb = self.forward(feats)
            B = hm.shape[0]
        canvas = []
        for ds in batch_data_samples:
            w, h = ds.metainfo.get('input_size', (hm.shape[-1] * self.stride,
                                                  hm.shape[-2] * self.stride))
            canvas.append((int(h), int(w)))
        dets, _ = self.pose_decoder.decode(hm, off, emb, canvas_hw=canvas, adaptation=level)
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

