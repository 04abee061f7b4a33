"""Drawing of tracked poses: one colour per track id, the id written by the head (OpenCV)."""
import cv2
import numpy as np

UNTRACKED = (160, 160, 160)  # BGR grey for poses without an id (not tracked)


def track_colour(track_id):
    """A stable BGR colour per track id (golden-ratio hue steps); grey for ids < 0."""
    if track_id < 0:
        return UNTRACKED
    hue = int((track_id * 0.618033988749895 % 1.0) * 180)
    hsv = np.array([[[hue, 220, 255]]], np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def draw_tracks(img, instances, skeleton=None, kpt_thr=0.05, radius=3, thickness=2):
    """A copy of ``img`` (H, W, 3) uint8 BGR with each instance (dicts with ``keypoints``
    (K, 2) O pixels, ``keypoint_scores`` (K,), ``track_id``) drawn in its track's colour:
    keypoints scoring at least ``kpt_thr``, the skeleton links between them and, for
    tracked poses, the id above the highest such keypoint."""
    out = np.ascontiguousarray(img).copy()
    skeleton = skeleton or ()
    scale = max(0.35, min(out.shape[:2]) / 700.0)
    for inst in instances:
        tid = int(inst.get('track_id', -1))
        col = track_colour(tid)
        kp = np.asarray(inst['keypoints'], np.float64).reshape(-1, 2)
        ok = (np.asarray(inst['keypoint_scores'], np.float64) >= kpt_thr) & np.isfinite(
            kp).all(1)
        pts = [tuple(int(round(v)) for v in p) if good else None for p, good in zip(kp, ok)]
        for a, b in skeleton:
            if a < len(pts) and b < len(pts) and pts[a] and pts[b]:
                cv2.line(out, pts[a], pts[b], col, thickness, cv2.LINE_AA)
        for p in pts:
            if p:
                cv2.circle(out, p, radius, col, -1, cv2.LINE_AA)
        if tid >= 0 and ok.any():
            top = kp[ok][np.argmin(kp[ok][:, 1])]
            org = (int(round(top[0])) - 6, max(int(round(top[1])) - 8, 12))
            cv2.putText(out, str(tid), org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                        thickness + 2, cv2.LINE_AA)
            cv2.putText(out, str(tid), org, cv2.FONT_HERSHEY_SIMPLEX, scale, col, thickness,
                        cv2.LINE_AA)
    return out
