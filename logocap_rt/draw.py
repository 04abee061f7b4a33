"""Drawing of predicted poses with OpenCV (no torch, no mmengine)."""
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

__all__ = ['draw_instances']


def _colour(i: int):
    """A stable, distinct BGR colour per instance (golden-ratio hue steps)."""
    hue = int((i * 0.618033988749895 % 1.0) * 180)
    hsv = np.array([[[hue, 220, 255]]], np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def draw_instances(img: np.ndarray, instances: List[Dict],
                   skeleton: Optional[Sequence[Sequence[int]]] = None,
                   kpt_thr: float = 0.05, radius: int = 3, thickness: int = 2) -> np.ndarray:
    """A copy of ``img`` (H, W, 3) uint8 BGR with every instance's keypoints (O frame) whose
    score is at least ``kpt_thr``, and the skeleton links between such keypoints."""
    out = np.ascontiguousarray(img).copy()
    skeleton = skeleton or ()
    for i, inst in enumerate(instances):
        col = _colour(i)
        kp = np.asarray(inst['keypoints'], np.float64)
        ok = np.asarray(inst['keypoint_scores']) >= kpt_thr
        pts = [tuple(int(round(v)) for v in p) for p in kp]
        for a, b in skeleton:
            if a < len(pts) and b < len(pts) and ok[a] and ok[b]:
                cv2.line(out, pts[a], pts[b], col, thickness, cv2.LINE_AA)
        for p, good in zip(pts, ok):
            if good:
                cv2.circle(out, p, radius, col, -1, cv2.LINE_AA)
    return out
