"""One synthetic image: a cluttered background, an optional crowd region of tiny figures and
1-4 people (3-6 in crowded mode) drawn far to near, sensor noise, and its COCO annotations.
"""
import cv2
import numpy as np

from .coco import mask_bbox, person_annotations, rle_encode
from .person import draw_figure, person_colors, random_color, sample_pose

IMAGE_SIZES = ((256, 256), (320, 256), (256, 320))  # (W, H)


def background(rng, w, h):
    """Cluttered background: a two-colour gradient, random rectangles / ellipses / polygons,
    limb-like bars and blobs, blur and sensor noise."""
    c0, c1 = np.array(random_color(rng), np.float32), np.array(random_color(rng), np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (np.cos(ang) * xs / w + np.sin(ang) * ys / h)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    img = (c0 * (1 - t[..., None]) + c1 * t[..., None]).astype(np.uint8)
    for _ in range(int(rng.integers(4, 14))):
        kind = rng.integers(0, 5)
        col = random_color(rng)
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if kind == 0:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(5, w // 2)),
                                        y + int(rng.integers(5, h // 2))), col, -1)
        elif kind == 1:
            cv2.ellipse(img, (x, y), (int(rng.integers(3, 40)), int(rng.integers(3, 40))),
                        float(rng.uniform(0, 180)), 0, 360, col, -1, cv2.LINE_AA)
        elif kind == 2:  # limb-like distractor bars
            x2, y2 = x + int(rng.integers(-60, 61)), y + int(rng.integers(-60, 61))
            cv2.line(img, (x, y), (x2, y2), col, int(rng.integers(2, 12)), cv2.LINE_AA)
        elif kind == 3:
            pts = np.stack([rng.integers(0, w, 3), rng.integers(0, h, 3)], -1).astype(np.int32)
            cv2.fillConvexPoly(img, pts, col, cv2.LINE_AA)
        else:
            cv2.circle(img, (x, y), int(rng.integers(2, 10)), col, -1, cv2.LINE_AA)
    img = cv2.GaussianBlur(img, (3, 3), 0)
    return img


def make_image(rng, img_id, ann_start, crowded=False):
    """One image and its annotations. Returns (image BGR uint8, image dict w/o file_name,
    list of annotation dicts). ``crowded``: 3-6 people, 90% of them in one tight cluster."""
    w, h = IMAGE_SIZES[int(rng.integers(0, len(IMAGE_SIZES)))]
    img = background(rng, w, h)
    anns = []
    # crowd region: a cluster of tiny figures, drawn first (behind everybody else)
    if rng.random() < 0.15:
        crowd = np.zeros((h, w), np.uint8)
        cx, cy = rng.uniform(0.15, 0.85) * w, rng.uniform(0.2, 0.6) * h
        for _ in range(int(rng.integers(4, 9))):
            ph = rng.uniform(0.12, 0.2) * h
            root = (cx + rng.uniform(-0.15, 0.15) * w, cy + rng.uniform(-0.05, 0.05) * h)
            kp, hid, dr = sample_pose(rng, ph, root)
            draw_figure(img, kp, hid, dr, person_colors(rng))
            draw_figure(crowd, kp, hid, dr, None, value=1)
        if crowd.any():
            anns.append(dict(iscrowd=1, segmentation=rle_encode(crowd),
                             area=float(crowd.sum()), bbox=mask_bbox(crowd),
                             keypoints=[0] * 51, num_keypoints=0))
    # people, drawn far to near (ordered by the ankle line: lower in the image is nearer)
    if crowded:
        n, p_cluster, spread = int(rng.integers(3, 7)), 0.9, 0.08
    else:
        n, p_cluster, spread = int(rng.choice([1, 2, 3, 4], p=[0.25, 0.35, 0.25, 0.15])), 0.6, 0.15
    people = []
    cluster_x = rng.uniform(0.3, 0.7) * w
    for _ in range(n):
        ph = rng.uniform(0.5, 1.0) * h if rng.random() < 0.9 else rng.uniform(0.3, 0.5) * h
        if rng.random() < p_cluster:  # clustered: people overlap
            rx = cluster_x + rng.normal(0, spread) * w
        else:
            rx = rng.uniform(0.05, 0.95) * w
        ry = rng.uniform(0.45, 0.7) * ph + rng.uniform(-0.1, 0.55) * (h - ph) + 0.05 * h
        kp, hid, dr = sample_pose(rng, ph, (rx, ry))
        people.append((float(kp[15:17, 1].max()), kp, hid, dr, person_colors(rng)))
    people.sort(key=lambda p: p[0])
    masks = []
    for _, kp, hid, dr, col in people:
        m = np.zeros((h, w), np.uint8)
        draw_figure(m, kp, hid, dr, None, value=1)
        masks.append(m)
        draw_figure(img, kp, hid, dr, col)
    # sensor noise last (deterministic: from rng)
    noise = rng.normal(0, 4, img.shape)
    img = np.clip(img.astype(np.float64) + noise, 0, 255).astype(np.uint8)
    anns += [a for a in person_annotations([p[1] for p in people], [p[2] for p in people],
                                           masks, w, h) if a is not None]
    for j, a in enumerate(anns):
        a.update(id=ann_start + j, image_id=img_id, category_id=1)
    return img, dict(id=img_id, width=w, height=h), anns
