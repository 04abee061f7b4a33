"""Per-stage inference benchmark of LOGO-CAP against MMPose's DEKR (issue 7, item 1).

Usage (MMPose style)::

    python tools/benchmark.py configs/logocap/w32_coco.py --device cpu \
        --persons 1 10 30 --batch-size 1 4 8 --repeats 5 --warmup 1 --out bench.json

Stages timed (each followed by ``torch.cuda.synchronize()`` on CUDA):

=============  ========================================================================
backbone       backbone + neck + the three 1x1 heads, flip test included (image and
               mirror as one batch, as ``LogoCapPoseEstimator``) and the flip merge
local_kems     x4 upsampling, centre NMS, top-k, centre-offset poses P0, KEM grids
local_kams     embedding sampling at the KEM points, CMP, clamp to [0, 1]
global         LOGO-CA: 97x97 windows, Gaussian prior, KAM convolution, top-2 decode
post           keypoint / pose scores, pose NMS, people cap, packing to numpy
=============  ========================================================================

**Number of people.** With random (or any) weights the centre map is not under our
control, so after the timed backbone stage the head's heatmaps and offsets are replaced by a
deterministic synthetic scene of exactly N people (:func:`synthetic_scene`: a grid of
standing figures with seeded jitter; keypoint and centre Gaussians, a dense centre-offset
field; the embedding stays the network's). The replacement is a tensor swap, outside every
timed region. The decoder stages then run on realistic content (single sharp peaks, poses
that spread over the window), which matters for the pruned global path, and the tool checks
that the decoder finds exactly N centres. The backbone cost does not depend on the image
content, so the input is a seeded random image; the backbone is timed once per repeat and
batch size and its outputs feed the decoder stages of every N.
The staged pipeline is checked against ``LogoCapDecoder.forward`` (same keypoints/scores).

**DEKR** is built from MMPose's ``dekr_hrnet-w32_8xb10-140e_coco-512x512.py`` with
pretrained loading and the rescore net off, with the backbone of CONFIG (same width),
the same input size and flip setting, and timed in the same run with the same synthetic
N-person heatmaps/displacements swapped into its decoder. MMPose's ``DEKRHead`` predicts
one image at a time, so its per-image time is measured at batch 1. Its ``DeformConv2d``
needs full mmcv (compiled ops); on mmcv-lite DEKR is skipped with a message, unless
``--dekr-deform torchvision`` substitutes ``torchvision.ops.deform_conv2d`` (same shapes and
FLOPs; labelled as a substitute in the output).

**FLOPs** are counted per stage with ``torch.utils.flop_counter.FlopCounterMode`` (matmul and
convolution FLOPs of what actually runs; element-wise ops, interpolation and indexing are not
counted). For the global stage ``gflop_plain`` also gives the convolution FLOPs of the plain
(unpruned) path, so ``gflops_plain_equiv`` is the throughput the fast path *effectively*
reaches.

**Peak memory**: CUDA ``max_memory_allocated`` above the pre-run allocation, or on CPU the
peak RSS (``VmHWM`` after resetting it with ``/proc/self/clear_refs``; fallback
``resource.getrusage(...).ru_maxrss``) above the RSS after set-up, each measured
in a fresh subprocess: inference (backbone only, and full) at 1 and 30 people, and one
training step (forward, backward, Adam step) at batch 2 and 12
(``--train-input-size`` to measure it at a smaller input on CPU).
"""
import argparse
import copy
import gc
import json
import os
import os.path as osp
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Dict, Optional, Sequence

import numpy as np
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

STAGES = ('backbone', 'local_kems', 'local_kams', 'global', 'post')
DEKR_CONFIG = 'body_2d_keypoint/dekr/coco/dekr_hrnet-w32_8xb10-140e_coco-512x512.py'
COCO_FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]

# standing figure, (x, y) in units of the person height, centred near the hips
_TEMPLATE17 = np.array([
    [0.00, -0.40], [0.02, -0.42], [-0.02, -0.42], [0.045, -0.41], [-0.045, -0.41],
    [0.10, -0.30], [-0.10, -0.30], [0.14, -0.15], [-0.14, -0.15], [0.15, 0.00],
    [-0.15, 0.00], [0.06, 0.02], [-0.06, 0.02], [0.07, 0.25], [-0.07, 0.25],
    [0.07, 0.47], [-0.07, 0.47]], dtype=np.float64)


# ---------------------------------------------------------------------------------- args
def parse_args(argv=None):
    p = argparse.ArgumentParser(description='LOGO-CAP per-stage speed benchmark vs DEKR')
    p.add_argument('config')
    p.add_argument('--checkpoint', default=None)
    p.add_argument('--device', default='cpu', help="'cpu' or 'cuda' ('cuda:N')")
    p.add_argument('--persons', type=int, nargs='+', default=[1, 10, 30])
    p.add_argument('--batch-size', type=int, nargs='+', default=[1, 4, 8])
    p.add_argument('--no-flip', action='store_true', help='disable the flip test')
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--input-size', type=int, default=None,
                   help='square input side (default: the config codec input size)')
    p.add_argument('--out', default=None, help='write the numbers as JSON')
    p.add_argument('--no-dekr', action='store_true', help='do not time DEKR')
    p.add_argument('--dekr-deform', default='mmcv', choices=['mmcv', 'torchvision'],
                   help="DEKR's deformable conv: mmcv (needs full mmcv) or a torchvision "
                        'substitute (timing only)')
    p.add_argument('--compare-plain', action='store_true',
                   help='also time the plain (reference) global path and compare results')
    p.add_argument('--memory', default='all', choices=['none', 'infer', 'all'],
                   help='peak-memory measurements (subprocesses)')
    p.add_argument('--memory-persons', type=int, nargs='+', default=[1, 30])
    p.add_argument('--train-batch-size', type=int, nargs='+', default=[2, 12])
    p.add_argument('--train-input-size', type=int, default=None,
                   help='input side for the training-step memory (default: --input-size)')
    p.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    p.add_argument('--image-chunk', default=None,
                   help="override the config's test_cfg.image_chunk: 'auto' (1 image per "
                        "chunk on CPU, none on CUDA), 'none' or an int")
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ('persons', 'batch_size', 'memory_persons', 'train_batch_size'):
        vals = getattr(args, name)
        if any(v < 1 for v in vals):
            raise ValueError(f'--{name.replace("_", "-")} values must be >= 1, got {vals}')
    if args.repeats < 1 or args.warmup < 0:
        raise ValueError(f'--repeats must be >= 1 and --warmup >= 0, got {args.repeats}, '
                         f'{args.warmup}')
    if not (args.device == 'cpu' or args.device.startswith('cuda')):
        raise ValueError(f"--device must be 'cpu' or 'cuda[:N]', got {args.device!r}")
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        raise ValueError('--device cuda was given but torch.cuda.is_available() is False')
    for name in ('input_size', 'train_input_size'):
        v = getattr(args, name)
        if v is not None and (v < 64 or v % 32):
            raise ValueError(f'--{name.replace("_", "-")} must be a multiple of 32, >= 64, '
                             f'got {v}')
    return args


# ---------------------------------------------------------------------------------- models
def _strip_pretrained(cfg):
    """Drop every ``init_cfg`` of type Pretrained (no network access), in place."""
    if isinstance(cfg, dict):
        ic = cfg.get('init_cfg')
        if isinstance(ic, dict) and ic.get('type') == 'Pretrained':
            cfg.pop('init_cfg')
        for v in cfg.values():
            _strip_pretrained(v)
    elif isinstance(cfg, (list, tuple)):
        for v in cfg:
            _strip_pretrained(v)
    return cfg


def load_config(path: str, input_size: Optional[int] = None):
    import logocap_mm  # noqa: F401  (registers, installs the mmcv-lite shim)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    if not osp.isfile(path):
        raise ValueError(f'config file not found: {path}')
    init_default_scope('mmpose')
    cfg = Config.fromfile(path)
    _strip_pretrained(cfg.model)
    if input_size is None:
        codec = cfg.model.head.get('decoder') or {}
        input_size = int(codec.get('input_size', (512, 512))[0])
    return cfg, input_size


def _quiet_init(model):
    """``model.init_weights()`` without mmengine's per-parameter INFO log."""
    import logging
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


def build_logocap(cfg, device, checkpoint=None, flip=True, seed=0):
    from mmpose.registry import MODELS
    torch.manual_seed(seed)
    mcfg = copy.deepcopy(cfg.model)
    mcfg.setdefault('test_cfg', {})
    mcfg.test_cfg['flip_test'] = flip
    model = MODELS.build(mcfg)
    _quiet_init(model)
    if checkpoint:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, checkpoint, map_location='cpu')
    return model.to(device).eval()


class _TorchvisionDeformConv(torch.nn.Module):
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


def build_dekr(logocap_cfg, device, flip=True, input_size=512, deform='mmcv', seed=0):
    """MMPose's DEKR W32 config with LOGO-CAP's backbone, pretrained loading and rescore
    net off. Returns (model, None) or (None, reason it was skipped)."""
    import mmpose
    from mmengine.config import Config
    from mmpose.registry import MODELS
    path = osp.join(osp.dirname(mmpose.__file__), '.mim', 'configs', DEKR_CONFIG)
    if not osp.isfile(path):
        return None, f'DEKR skipped: MMPose config {DEKR_CONFIG} not found under {path}'
    dcfg = Config.fromfile(path)
    mcfg = copy.deepcopy(dcfg.model)
    mcfg.backbone = copy.deepcopy(logocap_cfg.model.backbone)
    mcfg.head.in_channels = logocap_cfg.model.head.in_channels
    mcfg.head.rescore_cfg = None
    hsize = input_size // 4
    mcfg.head.decoder.input_size = (input_size, input_size)
    mcfg.head.decoder.heatmap_size = (hsize, hsize)
    mcfg.test_cfg.flip_test = flip
    _strip_pretrained(mcfg)
    torch.manual_seed(seed)
    try:
        model = MODELS.build(mcfg)
    except ImportError as e:
        return None, (f'DEKR skipped: {e} (DEKRHead needs mmcv.ops.DeformConv2d from full '
                      'mmcv with compiled ops)')
    _quiet_init(model)
    model = model.to(device).eval()
    blocks = [m for m in model.modules() if hasattr(m, 'adapt_conv')]
    if deform == 'torchvision':
        for m in blocks:
            m.adapt_conv = _TorchvisionDeformConv(m.adapt_conv)
    try:  # probe the deformable conv on a tiny input
        with torch.no_grad():
            blocks[0](torch.zeros(1, blocks[0].norm.num_features, 4, 4, device=device))
    except NotImplementedError as e:
        return None, ('DEKR skipped: its AdaptiveActivationBlock uses '
                      'mmcv.ops.DeformConv2d, which needs full mmcv with compiled ops '
                      f'(this environment has mmcv-lite: "{e}"). Install full mmcv '
                      '(`mim install "mmcv>=2.0.1,<2.2"` built for this torch) or pass '
                      '--dekr-deform torchvision for a timing substitute.')
    return model, None


# ---------------------------------------------------------------------------------- scene
def synthetic_scene(batch: int, persons: int, hw: Sequence[int], num_keypoints: int = 17,
                    sigma: float = 2.0, seed: int = 0) -> Dict[str, torch.Tensor]:
    """A deterministic N-person head output in F (what a trained network would predict).

    People stand on a grid covering the canvas (person height 0.85 of a cell, seeded jitter
    of position, scale and limbs, sub-pixel centres so that the upsampled centre peaks
    are unique; the centre channel is zero on the outer F ring, see below).

    Args:
        batch: B images (each with its own jitter); persons: N; hw: (h, w) of the F grid.

    Returns:
        dict with ``heatmaps`` (B, K+1, h, w) (max of keypoint / centre Gaussians, centre
        last), ``offsets`` (B, 2K, h, w) LOGO-CAP convention ``pixel - keypoint`` (F units,
        nearest person's), ``keypoints`` (B, N, K, 2) and ``centers`` (B, N, 2) in F.
    """
    h, w = int(hw[0]), int(hw[1])
    K = num_keypoints
    if persons < 1:
        raise ValueError(f'persons must be >= 1, got {persons}')
    rng = np.random.RandomState(seed)
    template = _TEMPLATE17 if K == 17 else np.stack(
        [np.zeros(K), np.linspace(-0.42, 0.47, K)], -1)
    cols = int(np.ceil(np.sqrt(persons * w / h)))
    rows = int(np.ceil(persons / cols))
    ch, cw = h / rows, w / cols
    kpts = np.zeros((batch, persons, K, 2))
    cens = np.zeros((batch, persons, 2))
    for b in range(batch):
        for n in range(persons):
            r, c = divmod(n, cols)
            height = 0.85 * min(ch, 2.2 * cw) * rng.uniform(0.85, 1.0)
            cx = (c + 0.5) * cw + rng.uniform(-0.08, 0.08) * cw
            cy = (r + 0.5) * ch + rng.uniform(-0.04, 0.04) * ch
            jit = rng.uniform(-0.02, 0.02, size=(K, 2))
            kp = (template + jit) * height + [cx, cy]
            kpts[b, n] = kp
            cen = kp.mean(0)
            # sub-pixel, non-symmetric position -> one unique peak after x4 upsampling
            cens[b, n] = np.floor(cen) + [0.31, 0.17]
            kpts[b, n] += cens[b, n] - cen
    ys = np.arange(h, dtype=np.float64)[:, None]
    xs = np.arange(w, dtype=np.float64)[None, :]
    heat = np.zeros((batch, K + 1, h, w), np.float32)
    off = np.zeros((batch, K, 2, h, w), np.float32)
    inv = 1.0 / (2 * sigma * sigma)
    for b in range(batch):
        pts = np.concatenate([kpts[b].transpose(1, 0, 2), cens[b][None]], 0)  # (K+1, N, 2)
        d2 = ((xs[None, None] - pts[..., 0, None, None]) ** 2 +
              (ys[None, None] - pts[..., 1, None, None]) ** 2)               # (K+1,N,h,w)
        heat[b] = np.exp(-d2 * inv).max(1)
        # x4 bilinear upsampling (align_corners=False) clamps at the border, so I rows /
        # columns 0 and 1 both copy F row / column 0: a centre tail there would form a
        # two-pixel plateau that the 3x3 NMS keeps as a peak. Zero the outer F ring.
        heat[b, K, [0, -1], :] = 0.
        heat[b, K, :, [0, -1]] = 0.
        owner = d2[K].argmin(0)                                               # (h, w)
        kp_own = kpts[b][owner]                                               # (h,w,K,2)
        off[b, :, 0] = (xs[..., None] - kp_own[..., 0]).transpose(2, 0, 1)
        off[b, :, 1] = (ys[..., None] - kp_own[..., 1]).transpose(2, 0, 1)
    return dict(heatmaps=torch.from_numpy(heat),
                offsets=torch.from_numpy(off.reshape(batch, 2 * K, h, w)),
                keypoints=torch.from_numpy(kpts).float(),
                centers=torch.from_numpy(cens).float())


# ---------------------------------------------------------------------------------- timing
class StageTimer:
    """Wall-clock per named stage; synchronises CUDA before reading the clock."""

    def __init__(self, device):
        self.cuda = str(device).startswith('cuda')
        self.times = {}
        self.cpu_times = {}     # process CPU time (all threads): robust to a shared machine
        self._t = None
        self._c = None

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def start(self):
        self.sync()
        self._t = time.perf_counter()
        self._c = time.process_time()

    def lap(self, name):
        self.sync()
        t, c = time.perf_counter(), time.process_time()
        self.times[name] = self.times.get(name, 0.) + (t - self._t) * 1e3
        self.cpu_times[name] = self.cpu_times.get(name, 0.) + (c - self._c) * 1e3
        self._t, self._c = t, c


def run_backbone(model, x, flip: bool):
    """backbone + neck + heads (+ flip merge) -> heatmaps, offsets, embedding (F)."""
    head = model.head
    B = x.shape[0]
    if flip:
        feats = model.extract_feat(torch.cat([x, x.flip(-1)]))
        hm, off, emb = head.forward(feats)
        del feats
        return head.flip_merge((hm[:B], off[:B], emb[:B]), (hm[B:], off[B:]), COCO_FLIP
                               if head.num_keypoints == 17 else
                               list(range(head.num_keypoints)))
    feats = model.extract_feat(x)
    out = head.forward(feats)
    del feats
    return out


def run_decoder_stages(head, hm, off, emb, canvas, timer: Optional[StageTimer] = None,
                       fast: Optional[bool] = None):
    """The decoder's stages, one by one (same maths as ``LogoCapDecoder.forward``, 'full').

    Returns (per-image results, number of valid centres per image (B,))."""
    from logocap_mm.models.utils.sampling import sample_kem_latents
    dec = head.pose_decoder
    K, s = dec.num_keypoints, dec.kem_size
    lap = timer.lap if timer is not None else (lambda name: None)
    # local KEMs
    init = dec.initial_poses(hm, off, canvas)
    poses = init['poses']
    kem = dec.kem(poses)
    lap('local_kems')
    # local KAMs
    B, T = poses.shape[:2]
    lat = sample_kem_latents(emb, kem, dec.stride)
    kams = head.cmp(lat.flatten(0, 1)).reshape(B, T, K, s, s).clamp(0, 1)
    lap('local_kams')
    # global KAMs + decode
    old = dec.fast
    if fast is not None:
        dec.fast = fast
    try:
        kpts, vals = dec.global_refine(init['heatmaps_up'][:, :K], poses, kams, init['valid'])
    finally:
        dec.fast = old
    lap('global')
    # post-processing
    dets = dec.finalize(kpts, vals, init['center_scores'], init['valid'])
    insts = [head._to_instances(d) for d in dets]
    lap('post')
    return insts, init['valid'].sum(1)


def _median_min(xs):
    return dict(median=float(statistics.median(xs)), min=float(min(xs)))


def count_flops(fn) -> float:
    """GFLOP counted by FlopCounterMode for one call of ``fn``."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops() / 1e9


def check_staged_equals_decoder(head, hm, off, emb, canvas) -> float:
    """Max |difference| between the staged pipeline and ``LogoCapDecoder.forward``."""
    dec = head.pose_decoder
    staged, _ = run_decoder_stages(head, hm, off, emb, canvas)
    ref = dec(hm, off, emb, head.cmp, canvas_hw=canvas, adaptation='full')
    err = 0.
    for a, r in zip(staged, ref):
        rk = r['keypoints'].float().cpu().numpy()
        if rk.shape != a.keypoints.shape:
            return float('inf')
        if rk.size:
            err = max(err, float(np.abs(rk - a.keypoints).max()),
                      float(np.abs(r['keypoint_scores'].float().cpu().numpy() -
                                   a.keypoint_scores).max()))
    return err


# ---------------------------------------------------------------------------------- DEKR
def _dekr_samples(B, size):
    from mmpose.structures import PoseDataSample
    out = []
    for _ in range(B):
        ds = PoseDataSample()
        ds.set_metainfo(dict(input_size=(size, size), input_center=np.array([size / 2] * 2),
                             input_scale=np.array([size, size], np.float32),
                             flip_indices=COCO_FLIP, skeleton_links=[]))
        out.append(ds)
    return out


def time_dekr(model, x1, scene, repeats, warmup, device):
    """DEKR on one image (its head predicts batch 1), with the N-person synthetic heatmaps
    and displacements swapped into its decoder. Returns dict of median/min ms."""
    head = model.head
    hm = scene['heatmaps'][:1].to(device)
    disp = -scene['offsets'][:1].to(device)          # DEKR: keypoint - pixel
    samples = _dekr_samples(1, x1.shape[-1])
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
                timer.times.clear()
                timer.cpu_times.clear()
                found = len(res[0].pred_instances)
    finally:
        head.decode = orig
    return dict(total_ms=_median_min(tot), cpu_ms=_median_min(cpu), persons_found=found)


# ---------------------------------------------------------------------------------- memory
def _proc_status_mb(key):
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1]) / 1024.
    except OSError:
        pass
    return None


def _malloc_trim():
    """Give freed heap pages back to the OS (glibc), so a later peak is not hidden in
    memory that the allocator kept."""
    try:
        import ctypes
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss_base() -> float:
    """Reset the peak-RSS mark to the current RSS (Linux ``/proc/self/clear_refs`` 5) and
    return the current RSS (MiB); without /proc, the ``ru_maxrss`` high-water mark."""
    gc.collect()
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        now = _proc_status_mb('VmRSS')
        if now is not None:
            return now
    except OSError:
        pass
    return _rss_peak()


def _rss_peak() -> float:
    """Peak RSS (MiB) since the last reset: VmHWM, else ``ru_maxrss``."""
    hwm = _proc_status_mb('VmHWM')
    if hwm is not None:
        return hwm
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024. if sys.platform != 'darwin' else r / 2 ** 20


def _train_samples(model, B, size, persons, seed):
    """Packed training samples with LOGO-CAP targets for N synthetic people per image."""
    from mmengine.structures import InstanceData, PixelData
    from mmpose.structures import PoseDataSample
    from mmpose.registry import KEYPOINT_CODECS
    head = model.head
    K = head.num_keypoints
    ccfg = dict(type='LogoCapCodec', input_size=(size, size),
                heatmap_size=(size // head.stride, size // head.stride))
    if getattr(head, 'decoder', None) is not None and hasattr(head.decoder, 'sigma'):
        ccfg['sigma'] = head.decoder.sigma
    codec = KEYPOINT_CODECS.build(ccfg)     # targets at the training input size
    scene = synthetic_scene(B, persons, (size // 4, size // 4), K, seed=seed)
    out = []
    for b in range(B):
        kp = scene['keypoints'][b].numpy() * 4.
        vis = np.ones(kp.shape[:2], np.float32)
        span = kp.max(1) - kp.min(1)
        area = (span[:, 0] * span[:, 1] * 0.6).astype(np.float32)
        enc = codec.encode(kp, vis, area)
        ds = PoseDataSample()
        ds.set_metainfo(dict(input_size=(size, size), flip_indices=COCO_FLIP))
        ds.gt_instances = InstanceData(keypoints=kp.astype(np.float32),
                                       keypoints_visible=vis, areas=area)
        ds.gt_fields = PixelData(**{k: torch.from_numpy(np.asarray(v)) for k, v in
                                    enc.items() if k in ('heatmaps', 'heatmap_weights',
                                                         'displacements',
                                                         'displacement_weights')})
        out.append(ds)
    return out


def memory_worker(args) -> dict:
    """One measurement in this (fresh) process: ``--worker infer:MODE:B:N`` with MODE in
    backbone|full, or ``--worker train:B``. Prints one JSON line."""
    device = torch.device(args.device)
    cfg, size = load_config(args.config, args.input_size)
    kind, *rest = args.worker.split(':')
    cuda = device.type == 'cuda'
    flip = not args.no_flip
    out = dict(worker=args.worker)
    if kind == 'infer':
        mode, B, N = rest[0], int(rest[1]), int(rest[2])
        model = build_logocap(cfg, device, args.checkpoint, flip, args.seed)
        head = model.head
        x = torch.randn(B, 3, size, size, generator=torch.Generator().manual_seed(1)
                        ).to(device)
        scene = synthetic_scene(B, N, (size // 4, size // 4), head.num_keypoints,
                                seed=args.seed)
        hm_s, off_s = scene['heatmaps'].to(device), scene['offsets'].to(device)
        canvas = [(size, size)] * B
        gc.collect()
        if cuda:
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
        else:
            base = _rss_base()
        dec_delta = None
        with torch.no_grad():
            hm, off, emb = run_backbone(model, x, flip)
            if mode == 'full':
                hm, off = hm_s, off_s
                if not cuda:
                    peak_bb = _rss_peak()
                    _malloc_trim()
                    base_dec = _rss_base()
                    run_decoder_stages(head, hm, off, emb, canvas)
                    dec_delta = _rss_peak() - base_dec
                else:
                    run_decoder_stages(head, hm, off, emb, canvas)
        if cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated(device) / 2 ** 20
            base = base / 2 ** 20
        elif mode == 'full':
            peak = max(peak_bb, base_dec + dec_delta)
        else:
            peak = _rss_peak()
        out.update(mode=mode, batch_size=B, persons=N, base_mb=base, peak_mb=peak,
                   delta_mb=peak - base, decoder_own_delta_mb=dec_delta)
    elif kind == 'train':
        B = int(rest[0])
        tsize = args.train_input_size or size
        model = build_logocap(cfg, device, None, flip, args.seed).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.randn(B, 3, tsize, tsize, generator=torch.Generator().manual_seed(1)
                        ).to(device)
        samples = _train_samples(model, B, tsize, 10, args.seed)
        for ds in samples:
            ds.gt_fields = ds.gt_fields.to(device)
        gc.collect()
        if cuda:
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
        else:
            base = _rss_base()
        t0 = time.perf_counter()
        losses = model(x, samples, mode='loss')
        loss = sum(v for v in losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated(device) / 2 ** 20
            base = base / 2 ** 20
        else:
            peak = _rss_peak()
        out.update(mode='train', batch_size=B, input_size=tsize, persons=10,
                   step_ms=(time.perf_counter() - t0) * 1e3, loss=float(loss),
                   base_mb=base, peak_mb=peak, delta_mb=peak - base)
    else:
        raise ValueError(f'unknown worker {args.worker!r}')
    print('BENCH_WORKER ' + json.dumps(out), flush=True)
    return out


def _spawn_worker(args, spec):
    cmd = [sys.executable, osp.abspath(__file__), args.config, '--device', args.device,
           '--worker', spec, '--seed', str(args.seed)]
    if args.input_size:
        cmd += ['--input-size', str(args.input_size)]
    if args.train_input_size:
        cmd += ['--train-input-size', str(args.train_input_size)]
    if args.no_flip:
        cmd.append('--no-flip')
    if args.checkpoint:
        cmd += ['--checkpoint', args.checkpoint]
    if args.threads:
        cmd += ['--threads', str(args.threads)]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    for line in p.stdout.splitlines():
        if line.startswith('BENCH_WORKER '):
            return json.loads(line[len('BENCH_WORKER '):])
    return dict(worker=spec, error=(p.stderr or p.stdout)[-2000:])


def measure_memory(args) -> dict:
    res = dict(unit='MiB', kind='cuda max_memory_allocated' if args.device != 'cpu'
               else 'peak RSS (VmHWM after a clear_refs reset; ru_maxrss fallback) above '
               'the RSS after set-up, fresh process per row', inference=[],
               train=[])
    if args.memory == 'none':
        return res
    for N in args.memory_persons:
        row = dict(persons=N)
        for mode in ('backbone', 'full'):
            row[mode] = _spawn_worker(args, f'infer:{mode}:1:{N}')
        b, f = row['backbone'].get('delta_mb'), row['full'].get('delta_mb')
        if b and f is not None:
            row['logocap_added_mb'] = f - b
            row['logocap_added_ratio'] = (f - b) / b
        res['inference'].append(row)
    if args.memory == 'all':
        for B in args.train_batch_size:
            res['train'].append(_spawn_worker(args, f'train:{B}'))
    return res


# ---------------------------------------------------------------------------------- main
def benchmark(args) -> dict:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg, size = load_config(args.config, args.input_size)
    flip = not args.no_flip
    model = build_logocap(cfg, device, args.checkpoint, flip, args.seed)
    head = model.head
    dec = head.pose_decoder
    K = head.num_keypoints
    if max(args.persons) > dec.topk:
        raise ValueError(f'--persons must be <= the decoder topk ({dec.topk}), '
                         f'got {args.persons}')
    h = w = size // head.stride
    canvas_of = lambda B: [(size, size)] * B  # noqa: E731
    dekr, dekr_msg = (None, 'DEKR not requested (--no-dekr)')
    if not args.no_dekr:
        dekr, dekr_msg = build_dekr(cfg, device, flip, size, args.dekr_deform, args.seed)
    from logocap_mm.models.pose_estimators import LogoCapPoseEstimator
    if args.image_chunk is not None:
        model.test_cfg['image_chunk'] = (args.image_chunk if args.image_chunk == 'auto'
                                         else (None if args.image_chunk == 'none'
                                               else int(args.image_chunk)))
    chunk_cfg = LogoCapPoseEstimator.image_chunk(device, model.test_cfg)
    rows = []
    load_start = os.getloadavg()
    for B in args.batch_size:
        x = torch.randn(B, 3, size, size, generator=torch.Generator().manual_seed(B)
                        ).to(device)
        scenes = {N: {k: v.to(device) for k, v in
                      synthetic_scene(B, N, (h, w), K, seed=args.seed + N).items()}
                  for N in args.persons}
        canvas = canvas_of(B)
        # the estimator's test_cfg.image_chunk ('auto': 1 image per chunk on CPU)
        chunk = chunk_cfg or B
        times = {N: {s: [] for s in STAGES} for N in args.persons}
        cpu = {N: {s: [] for s in STAGES} for N in args.persons}
        plain = {N: [] for N in args.persons}
        found = {}
        with torch.no_grad():
            for i in range(args.warmup + args.repeats):
                timer = StageTimer(device)
                timer.start()
                feats = [run_backbone(model, x[c:c + chunk], flip) for c in range(0, B, chunk)]
                timer.lap('backbone')
                for N in args.persons:
                    sc = scenes[N]
                    t2 = StageTimer(device)
                    t2.start()
                    nvalid = []
                    for j, c in enumerate(range(0, B, chunk)):
                        _, nv = run_decoder_stages(head, sc['heatmaps'][c:c + chunk],
                                                   sc['offsets'][c:c + chunk], feats[j][2],
                                                   canvas[c:c + chunk], t2)
                        nvalid.append(nv)
                    nvalid = torch.cat(nvalid)
                    if i >= args.warmup:
                        times[N]['backbone'].append(timer.times['backbone'])
                        cpu[N]['backbone'].append(timer.cpu_times['backbone'])
                        for s in STAGES[1:]:
                            times[N][s].append(t2.times[s])
                            cpu[N][s].append(t2.cpu_times[s])
                    found[N] = [int(v) for v in nvalid]
                    if args.compare_plain:
                        t3 = StageTimer(device)
                        t3.start()
                        for j, c in enumerate(range(0, B, chunk)):
                            run_decoder_stages(head, sc['heatmaps'][c:c + chunk],
                                               sc['offsets'][c:c + chunk], feats[j][2],
                                               canvas[c:c + chunk], t3, fast=False)
                        if i >= args.warmup:
                            plain[N].append(t3.times['global'])
            hm, off, emb = (torch.cat([f[k] for f in feats]) for k in range(3))
            del feats
            # FLOPs and checks, once per (B, N), untimed
            fl_backbone = count_flops(lambda: run_backbone(model, x, flip))
            for N in args.persons:
                if any(f != N for f in found[N]):
                    raise RuntimeError(f'synthetic scene of {N} people gave {found[N]} '
                                       'valid centres')
                sc = scenes[N]
                cm = _StageFlops(head, sc['heatmaps'], sc['offsets'], emb, canvas)
                fl = cm.run(fast=None)
                fl_plain_global = cm.run(fast=False)['global']
                fl['backbone'] = fl_backbone
                err = check_staged_equals_decoder(head, sc['heatmaps'], sc['offsets'], emb,
                                                  canvas)
                row = dict(batch_size=B, persons=N, persons_found=found[N], flip=flip,
                           image_chunk=chunk,
                           stages_ms={s: _median_min(times[N][s]) for s in STAGES})
                tot = [sum(times[N][s][r] for s in STAGES) for r in range(args.repeats)]
                row['total_ms'] = _median_min(tot)
                # process CPU time summed over threads (wall time on an idle machine is
                # about cpu_ms / threads when the threads are busy)
                row['cpu_ms'] = {s: _median_min(cpu[N][s]) for s in STAGES}
                row['cpu_total_ms'] = _median_min(
                    [sum(cpu[N][s][r] for s in STAGES) for r in range(args.repeats)])
                med = {s: row['stages_ms'][s]['median'] for s in STAGES}
                row['per_image_ms'] = row['total_ms']['median'] / B
                row['after_backbone_share'] = (1 - med['backbone'] /
                                               row['total_ms']['median'])
                row['gflop'] = fl
                row['gflops_per_s'] = {s: (fl[s] / (med[s] / 1e3) if med[s] > 0 else 0.)
                                       for s in STAGES}
                row['global_gflop_plain'] = fl_plain_global
                row['global_gflops_plain_equiv'] = fl_plain_global / (med['global'] / 1e3)
                row['staged_vs_decoder_max_abs_diff'] = err
                if args.compare_plain:
                    row['global_plain_ms'] = _median_min(plain[N])
                    row['global_fast_vs_plain'] = _compare_fast_plain(
                        head, sc['heatmaps'], sc['offsets'], emb, canvas)
                rows.append(row)
        del hm, off, emb
    # DEKR at batch 1, same input / flip / people
    dekr_rows = {}
    if dekr is not None:
        x1 = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1)
                         ).to(device)
        for N in args.persons:
            sc = synthetic_scene(1, N, (h, w), K, seed=args.seed + N)
            dekr_rows[N] = time_dekr(dekr, x1, sc, args.repeats, args.warmup, device)
        for row in rows:
            d = dekr_rows[row['persons']]
            row['dekr_per_image_ms'] = d['total_ms']['median']
            row['dekr_total_ms'] = d['total_ms']['median'] * row['batch_size']
            row['dekr_persons_found'] = d['persons_found']
            row['ratio_to_dekr'] = row['per_image_ms'] / d['total_ms']['median']
            row['dekr_cpu_ms_per_image'] = d['cpu_ms']['median']
            row['cpu_ratio_to_dekr'] = (row['cpu_total_ms']['median'] / row['batch_size'] /
                                        d['cpu_ms']['median'])
        del dekr
    gc.collect()
    memory = measure_memory(args)
    result = dict(
        config=args.config, checkpoint=args.checkpoint, device=str(device),
        device_name=(torch.cuda.get_device_name(device) if device.type == 'cuda' else
                     f'{platform.processor() or platform.machine()} CPU, '
                     f'{os.cpu_count()} cores'),
        torch_version=torch.__version__, num_threads=torch.get_num_threads(),
        input_size=size, flip=flip, repeats=args.repeats, warmup=args.warmup,
        load_avg_start=load_start, load_avg_end=os.getloadavg(),
        global_fast_path=bool(dec.fast),
        dekr=dict(available=bool(dekr_rows), message=dekr_msg if not dekr_rows else
                  ('timed' + (' with torchvision deform_conv2d substitute'
                              if args.dekr_deform == 'torchvision' else '')),
                  deform_backend=args.dekr_deform if dekr_rows else None,
                  per_image_ms={str(N): v['total_ms'] for N, v in dekr_rows.items()}),
        results=rows, memory=memory)
    result['targets'] = evaluate_targets(result)
    return result


class _StageFlops:
    """FLOPs of each decoder stage, counted separately (FlopCounterMode)."""

    def __init__(self, head, hm, off, emb, canvas):
        self.args = (head, hm, off, emb, canvas)

    def run(self, fast):
        from torch.utils.flop_counter import FlopCounterMode
        head = self.args[0]
        fc = FlopCounterMode(display=False)
        marks = {}

        class _T:
            def lap(_, name):
                marks[name] = fc.get_total_flops()
        with fc:
            run_decoder_stages(*self.args, timer=_T(), fast=fast)
        out, prev = {}, 0
        for s in STAGES[1:]:
            out[s] = (marks[s] - prev) / 1e9
            prev = marks[s]
        del head
        return out


def _compare_fast_plain(head, hm, off, emb, canvas) -> dict:
    a, _ = run_decoder_stages(head, hm, off, emb, canvas, fast=True)
    b, _ = run_decoder_stages(head, hm, off, emb, canvas, fast=False)
    dk, ds = 0., 0.
    for x, y in zip(a, b):
        if x.keypoints.shape != y.keypoints.shape:
            return dict(equal_shapes=False)
        if x.keypoints.size:
            dk = max(dk, float(np.abs(x.keypoints - y.keypoints).max()))
            ds = max(ds, float(np.abs(x.keypoint_scores - y.keypoint_scores).max()))
    return dict(equal_shapes=True, max_abs_keypoints=dk, max_abs_scores=ds)


def evaluate_targets(res) -> dict:
    """The issue's targets, evaluated on what was measured (None: not measured)."""
    rows = res['results']
    t = {}
    at30 = [r for r in rows if r['persons'] == 30]
    b1_30 = [r for r in at30 if r['batch_size'] == 1]
    if b1_30:
        r = b1_30[0]
        t['after_backbone_share_30p_le_0.175'] = dict(value=r['after_backbone_share'],
                                                      ok=r['after_backbone_share'] <= 0.175)
        g = r['stages_ms']['global']['median']
        t['global_ms_30p_le_50'] = dict(value=g, ok=g <= 50., input_size=res['input_size'])
        if 'ratio_to_dekr' in r:
            t['total_vs_dekr_le_0.76'] = dict(value=r['ratio_to_dekr'],
                                              ok=r['ratio_to_dekr'] <= 0.76)
    for N in sorted({r['persons'] for r in rows}):
        rb = {r['batch_size']: r for r in rows if r['persons'] == N}
        if 1 in rb and 8 in rb:
            v = rb[8]['per_image_ms'] / rb[1]['per_image_ms']
            t[f'batch8_per_image_vs_batch1_{N}p'] = dict(
                value=v, ok=(v <= 1.0 if res['device'] == 'cpu' else v <= 0.5))
    for row in res['memory'].get('inference', []):
        if row['persons'] == 30 and 'logocap_added_ratio' in row:
            t['memory_added_30p_le_0.25'] = dict(value=row['logocap_added_ratio'],
                                                 ok=row['logocap_added_ratio'] <= 0.25)
    return t


def markdown(res) -> str:
    L = []
    L.append(f"device: {res['device_name']} ({res['device']}), torch {res['torch_version']}, "
             f"{res['num_threads']} threads, input {res['input_size']}, flip "
             f"{'on' if res['flip'] else 'off'}, {res['repeats']} repeats (median ms; min in "
             f"the JSON), load avg {res['load_avg_start'][0]:.2f} -> "
             f"{res['load_avg_end'][0]:.2f}")
    L.append('')
    L.append('| batch | people | backbone+heads (flip) | local KEMs | local KAMs | '
             'global KAMs+decode | post (NMS) | total | per image | after backbone | '
             'DEKR / image | LOGO-CAP / DEKR |')
    L.append('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for r in res['results']:
        m = {s: r['stages_ms'][s]['median'] for s in STAGES}
        d = (f"{r['dekr_per_image_ms']:.1f} | {r['ratio_to_dekr']:.2f}"
             if 'dekr_per_image_ms' in r else 'skipped | -')
        L.append(f"| {r['batch_size']} | {r['persons']} | {m['backbone']:.1f} | "
                 f"{m['local_kems']:.1f} | {m['local_kams']:.1f} | {m['global']:.1f} | "
                 f"{m['post']:.1f} | {r['total_ms']['median']:.1f} | "
                 f"{r['per_image_ms']:.1f} | {100 * r['after_backbone_share']:.1f}% | {d} |")
    L.append('')
    L.append('process CPU time (ms, all threads; less sensitive to other load on the machine):')
    L.append('')
    L.append('| batch | people | backbone+heads | local KEMs | local KAMs | global | post | '
             'total | after backbone | DEKR / image | LOGO-CAP / DEKR |')
    L.append('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for r in res['results']:
        c = {s: r['cpu_ms'][s]['median'] for s in STAGES}
        tot = sum(c.values())
        d = (f" {r['dekr_cpu_ms_per_image']:.1f} | {r['cpu_ratio_to_dekr']:.2f} |"
             if 'dekr_cpu_ms_per_image' in r else ' - | - |')
        L.append(f"| {r['batch_size']} | {r['persons']} | " +
                 ' | '.join(f'{c[s]:.1f}' for s in STAGES) +
                 f" | {tot:.1f} | {100 * (1 - c['backbone'] / tot):.1f}% |" + d)
    if not res['dekr']['available']:
        L.append('')
        L.append(res['dekr']['message'])
    L.append('')
    L.append('| batch | people | GFLOP backbone | GFLOP/s backbone | GFLOP/s local KEMs | '
             'GFLOP/s local KAMs | GFLOP global (run / plain) | GFLOP/s global (run / '
             'plain-equivalent) |')
    L.append('|---:|---:|---:|---:|---:|---:|---:|---:|')
    for r in res['results']:
        g, f = r['gflops_per_s'], r['gflop']
        L.append(f"| {r['batch_size']} | {r['persons']} | {f['backbone']:.1f} | "
                 f"{g['backbone']:.1f} | {g['local_kems']:.2f} | {g['local_kams']:.1f} | "
                 f"{f['global']:.3f} / {r['global_gflop_plain']:.3f} | {g['global']:.1f} / "
                 f"{r['global_gflops_plain_equiv']:.1f} |")
    plain = [r for r in res['results'] if 'global_plain_ms' in r]
    if plain:
        L.append('')
        L.append('| batch | people | global fast (ms) | global plain (ms) | max |kpt diff| | '
                 'max |score diff| |')
        L.append('|---:|---:|---:|---:|---:|---:|')
        for r in plain:
            c = r['global_fast_vs_plain']
            L.append(f"| {r['batch_size']} | {r['persons']} | "
                     f"{r['stages_ms']['global']['median']:.1f} | "
                     f"{r['global_plain_ms']['median']:.1f} | "
                     f"{c.get('max_abs_keypoints', float('nan')):.2g} | "
                     f"{c.get('max_abs_scores', float('nan')):.2g} |")
    mem = res['memory']
    if mem['inference'] or mem['train']:
        L.append('')
        L.append(f"peak memory ({mem['kind']}, MiB):")
        L.append('')
        L.append('| measurement | batch | people | input | peak above set-up | step ms |')
        L.append('|---|---:|---:|---:|---:|---:|')
        for row in mem['inference']:
            for mode in ('backbone', 'full'):
                w = row[mode]
                v = f"{w['delta_mb']:.0f}" if 'delta_mb' in w else 'error'
                L.append(f"| inference, {'backbone+heads only' if mode == 'backbone' else 'full LOGO-CAP'} "
                         f"| 1 | {row['persons']} | {res['input_size']} | {v} | |")
            if 'logocap_added_ratio' in row:
                L.append(f"| LOGO-CAP stages added | 1 | {row['persons']} | "
                         f"{res['input_size']} | {row['logocap_added_mb']:.0f} "
                         f"({100 * row['logocap_added_ratio']:.1f}%) | |")
        for w in mem['train']:
            if 'delta_mb' in w:
                L.append(f"| training step (fwd+bwd+Adam) | {w['batch_size']} | "
                         f"{w['persons']} | {w['input_size']} | {w['delta_mb']:.0f} | "
                         f"{w['step_ms']:.0f} |")
            else:
                L.append(f"| training step | {w['worker']} | | | error | |")
    if res['targets']:
        L.append('')
        L.append('| target | measured | met |')
        L.append('|---|---:|:---:|')
        for k, v in res['targets'].items():
            L.append(f"| {k} | {v['value']:.3f} | {'yes' if v['ok'] else 'no'} |")
    return '\n'.join(L)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        return memory_worker(args)
    res = benchmark(args)
    print(markdown(res))
    if args.out:
        d = osp.dirname(osp.abspath(args.out))
        os.makedirs(d, exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(res, f, indent=2)
    return res


if __name__ == '__main__':
    main()
