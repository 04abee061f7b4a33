"""Speed peers on ONNX Runtime: MMPose's CID and RTMO exported to ONNX and run per image.

Each peer is built from MMPose's own config (random weights, no download) and exported with
torch's dynamo-based exporter; the part that needs no compiled mmcv op runs in the graph, the
rest in numpy with MMPose's own numpy code:

* **CID** (``CIDHead``, HRNet-W32, 512, flip): one graph from the image to the smoothed,
  flip-merged instance heatmaps and the instance scores: the network on the image and its
  mirror as one batch of 2, the instance-information abstraction (centre heatmap, hierarchical
  pool, top-N centres) and the global feature decoupling of the N instances, in that order as
  ``CIDHead.predict``. N is the graph's static top-k (one export per N): every one of the N
  centres is decoded, as MMPose's CID does with ``max_instances=N`` and a threshold below every
  score. The keypoints are decoded by the head's codec (``DecoupledHeatmap.decode``, numpy).
* **RTMO** (-s / -m / -l, 640): graph 1, the network (backbone, hybrid encoder, head) with the
  sigmoid scores, decoded boxes, keypoint visibilities and pose vectors of every anchor; numpy:
  score order and box NMS (MMPose's numpy ``nms``, the role of the mmcv/torch NMS of
  ``RTMOHead.predict``, IoU threshold from the config); graph 2, the dynamic coordinate
  classifier on the kept instances (dynamic count). N people: the first N kept boxes (all
  anchors' scores are kept: the threshold is below every score).

Preprocessing (resize, normalisation) is not timed for any model.
"""
import copy
import os.path as osp
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn

RTMO_CONFIGS = {
    'rtmo-s': 'body_2d_keypoint/rtmo/coco/rtmo-s_8xb32-600e_coco-640x640.py',
    'rtmo-m': 'body_2d_keypoint/rtmo/coco/rtmo-m_16xb16-600e_coco-640x640.py',
    'rtmo-l': 'body_2d_keypoint/rtmo/coco/rtmo-l_16xb16-600e_coco-640x640.py',
}
PEERS = ('cid', ) + tuple(RTMO_CONFIGS)


def _mmpose_config(rel: str) -> str:
    import mmpose
    path = osp.join(osp.dirname(mmpose.__file__), '.mim', 'configs', rel)
    if not osp.isfile(path):
        raise ValueError(f'MMPose config {rel} not found under {path}')
    return path


def _session(path: str, threads: int):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=['CPUExecutionProvider'])


def _export(module: nn.Module, args: tuple, out: str, names_in, names_out,
            dynamic_shapes=None) -> None:
    with torch.no_grad():
        prog = torch.onnx.export(module.eval(), args, None, dynamo=True, opset_version=18,
                                 input_names=list(names_in), output_names=list(names_out),
                                 dynamic_shapes=dynamic_shapes, optimize=True, verbose=False)
    prog.save(out)


# ---------------------------------------------------------------------------------- CID
class CidGraph(nn.Module):
    """CID from the image to N instance heatmaps: (1, 3, S, S) -> (N, K, S/4, S/4) smoothed
    flip-merged instance heatmaps, (N,) instance scores (``CIDHead.predict``'s order)."""

    def __init__(self, model: nn.Module, persons: int, flip_indices, flip: bool = True):
        super().__init__()
        self.model, self.persons, self.flip = model, int(persons), bool(flip)
        self.flip_indices = [int(i) for i in flip_indices]

    def forward(self, x):
        from mmpose.models.heads.heatmap_heads.cid_head import smooth_heatmaps
        from mmpose.models.utils.tta import flip_heatmaps
        head = self.model.head
        iia, N = head.iia_module, self.persons
        if self.flip:
            f = self.model.extract_feat(torch.cat([x, x.flip(-1)]))[-1]
            f = torch.cat([f[:1], flip_heatmaps(f[1:], shift_heatmap=False)])
        else:
            f = self.model.extract_feat(x)[-1]
        W = f.shape[-1]
        hm = iia.forward(f).narrow(1, -1, 1).mean(0, keepdim=True)
        sm = smooth_heatmaps(hm, 3)
        peaks = iia._hierarchical_pool(sm)
        peaks = (sm * (peaks == sm).to(sm.dtype)).reshape(-1)
        scores, ind = peaks.topk(N)
        y = torch.div(ind, W, rounding_mode='floor')
        coords = torch.stack((ind - y * W, y), 1)
        feats = iia._sample_feats(f, coords)
        ids = torch.zeros(N, dtype=torch.long, device=x.device)
        if self.flip:
            coords, ids = torch.cat([coords, coords]), torch.cat([ids, ids + 1])
        inst = head.gfd_module(f, feats, coords, ids)
        if self.flip:
            a, b = inst.chunk(2)
            inst = (a + b[:, self.flip_indices]) / 2.
        return smooth_heatmaps(inst, 3), scores


def build_cid_onnx(out: str, persons: int, threads: int, size: int = 512, flip: bool = True,
                   seed: int = 0) -> Callable[[np.ndarray], dict]:
    """Export CID W32 for ``persons`` instances to ``out``; returns ``run(x)`` (x the
    normalised (1, 3, S, S) float32 canvas) -> dict(keypoints (N, K, 2) I, keypoint_scores)."""
    from .cid import COCO_FLIP, build_cid
    model, msg = build_cid('cpu', input_size=size, flip=flip, seed=seed)
    if model is None:
        raise ValueError(msg)
    x = torch.zeros(1, 3, size, size)
    _export(CidGraph(model, persons, COCO_FLIP, flip), (x, ), out, ['input'],
            ['instance_heatmaps', 'instance_scores'])
    sess, codec = _session(out, threads), model.head.decoder

    def run(img: np.ndarray) -> dict:
        hm, sc = sess.run(None, {'input': img})
        kpts, scores = codec.decode(hm, sc[:, None])
        kpts = kpts + np.float32([size / hm.shape[-1] / 2., size / hm.shape[-2] / 2.])
        return dict(keypoints=kpts, keypoint_scores=scores)
    return run


# ---------------------------------------------------------------------------------- RTMO
def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_thr: float,
            max_keep: Optional[int] = None) -> np.ndarray:
    """Greedy box NMS in numpy (the role of the compiled/torch NMS of ``RTMOHead.predict``):
    boxes (A, 4) x1y1x2y2, scores (A,) -> kept indices in score order; a box is dropped when
    its IoU with a kept one is > ``iou_thr``. Stops after ``max_keep`` boxes (the first
    ``max_keep`` of the full NMS)."""
    order = np.argsort(-scores, kind='stable')
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1],
                                                                 0, None)
    keep = []
    while order.size and (max_keep is None or len(keep) < max_keep):
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) -
                    np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        h = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) -
                    np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = w * h
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-12)
        order = rest[iou <= iou_thr]
    return np.asarray(keep, np.int64)


class RtmoNetwork(nn.Module):
    """RTMO's network: (1, 3, S, S) -> per anchor (A,) scores (sigmoid, best class), (A, 4)
    boxes x1y1x2y2 in I, (A, K) keypoint visibilities (sigmoid), (A, D) pose vectors."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        head = model.head
        self.register_buffer('priors', head.flatten_priors.clone(), persistent=False)
        self.register_buffer('strides', head.flatten_stride.clone(), persistent=False)

    def forward(self, x):
        head = self.model.head
        cls, box, _, vis, pose = head.forward(self.model.extract_feat(x))
        scores = head._flatten_predictions(cls).sigmoid()[0].amax(-1)
        boxes = head.decode_bbox(head._flatten_predictions(box), self.priors, self.strides)[0]
        return (scores, boxes, head._flatten_predictions(vis).sigmoid()[0],
                head._flatten_predictions(pose)[0])


class RtmoDcc(nn.Module):
    """RTMO's dynamic coordinate classifier: (n, D) pose vectors, (n, 4) box centre + scale,
    (n, 2) anchor points -> (n, K, 2) keypoints in I."""

    def __init__(self, dcc: nn.Module):
        super().__init__()
        self.dcc = dcc

    def forward(self, pose_vecs, bbox_cs, grids):
        return self.dcc.forward_test(pose_vecs, bbox_cs, grids)


def build_rtmo(name: str, seed: int = 0) -> Tuple[nn.Module, dict]:
    """RTMO-s/-m/-l from MMPose's config in deploy mode (random weights) and its test_cfg."""
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS
    if name not in RTMO_CONFIGS:
        raise ValueError(f'unknown RTMO variant {name!r}; one of {sorted(RTMO_CONFIGS)}')
    init_default_scope('mmpose')
    MMLogger.get_current_instance().setLevel('WARNING')
    cfg = Config.fromfile(_mmpose_config(RTMO_CONFIGS[name]))
    mcfg = copy.deepcopy(cfg.model)
    mcfg.backbone.pop('init_cfg', None)
    torch.manual_seed(seed)
    model = MODELS.build(mcfg)
    model.init_weights()
    model.eval()
    model.switch_to_deploy()
    return model, dict(mcfg.test_cfg)


def build_rtmo_onnx(name: str, out_prefix: str, threads: int, seed: int = 0
                    ) -> Callable[[np.ndarray, int], dict]:
    """Export RTMO ``name`` as ``out_prefix``_net.onnx and _dcc.onnx; returns
    ``run(x, persons)`` -> dict(keypoints (N, K, 2) I, keypoint_scores (N, K), bboxes (N, 4),
    scores (N,)) for the first N = ``persons`` boxes kept by the NMS."""
    from mmpose.structures.bbox import bbox_xyxy2cs
    model, test_cfg = build_rtmo(name, seed)
    size = tuple(test_cfg.get('input_size', (640, 640)))
    head = model.head
    x = torch.zeros(1, 3, size[1], size[0])
    net_path, dcc_path = out_prefix + '_net.onnx', out_prefix + '_dcc.onnx'
    _export(RtmoNetwork(model), (x, ), net_path, ['input'],
            ['scores', 'boxes', 'keypoint_vis', 'pose_vecs'])
    with torch.no_grad():
        _, boxes, _, pose = RtmoNetwork(model)(x)
    n = 4
    cs = torch.cat(bbox_xyxy2cs(boxes[:n], head.bbox_padding), 1)
    dim = torch.export.Dim('n', min=1, max=int(head.flatten_priors.shape[0]))
    _export(RtmoDcc(head.dcc), (pose[:n], cs, head.flatten_priors[:n]), dcc_path,
            ['pose_vecs', 'bbox_cs', 'grids'], ['keypoints'],
            dynamic_shapes={'pose_vecs': {0: dim}, 'bbox_cs': {0: dim}, 'grids': {0: dim}})
    net, dcc = _session(net_path, threads), _session(dcc_path, threads)
    grids = head.flatten_priors.numpy().astype(np.float32)
    nms_thr, pad = float(test_cfg.get('nms_thr', 0.65)), float(head.bbox_padding)

    def run(img: np.ndarray, persons: int) -> dict:
        scores, boxes, vis, pose = net.run(None, {'input': img})
        keep = box_nms(boxes, scores, nms_thr, persons)
        if len(keep) < persons:   # too few boxes survive: the next anchors by score
            rest = np.setdiff1d(np.argsort(-scores), keep, assume_unique=True)
            keep = np.concatenate([keep, rest[:persons - len(keep)]])
        c, s = bbox_xyxy2cs(boxes[keep], pad)
        kpts = dcc.run(None, {'pose_vecs': pose[keep],
                              'bbox_cs': np.concatenate([c, s], 1).astype(np.float32),
                              'grids': grids[keep]})[0]
        return dict(keypoints=kpts.reshape(len(keep), -1, 2), keypoint_scores=vis[keep],
                    bboxes=boxes[keep],
                    scores=scores[keep])
    run.input_size = size
    return run


def build_peer(name: str, out_dir: str, persons, threads: int, seed: int = 0
               ) -> Tuple[Dict[int, Callable[[np.ndarray], dict]], Tuple[int, int]]:
    """``({N: run}, (W, H))`` of peer ``name`` ('cid', 'rtmo-s', 'rtmo-m', 'rtmo-l'):
    ``run(x)`` decodes N people from the normalised (1, 3, H, W) float32 input; files under
    ``out_dir`` (CID: one export per N; RTMO: one pair of files)."""
    if name == 'cid':
        return {n: build_cid_onnx(osp.join(out_dir, f'cid_{n}.onnx'), n, threads, seed=seed)
                for n in persons}, (512, 512)
    run = build_rtmo_onnx(name, osp.join(out_dir, name), threads, seed)
    return {n: (lambda x, n=n: run(x, n)) for n in persons}, run.input_size


PEER_CONFIGS = dict(RTMO_CONFIGS,
                    cid='body_2d_keypoint/cid/coco/cid_hrnet-w32_8xb20-140e_coco-512x512.py')


def published_ap() -> Dict[str, dict]:
    """The peers' published COCO val2017 AP as MMPose's model-zoo metafile next to each
    config states it (installed ``mmpose/.mim/configs/.../*.yml``): ``{name: dict(ap,
    source)}``; ``ap`` None where the metafile has no entry for the config."""
    import glob

    import yaml
    out = {}
    for name, rel in PEER_CONFIGS.items():
        cfg = _mmpose_config(rel)
        stem = osp.splitext(osp.basename(rel))[0]
        out[name] = dict(ap=None, source=None)
        for yml in sorted(glob.glob(osp.join(osp.dirname(cfg), '*.yml'))):
            with open(yml) as f:
                doc = yaml.safe_load(f) or {}
            for m in doc.get('Models', []):
                if m.get('Name') == stem and m.get('Results'):
                    ap = m['Results'][0].get('Metrics', {}).get('AP')
                    rel = osp.relpath(yml, osp.join(osp.dirname(cfg), *['..'] * 3))
                    out[name] = dict(ap=None if ap is None else round(100. * float(ap), 1),
                                     source=f'MMPose model zoo ({rel})')
    return out
