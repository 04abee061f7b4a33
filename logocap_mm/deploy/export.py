"""Export of a LOGO-CAP model (network, flip test, decoder) as ONE ONNX graph.

The graph maps the normalised input canvas ``input`` (1, 3, H, W) float32 (H, W dynamic,
multiples of the canvas size factor 64) to the decoder's padded outputs:

    keypoints        (T, K, 2) float32, I frame (input canvas pixels, x, y)
    keypoint_scores  (T, K) float32
    scores           (T,) float32 pose scores
    valid            (T,) bool, slots to keep before the pose NMS

with T the decoder's top-k (30). Inside: the image and its mirror as one batch of 2 through
the network, the head's flip merge, centre NMS and top-k, the centre-offset poses and, per
adaptation level, KEM sampling, the CMP and the plain global adaptation (windows, Gaussian,
convolution with the KAMs as runtime weights, top-2). The pose NMS and the people cap run in
the runtime (:mod:`logocap_rt.postprocess`). The model's facts go into the ONNX
``metadata_props`` (:mod:`logocap_rt.metadata`). Needs torch, MMPose and onnxscript
(torch's dynamo-based exporter).
"""
import contextlib
import os
import os.path as osp
import time
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from logocap_mm.models.adaptation import ADAPTATION_LEVELS
from logocap_rt.metadata import FORMAT, INPUT_NAME, OUTPUT_NAMES, encode

__all__ = ['LogoCapExportModule', 'decode_padded', 'check_settings', 'export_model',
           'export_onnx', 'MIN_OPSET']

MIN_OPSET = 17  # GridSample-era operator set; the graph uses Conv with runtime weights
MAX_BATCH = 64  # largest exported batch size


class LogoCapExportModule(nn.Module):
    """The test-time model as one traceable module: (1, 3, H, W) -> padded outputs.

    Args:
        model: a ``LogoCapPoseEstimator`` / ``BottomupPoseEstimator`` with a ``LogoCapHead``
            (eval mode, float32).
        flip_indices: keypoint flip permutation (K,), used when ``flip``.
        flip: run the flip test in the graph.
        adaptation: 'full' | 'partial' | 'none'.
        flip_mode: the head's flip merge mode ('reference' | 'aligned').
        trim_slots: local adaptation on the valid slots only (see :func:`decode_padded`).
        batched: (B, 3, H, W) -> outputs with a leading batch axis (B, T, ...); False:
            batch 1 and outputs without it.
    """

    def __init__(self, model: nn.Module, flip_indices: Sequence[int], flip: bool = True,
                 adaptation: str = 'full', flip_mode: str = 'reference',
                 trim_slots: bool = True, batched: bool = False):
        super().__init__()
        self.batched = bool(batched)
        self.trim_slots = bool(trim_slots)
        self.model = model
        self.flip_indices = [int(i) for i in flip_indices]
        self.flip = bool(flip)
        self.adaptation = adaptation
        self.flip_mode = flip_mode

    def head_maps(self, x: Tensor):
        """(B, 3, H, W) -> flip-merged heatmaps, offsets, embedding on the F grid (the
        images and their mirrors as one batch of 2B)."""
        model, head = self.model, self.model.head
        if not self.flip:
            return head.forward(model.extract_feat(x))
        B = x.shape[0]
        hm, off, emb = head.forward(model.extract_feat(torch.cat([x, x.flip(-1)])))
        return head.flip_merge((hm[:B], off[:B], emb[:B]), (hm[B:], off[B:]),
                               self.flip_indices, self.flip_mode)

    def forward(self, x: Tensor):
        hm, off, emb = self.head_maps(x)
        p = decode_padded(self.model.head, hm, off, emb, self.adaptation, self.trim_slots)
        if self.batched:
            return p['keypoints'], p['keypoint_scores'], p['scores'], p['valid']
        return p['keypoints'][0], p['keypoint_scores'][0], p['scores'][0], p['valid'][0]


def decode_padded(head, hm: Tensor, off: Tensor, emb: Tensor, adaptation: str,
                  trim_slots: bool = True) -> Dict[str, Tensor]:
    """The head's decode pipeline (``head.pose_decoder``) up to padded outputs of T = top-k
    slots, without host syncs: :meth:`LogoCapDecoder.padded` with ``trim=False`` and the
    plain global path.

    ``trim_slots`` (levels 'partial' / 'full'): the same stages, but the local stage (KEM
    sampling and the CMP) and the refinement ('partial', or the global stage: windows,
    Gaussian, the KAM convolution as a ``Scan`` over the slots of one ``Conv`` with
    ``group = K``, top-2) run on the valid slots only (a prefix of the score-sorted top-k;
    its length n is a graph value, so their cost follows the number of people) and are
    padded back to T. ``trim_slots=False``: every stage on the T slots, a graph without
    data-dependent shapes (the KAM convolution is one ``Conv`` of T*K groups). Both give
    the same valid slots.

    Returns dict(keypoints (B, T, K, 2) I, keypoint_scores (B, T, K), scores (B, T),
    valid (B, T) = centre validity and a positive pose score, center_scores (B, T)).
    """
    return head.pose_decoder.padded(hm, off, emb, adaptation=adaptation, trim=False,
                                    fast=False,
                                    local_valid_only=trim_slots and adaptation != 'none')


@contextlib.contextmanager
def _symbolic_neck_resize():
    """MMPose's ``resize`` (used by ``FeatureMapProcessor``) turns a ``torch.Size`` into
    Python ints, which would freeze the canvas size of the exported graph; while exporting,
    the neck calls ``F.interpolate`` with the (symbolic) size itself: same op, same values."""
    import torch.nn.functional as F
    from mmpose.models.necks import fmap_proc_neck
    orig = fmap_proc_neck.resize

    def resize(input, size=None, scale_factor=None, mode='nearest', align_corners=None,
               warning=True):
        return F.interpolate(input, size, scale_factor, mode, align_corners)

    fmap_proc_neck.resize = resize
    try:
        yield
    finally:
        fmap_proc_neck.resize = orig


def _resize_step(cfg) -> dict:
    """The ``LogoCapResize`` of the config's test pipeline, with its defaults filled in."""
    import inspect

    from logocap_mm.datasets.transforms import LogoCapResize
    pipe = cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline', []) or \
        cfg.get('test_pipeline', [])
    steps = [dict(s) for s in pipe if s.get('type') == 'LogoCapResize']
    if not steps:
        raise ValueError('the config has no LogoCapResize in its test pipeline '
                         '(test_dataloader.dataset.pipeline): the export needs the LOGO-CAP '
                         'test canvas')
    sig = inspect.signature(LogoCapResize.__init__).parameters
    out = {k: p.default for k, p in sig.items() if p.default is not inspect.Parameter.empty}
    out.update({k: v for k, v in steps[0].items() if k != 'type'})
    return out


def model_facts(model, cfg, input_size: Optional[int], flip: bool, adaptation: str,
                flip_mode: str) -> dict:
    """The metadata of an export (see :mod:`logocap_rt.metadata`)."""
    import logocap_mm
    head, dec = model.head, model.head.pose_decoder
    rs = _resize_step(cfg)
    if rs.get('aug_scales'):
        raise ValueError(f'multi-scale test (LogoCapResize aug_scales={rs["aug_scales"]}) '
                         'cannot be exported: the export supports one scale, the canvas of '
                         'short side input_size')
    size = rs['input_size'] if input_size is None else input_size
    if isinstance(size, (list, tuple)):
        size = size[0]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f'input_size must be a positive int (the canvas short side), '
                         f'got {size!r}')
    pre = cfg.model.get('data_preprocessor', {})
    meta = getattr(model, 'dataset_meta', None) or {}
    pad = rs.get('pad_val', 0)
    pad = [float(v) for v in pad] if isinstance(pad, (list, tuple)) else [float(pad)] * 3
    names = meta.get('keypoint_id2name')
    facts = dict(
        format=FORMAT, plugin_version=logocap_mm.__version__,
        num_keypoints=head.num_keypoints, flip_indices=_flip_indices(model),
        sigmas=[float(s) for s in head.sigmas], input_size=int(size),
        size_factor=int(rs['size_factor']), round_mode=str(rs['round_mode']),
        max_long_side=int(rs['max_long_side']), min_side=int(rs['min_side']), pad_val=pad,
        mean=[float(v) for v in pre.get('mean', (0., 0., 0.))],
        std=[float(v) for v in pre.get('std', (1., 1., 1.))],
        bgr_to_rgb=bool(pre.get('bgr_to_rgb', False)), adaptation=adaptation,
        flip_test=bool(flip), flip_mode=flip_mode, topk=int(dec.topk),
        pose_nms=bool(dec.use_pose_nms), nms_dist_ratio=float(dec.nms_dist_ratio),
        nms_num_joints=int(dec.nms_num_joints), max_people=int(dec.max_people),
        stride=int(dec.stride),
        skeleton_links=[[int(a), int(b)] for a, b in meta.get('skeleton_links', [])],
        dataset_name=str(meta.get('dataset_name', '')))
    if names:
        facts['keypoint_names'] = [names[i] for i in range(head.num_keypoints)]
    return facts


def _flip_indices(model) -> list:
    meta = getattr(model, 'dataset_meta', None) or {}
    idx = meta.get('flip_indices') or getattr(model.head, 'config_flip_indices', None)
    if not idx:
        raise ValueError('the model has no flip_indices (dataset meta of the checkpoint or '
                         'the head metainfo); they are needed for the flip test and the '
                         'metadata')
    return [int(i) for i in idx]


def check_settings(batch_size: int = 1, scales: Optional[Sequence[float]] = None,
                   opset: int = 18, multiscale_test: bool = False) -> None:
    """Refuse what the export does not support, saying what it supports."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or \
            not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f'batch size {batch_size!r} cannot be exported: the export supports '
                         f'batch size 1 (one image per run, with its flip pair inside the '
                         f'graph) up to {MAX_BATCH} (a fixed number of canvases of one size '
                         'per run)')
    if (scales is not None and [float(v) for v in scales] != [1.0]) or multiscale_test:
        raise ValueError(f'multi-scale test (scales={scales}, multiscale_test='
                         f'{bool(multiscale_test)}) cannot be exported: the export supports a '
                         'single scale (the canvas of short side input_size)')
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < MIN_OPSET:
        raise ValueError(f'opset must be an int >= {MIN_OPSET}, got {opset!r}')


def export_model(model, cfg, out: str, input_size: Optional[int] = None,
                 flip: Optional[bool] = None, adaptation: Optional[str] = None,
                 opset: int = 18, batch_size: int = 1,
                 scales: Optional[Sequence[float]] = None, trim_slots: bool = True,
                 inputs=None) -> dict:
    """Export a built model (eval, CPU float32) to ``out`` (written atomically).

    Args:
        model: the pose estimator; cfg: its mmengine config (test pipeline, preprocessor).
        input_size: canvas short side ``S`` stored for the runtime (default: the config's).
        flip: flip test in the graph (default: ``model.test_cfg.flip_test``).
        adaptation: 'full' | 'partial' | 'none' (default: the configured level).
        opset: ONNX opset (>= 17).
        batch_size: images per run: 1 (input (1, 3, H, W), outputs (T, K, 2), ...) or
            N > 1 (input (N, 3, H, W), N canvases of one size; outputs (N, T, K, 2),
            (N, T, K), (N, T), (N, T)). The batch is fixed (the KAM convolution's group
            count, N * T * K, is a static attribute); the canvas size stays dynamic.
        scales: test scales; only one scale (None or [1]).
        trim_slots: run the local adaptation on the valid slots only (default; faster with
            few people); False: a graph without data-dependent shapes.
        inputs: a :class:`logocap_rt.outputs.InputSet` that ``out`` must not be.

    Returns:
        dict(path, metadata, seconds).

    Raises:
        ValueError: an unsupported setting (named, with what is supported).
    """
    t0 = time.perf_counter()
    test_cfg = dict(getattr(model, 'test_cfg', None) or {})
    check_settings(batch_size, scales, opset, test_cfg.get('multiscale_test', False))
    level = adaptation or model.head.resolve_test_cfg(test_cfg)
    if level not in ADAPTATION_LEVELS:
        raise ValueError(f'adaptation must be one of {ADAPTATION_LEVELS}, got {level!r}')
    flip = test_cfg.get('flip_test', True) if flip is None else bool(flip)
    flip_mode = test_cfg.get('flip_mode', 'reference')
    facts = model_facts(model, cfg, input_size, flip, level, flip_mode)
    model = model.eval().float().cpu()
    facts['trim_slots'] = bool(trim_slots)
    facts['precision'] = 'fp32'
    facts['batch_size'] = batch_size
    module = LogoCapExportModule(model, facts['flip_indices'], flip, level, flip_mode,
                                 trim_slots, batched=batch_size > 1).eval()
    f = facts['size_factor']
    n_max = max(facts['max_long_side'] // f, 2)
    hd = torch.export.Dim('canvas_h', min=1, max=n_max)
    wd = torch.export.Dim('canvas_w', min=1, max=n_max)
    x = torch.zeros(batch_size, 3, 2 * f, 3 * f)  # sides of 2, 3 factors: no 0/1 special case
    dims = {2: f * hd, 3: f * wd}
    with torch.no_grad(), _symbolic_neck_resize():
        prog = torch.onnx.export(
            module, (x,), None, dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES), dynamic_shapes={'x': dims},
            optimize=True, verbose=False)
    proto = prog.model_proto
    for k, v in encode(facts).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.doc_string = (f'LOGO-CAP ({facts["dataset_name"] or "pose"}, K={facts["num_keypoints"]}, '
                        f'adaptation={level}, flip={flip}) exported by logocap_mm '
                        f'{facts["plugin_version"]}')
    _save_atomic(proto, out, inputs)
    return dict(path=out, metadata=facts, seconds=time.perf_counter() - t0)


def _save_atomic(proto, out: str, inputs=None) -> None:
    """``onnx.save`` through the shared output rules (:mod:`logocap_rt.outputs`)."""
    from logocap_rt.outputs import atomic_write
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    atomic_write(out, proto.SerializeToString(), inputs)


def export_onnx(config: str, checkpoint: str, out: str, **kwargs) -> dict:
    """Build the model from ``config`` + ``checkpoint`` (CPU) and :func:`export_model` it.
    Keyword arguments as :func:`export_model`."""
    from mmengine.config import Config
    from mmpose.apis import init_model
    import logocap_mm  # noqa: F401  (registers the modules for configs without custom_imports)
    check_settings(kwargs.get('batch_size', 1), kwargs.get('scales'),
                   kwargs.get('opset', 18))
    for p in (config, checkpoint):
        if not osp.isfile(p):
            raise ValueError(f'{p} does not exist')
    from logocap_rt.outputs import InputSet, check_output
    inputs = InputSet([config, checkpoint])
    check_output(out, inputs, '--out')
    cfg = Config.fromfile(config)
    model = init_model(cfg, checkpoint, device='cpu')
    return export_model(model, cfg, out, inputs=inputs, **kwargs)
