"""COCO keypoint annotations of drawn figures: keypoint names and skeleton, visibility from
occlusion order, polygons / uncompressed RLE of the visible body mask, boxes and areas.
"""
import cv2
import numpy as np

KEYPOINT_NAMES = [
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder',
    'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_hip',
    'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle'
]
# COCO skeleton (1-based, as in the COCO json)
SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7],
            [6, 8], [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6],
            [5, 7]]

def rle_encode(mask):
    """Uncompressed COCO RLE (column-major run lengths starting with a 0-run)."""
    flat = np.asarray(mask, np.uint8).flatten(order='F')
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    return dict(size=[int(mask.shape[0]), int(mask.shape[1])], counts=[int(c) for c in counts])


def mask_polygons(mask):
    """Polygons (COCO lists of x, y) of the outer contours of a binary mask."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for cnt in contours:
        if len(cnt) >= 3:
            polys.append([round(float(v), 2) for v in cnt.reshape(-1).astype(np.float64)])
    return polys


def mask_bbox(mask):
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return [0., 0., 0., 0.]
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1)]


def person_annotations(kps, hiddens, masks, w, h):
    """COCO annotations of figures drawn far to near (``masks[i]``: figure i's body mask).

    Returns one dict per figure (``iscrowd, segmentation, area, bbox, keypoints,
    num_keypoints``), None for a figure fully hidden by nearer ones (< 16 visible pixels).
    """
    front = np.zeros((h, w), np.uint8)
    vis_masks, occluders = [None] * len(kps), [None] * len(kps)
    for i in range(len(kps) - 1, -1, -1):  # near to far: accumulate occluders
        vis_masks[i] = (masks[i] > 0) & (front == 0)
        occluders[i] = front.copy()
        front |= masks[i]
    anns = []
    for kp, hid, vm, occluder in zip(kps, hiddens, vis_masks, occluders):
        area = float(vm.sum())
        if area < 16:
            anns.append(None)  # fully hidden
            continue
        out = []
        nk = 0
        for k in range(17):
            x, y = float(kp[k, 0]), float(kp[k, 1])
            if not (0 <= x < w and 0 <= y < h):
                out += [0, 0, 0]
                continue
            xi, yi = min(int(x), w - 1), min(int(y), h - 1)
            v = 1 if (hid[k] or occluder[yi, xi]) else 2
            out += [round(x, 2), round(y, 2), v]
            nk += 1
        polys = mask_polygons(vm)
        seg = polys if polys else rle_encode(vm)
        anns.append(dict(iscrowd=0, segmentation=seg, area=area, bbox=mask_bbox(vm),
                         keypoints=out, num_keypoints=nk))
    return anns
