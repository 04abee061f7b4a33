"""Pose NMS, the people cap and the output instances, in numpy (no torch).

The decisions equal :func:`logocap_mm.models.utils.pose_nms.pose_nms` and
``LogoCapDecoder.finalize`` (tests compare them on random inputs): pose ``j`` duplicates
pose ``i`` when more than ``num_joints_thr`` keypoints are closer than ``dist_ratio`` times
pose ``i``'s keypoint-box diagonal; visiting the slots in centre-score order, an unprocessed
slot's group keeps its best-scoring member (first one on ties) unless that one was already
processed. Kept poses come in keep order; above ``max_people`` the best-scoring ones stay,
still in keep order.
"""
from typing import Dict, List

import numpy as np

from .geometry import canvas_to_original

__all__ = ['pose_nms', 'finalize', 'to_instances']


def pose_nms(keypoints: np.ndarray, scores: np.ndarray, valid: np.ndarray,
             dist_ratio: float = 0.05, num_joints_thr: int = 8) -> np.ndarray:
    """Greedy pose NMS of one image.

    Args:
        keypoints: (T, K, 2) poses (any frame); scores: (T,) pose scores;
        valid: (T,) bool slots to consider.

    Returns:
        keep_rank (T,) int64: position in keep order, -1 if dropped.
    """
    kp = np.asarray(keypoints)
    T = kp.shape[0]
    valid = np.asarray(valid, bool)
    wh = kp.max(1) - kp.min(1)                                          # (T, 2)
    diag = np.sqrt((wh * wh).sum(-1))                                   # (T,)
    d = kp[:, None] - kp[None]                                          # (T, T, K, 2)
    dist = np.sqrt((d * d).sum(-1))
    close = dist < (np.asarray(dist_ratio, kp.dtype) * diag)[:, None, None]
    dup = (close.sum(-1) > num_joints_thr) & valid[:, None] & valid[None, :]
    rank = np.full(T, -1, np.int64)
    processed = np.zeros(T, bool)
    count = 0
    for i in range(T):
        grp = dup[i]
        if not (valid[i] and not processed[i] and grp.any()):
            continue
        best = int(np.argmax(np.where(grp, scores, -np.inf)))           # first maximum
        if processed[best]:
            continue
        rank[best] = count
        count += 1
        processed |= grp
    return rank


def finalize(keypoints: np.ndarray, keypoint_scores: np.ndarray, scores: np.ndarray,
             valid: np.ndarray, meta: Dict) -> Dict[str, np.ndarray]:
    """Padded decoder outputs of one image -> kept poses in keep order.

    Args:
        keypoints (T, K, 2) I; keypoint_scores (T, K); scores (T,) pose scores; valid (T,);
        meta: the model facts (``pose_nms``, ``nms_dist_ratio``, ``nms_num_joints``,
        ``max_people``).

    Returns:
        dict(keypoints (N, K, 2) I, keypoint_scores (N, K), scores (N,)).
    """
    ok = np.asarray(valid, bool) & (scores > 0)
    T = ok.shape[0]
    if meta['pose_nms'] and T > 0:
        rank = pose_nms(keypoints, scores, ok, meta['nms_dist_ratio'], meta['nms_num_joints'])
    else:
        rank = np.where(ok, np.cumsum(ok) - 1, -1)
    kept = np.nonzero(rank >= 0)[0]
    order = kept[np.argsort(rank[kept], kind='stable')]
    if order.size > meta['max_people']:
        top = np.argsort(-scores[order], kind='stable')[:meta['max_people']]
        order = order[np.sort(top)]
    return dict(keypoints=keypoints[order], keypoint_scores=keypoint_scores[order],
                scores=scores[order])


def to_instances(det: Dict[str, np.ndarray], canvas_meta: Dict) -> List[Dict]:
    """Kept poses (I) -> the instances of MMPoseInferencer's ``pred_out_dir`` JSON, in O.

    Every instance: ``keypoints`` (K x [x, y]), ``keypoint_scores`` (K), ``bbox``
    ([[x1, y1, x2, y2]], the keypoints' box, nested once as MMPose writes it) and
    ``bbox_score`` (the pose score).
    """
    kpts = det['keypoints'].astype(np.float32)
    if len(kpts):
        boxes = np.concatenate([kpts.min(1), kpts.max(1)], axis=1).reshape(-1, 2, 2)
    else:
        boxes = np.zeros((0, 2, 2), np.float32)
    kpts_o = canvas_to_original(kpts, canvas_meta)
    boxes_o = canvas_to_original(boxes, canvas_meta).reshape(-1, 4)
    out = []
    for i in range(len(kpts)):
        out.append(dict(keypoints=kpts_o[i].tolist(),
                        keypoint_scores=det['keypoint_scores'][i].astype(np.float32).tolist(),
                        bbox=[boxes_o[i].tolist()],
                        bbox_score=float(det['scores'][i])))
    return out
