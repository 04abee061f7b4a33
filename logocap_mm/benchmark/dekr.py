"""MMPose's DEKR as the bottom-up baseline of a benchmark: building and per-image timing.

DEKR is built from MMPose's W32 COCO config with pretrained loading and the rescore net off,
with the backbone of the LOGO-CAP config (same width), the same input size, keypoint count
and flip setting. Its ``DeformConv2d`` needs full mmcv (compiled ops); on mmcv-lite it is
skipped with a message, or :class:`TorchvisionDeformConv` substitutes
``torchvision.ops.deform_conv2d`` (same shapes and FLOPs; for timing only).
"""
import copy
import os.path as osp
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from .models import quiet_init, strip_pretrained
from .timing import StageTimer, median_min

__all__ = ['DEKR_CONFIG', 'TorchvisionDeformConv', 'build_dekr', 'time_dekr']

DEKR_CONFIG = 'body_2d_keypoint/dekr/coco/dekr_hrnet-w32_8xb10-140e_coco-512x512.py'


class TorchvisionDeformConv(torch.nn.Module):
    """Stand-in for mmcv's ``DeformConv2d`` through ``torchvision.ops.deform_conv2d``
    (timing only: same shapes and FLOPs; offsets are used in torchvision's layout)."""

    def __init__(self, conv):
        super().__init__()
        self.weight = conv.weight
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation

    def forward(self, x, offset):
        from torchvision.ops import deform_conv2d
        return deform_conv2d(x, offset, self.weight, None, self.stride, self.padding,
                             self.dilation)


def build_dekr(logocap_cfg, device, flip: bool = True, input_size: int = 512,
               deform: str = 'mmcv', seed: int = 0, stride: int = 4,
               num_keypoints: int = 17) -> Tuple[Optional[torch.nn.Module], Optional[str]]:
    """DEKR with LOGO-CAP's backbone. Returns (model, None) or (None, reason it was skipped).

    Args:
        logocap_cfg: the LOGO-CAP Config (its backbone and head ``in_channels`` are used).
        deform: 'mmcv' (needs full mmcv) or 'torchvision' (substitute, timing only).
        stride: I px per F px of the backbone output (the LOGO-CAP head's stride).
    """
    import mmpose
    from mmengine.config import Config
    from mmpose.registry import MODELS
    if deform not in ('mmcv', 'torchvision'):
        raise ValueError(f"deform must be 'mmcv' or 'torchvision', got {deform!r}")
    path = osp.join(osp.dirname(mmpose.__file__), '.mim', 'configs', DEKR_CONFIG)
    if not osp.isfile(path):
        return None, f'DEKR skipped: MMPose config {DEKR_CONFIG} not found under {path}'
    mcfg = copy.deepcopy(Config.fromfile(path).model)
    mcfg.backbone = copy.deepcopy(logocap_cfg.model.backbone)
    mcfg.head.in_channels = logocap_cfg.model.head.in_channels
    mcfg.head.num_keypoints = num_keypoints
    mcfg.head.rescore_cfg = None
    hsize = input_size // stride
    mcfg.head.decoder.input_size = (input_size, input_size)
    mcfg.head.decoder.heatmap_size = (hsize, hsize)
    mcfg.test_cfg.flip_test = flip
    strip_pretrained(mcfg)
    torch.manual_seed(seed)
    try:
        model = MODELS.build(mcfg)
    except ImportError as e:
        return None, (f'DEKR skipped: {e} (DEKRHead needs mmcv.ops.DeformConv2d from full '
                      'mmcv with compiled ops)')
    quiet_init(model)
    model = model.to(device).eval()
    blocks = [m for m in model.modules() if hasattr(m, 'adapt_conv')]
    if deform == 'torchvision':
        for m in blocks:
            m.adapt_conv = TorchvisionDeformConv(m.adapt_conv)
    try:  # probe the deformable conv on a tiny input
        with torch.no_grad():
            blocks[0](torch.zeros(1, blocks[0].norm.num_features, 4, 4, device=device))
    except NotImplementedError as e:
        return None, ('DEKR skipped: its AdaptiveActivationBlock uses '
                      'mmcv.ops.DeformConv2d, which needs full mmcv with compiled ops '
                      f'(this environment has mmcv-lite: "{e}"). Install full mmcv '
                      '(`mim install "mmcv>=2.0.1,<2.2"` built for this torch) or use '
                      'the torchvision deform_conv2d substitute for timing '
                      "(deform='torchvision', tools/benchmark.py --dekr-deform torchvision).")
    return model, None


def _dekr_samples(batch: int, size: int, flip_indices: Sequence[int]):
    from mmpose.structures import PoseDataSample
    out = []
    for _ in range(batch):
        ds = PoseDataSample()
        ds.set_metainfo(dict(input_size=(size, size), input_center=np.array([size / 2] * 2),
                             input_scale=np.array([size, size], np.float32),
                             flip_indices=list(flip_indices), skeleton_links=[]))
        out.append(ds)
    return out


def time_dekr(model, x1, scene, repeats: int, warmup: int, device,
              flip_indices: Sequence[int]) -> dict:
    """DEKR on one image (its head predicts batch 1), with the N-person synthetic heatmaps
    and displacements of ``scene`` swapped into its decoder.

    Args:
        x1: (1, 3, S, S) input; scene: :func:`~logocap_mm.benchmark.scene.synthetic_scene`
            of batch 1.

    Returns:
        dict(total_ms, cpu_ms: median/min dicts, persons_found: int).
    """
    head = model.head
    hm = scene['heatmaps'][:1].to(device)
    disp = -scene['offsets'][:1].to(device)          # DEKR: keypoint - pixel
    samples = _dekr_samples(1, x1.shape[-1], flip_indices)
    orig = head.decode

    def decode(heatmaps, displacements, test_cfg={}, metainfo={}):
        return orig([hm], [disp], test_cfg, metainfo)

    head.decode = decode
    timer = StageTimer(device)
    tot, cpu, found = [], [], None
    try:
        with torch.no_grad():
            for i in range(warmup + repeats):
                timer.start()
                res = model.predict(x1, samples)
                timer.lap('total')
                if i >= warmup:
                    tot.append(timer.times['total'])
                    cpu.append(timer.cpu_times['total'])
                timer.clear()
                found = len(res[0].pred_instances)
    finally:
        head.decode = orig
    return dict(total_ms=median_min(tot), cpu_ms=median_min(cpu), persons_found=found)
