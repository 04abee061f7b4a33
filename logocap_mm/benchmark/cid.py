"""MMPose's CID (``CIDHead``) as a speed peer: same HRNet-W32, input and flip test as LOGO-CAP.

CID is built from MMPose's own config (``CID_CONFIG`` under ``mmpose/.mim/configs``) with
LOGO-CAP's backbone settings and no pretrained download. Its people come from the top
``max_instances`` maxima of its centre heatmap above ``score_threshold``; timing N people
sets ``max_instances=N`` and a threshold below every score, so exactly N instances go
through its instance decoupling (GFD) stage, whatever the random weights predict. Like
MMPose's ``CIDHead.predict`` the run is one image at a time.

``run_cid(..., precision=, memory_format=)`` runs it in its stock layout and fp32
(``'contiguous'``, ``'fp32'``), or in LOGO-CAP's: the whole model converted to channels_last
and the forward under ``torch.autocast``; its decoder gets fp32 maps either way.
"""
import copy
import os.path as osp
import statistics
import time
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from logocap_mm.models.fusion import FoldedCopy
from logocap_mm.models.precision import NetworkPlan, DTYPES, prepare_module

CID_CONFIG = 'body_2d_keypoint/cid/coco/cid_hrnet-w32_8xb20-140e_coco-512x512.py'
COCO_FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]


def cid_config_path() -> str:
    import mmpose
    return osp.join(osp.dirname(mmpose.__file__), '.mim', 'configs', CID_CONFIG)


def build_cid(device, backbone: Optional[dict] = None, input_size: int = 512,
              flip: bool = True, seed: int = 0, in_channels: Optional[int] = None
              ) -> Tuple[Optional[torch.nn.Module], str]:
    """CID W32 in eval mode on ``device`` (random weights), or ``(None, reason)``.

    Args:
        backbone: a backbone config to use instead of CID's (e.g. LOGO-CAP's HRNet-W32
            entry, so both share one backbone definition); its ``init_cfg`` is dropped.
        in_channels: the concatenated feature channels of that backbone (CID's head input).
    """
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS
    path = cid_config_path()
    if not osp.isfile(path):
        return None, f'CID skipped: MMPose config {CID_CONFIG} not found under {path}'
    init_default_scope('mmpose')
    MMLogger.get_current_instance().setLevel('WARNING')
    cfg = Config.fromfile(path)
    mcfg = copy.deepcopy(cfg.model)
    if backbone is not None:
        mcfg.backbone = copy.deepcopy(backbone)
    mcfg.backbone.pop('init_cfg', None)
    if in_channels is not None:
        mcfg.head.in_channels = int(in_channels)
    mcfg.head.decoder = dict(mcfg.head.decoder, input_size=(input_size, input_size),
                             heatmap_size=(input_size // 4, input_size // 4))
    mcfg.test_cfg = dict(mcfg.test_cfg, flip_test=flip)
    torch.manual_seed(seed)
    model = MODELS.build(mcfg)
    model.init_weights()
    return model.eval().to(device), 'CID built from ' + CID_CONFIG


def cid_samples(size: int):
    from mmpose.structures import PoseDataSample
    return [PoseDataSample(metainfo=dict(
        input_size=(size, size), input_center=np.array([size / 2, size / 2]),
        input_scale=np.array([size, size], np.float32), ori_shape=(size, size),
        img_shape=(size, size), flip_indices=COCO_FLIP))]


class _Fp32Outputs:
    """Cast CID's instance maps and scores to fp32 before its numpy decoder (autocast
    leaves them in bf16/fp16, which numpy cannot hold)."""

    def __init__(self, head):
        self.head = head

    def __enter__(self):
        iia, gfd = self.head.iia_module, self.head.gfd_module
        orig = iia.forward_test

        def forward_test(feats, test_cfg):
            f, c, s = orig(feats, test_cfg)
            return f, c, s.float()
        iia.forward_test = forward_test
        self.hook = gfd.register_forward_hook(lambda m, i, o: o.float())
        return self

    def __exit__(self, *exc):
        del self.head.iia_module.forward_test
        self.hook.remove()
        return False


def run_cid(model, x: torch.Tensor, persons: int, precision: str = 'fp32',
            memory_format: str = 'contiguous', repeats: int = 5, warmup: int = 1,
            fuse_conv_bn: bool = False) -> Dict:
    """Time CID's ``predict`` on one preprocessed image ``x`` (1, 3, S, S) with exactly
    ``persons`` instances; returns median/min ms and the number of poses returned.
    ``fuse_conv_bn``: on a copy whose backbone has its BatchNorms folded (as LOGO-CAP's
    ``test_cfg.fuse_conv_bn`` does)."""
    if x.shape[0] != 1:
        raise ValueError(f'CID predicts one image at a time, got a batch of {x.shape[0]}')
    device = x.device
    if fuse_conv_bn:
        model = copy.deepcopy(model)  # its own tensors: layout changes stay on the copy
        model.backbone = FoldedCopy('CID backbone').get(model.backbone, x) or model.backbone
    plan = NetworkPlan(device.type, DTYPES[precision], memory_format == 'channels_last')
    prepare_module(model, plan.channels_last)
    old = dict(model.test_cfg)
    model.test_cfg = dict(old, max_instances=int(persons), score_threshold=-1.)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == 'cuda' else (lambda: 0)
    ts, found = [], None
    try:
        with torch.no_grad(), _Fp32Outputs(model.head), plan.autocast():
            xin = plan.input(x)
            for i in range(warmup + repeats):
                sync()
                t = time.perf_counter()
                out = model.predict(xin, cid_samples(x.shape[-1]))
                sync()
                if i >= warmup:
                    ts.append((time.perf_counter() - t) * 1e3)
                found = len(out[0].pred_instances)
    finally:
        model.test_cfg = old
    return dict(persons=persons, persons_found=found, precision=precision,
                memory_format=memory_format, fuse_conv_bn=fuse_conv_bn, median_ms=statistics.median(ts), min_ms=min(ts))
