"""Generate a synthetic multi-person keypoint dataset in COCO format (seeded, deterministic).

    python tools/make_synthetic.py --out-dir data/synthetic [--seed 0] [--num-train 2000]
        [--num-val 200] [--crowded] [--force]

Writes, under ``--out-dir`` only::

    annotations/person_keypoints_train.json   annotations/person_keypoints_val.json
    train/000000.jpg ...                      val/000000.jpg ...
    meta.json                                 (the generator arguments: a cache stamp)

Each image shows 1-4 articulated figures with the 17 COCO keypoints (COCO order; the figure's
left side is on the image right: figures face the camera, heads turn by a yaw angle) drawn
over a cluttered background (gradient, random shapes and limb-like bars, noise). Figures have
plausible limb proportions with per-person length / width jitter, random arm/leg/torso/head
poses, heights from ~0.3 to ~1 image height (mostly >= 0.5), and overlap each other. Annotations follow COCO:

* keypoints (x, y, v): v=2 visible, v=1 labelled but occluded (covered by a figure drawn in
  front, or a far-side ear/eye hidden by the head), v=0 outside the image (x = y = 0);
* segmentation: polygons of the *visible* part of the body mask, area = visible pixel count,
  bbox = extent of the visible mask;
* crowd regions (iscrowd=1, uncompressed RLE, no keypoints) around clusters of tiny figures.

``--crowded`` (e.g. ``--num-train 0 --num-val 200``) makes a crowded split instead: 3-6 people
per image, 90% of them in one tight cluster, so most people overlap others (as in OCHuman).

Same arguments -> identical JSON bytes and image bytes (every image has its own
``numpy.random.default_rng`` stream derived from ``--seed``; only numpy and cv2 are used).
A second run with the same arguments returns at once (``meta.json`` matches) unless --force.
"""
import argparse
import json
import os.path as osp
import sys

import cv2
import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from logocap_rt.outputs import atomic_write, check_out_dir  # noqa: E402

KEYPOINT_NAMES = [
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder',
    'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_hip',
    'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle'
]
# COCO skeleton (1-based, as in the COCO json)
SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7],
            [6, 8], [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6],
            [5, 7]]
IMAGE_SIZES = ((256, 256), (320, 256), (256, 320))  # (W, H)
GENERATOR_VERSION = 2

# body proportions as fractions of the figure height (head top to ankle)
PROP = dict(head_r=0.065, neck=0.05, torso=0.30, shoulder_w=0.24, hip_w=0.17,
            upper_arm=0.17, forearm=0.15, thigh=0.25, shin=0.23)
THICK = dict(upper_arm=0.065, forearm=0.052, thigh=0.09, shin=0.07)


def _rot(v, a):
    """Rotate 2-vector(s) v by angle a (radians), image frame (y down)."""
    c, s = np.cos(a), np.sin(a)
    return np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], -1)


def sample_pose(rng, height, root_xy):
    """Sample one figure: keypoints (17, 2) float, self-occlusion flags (17,) bool and the
    drawing description. ``root_xy`` is the hip midpoint, ``height`` the figure height in px."""
    h = float(height)
    jit = lambda: rng.uniform(0.9, 1.1)  # noqa: E731
    width_f = rng.uniform(0.8, 1.25)      # body build: aspect ratio of the figure
    L = {k: v * h * (jit() if k not in ('shoulder_w', 'hip_w') else width_f)
         for k, v in PROP.items()}
    kp = np.zeros((17, 2), np.float64)
    hidden = np.zeros(17, bool)
    hip_mid = np.asarray(root_xy, np.float64)
    # torso direction (up = -y), mostly upright, sometimes bending
    t_ang = rng.normal(0, np.deg2rad(10)) if rng.random() < 0.8 else \
        rng.uniform(-1, 1) * np.deg2rad(45)
    up = _rot(np.array([0., -1.]), t_ang)
    right = _rot(np.array([1., 0.]), t_ang)  # towards the figure's left side (image right)
    sh_mid = hip_mid + up * L['torso'] * rng.uniform(0.85, 1.0)
    kp[5] = sh_mid + right * L['shoulder_w'] / 2
    kp[6] = sh_mid - right * L['shoulder_w'] / 2
    kp[11] = hip_mid + right * L['hip_w'] / 2
    kp[12] = hip_mid - right * L['hip_w'] / 2
    # arms: abduction a (0 = down, 90deg = sideways out, 180 = up), elbow flexion
    for side, (s_i, e_i, w_i) in ((1, (5, 7, 9)), (-1, (6, 8, 10))):
        a = rng.uniform(np.deg2rad(-25), np.deg2rad(175))
        flex = rng.uniform(np.deg2rad(-20), np.deg2rad(150)) * (1 if rng.random() < 0.7 else -1)
        fs = rng.uniform(0.7, 1.0)  # foreshortening
        d1 = np.array([side * np.sin(a), np.cos(a)])
        d1 = _rot(d1, t_ang)
        kp[e_i] = kp[s_i] + d1 * L['upper_arm'] * fs
        d2 = _rot(d1, -side * flex)
        kp[w_i] = kp[e_i] + d2 * L['forearm'] * rng.uniform(0.7, 1.0)
    # legs: outward angle b, knee bend
    sitting = rng.random() < 0.1
    for side, (h_i, k_i, a_i) in ((1, (11, 13, 15)), (-1, (12, 14, 16))):
        b = rng.uniform(np.deg2rad(-15), np.deg2rad(45))
        fs = rng.uniform(0.45, 0.75) if sitting else rng.uniform(0.85, 1.0)
        d1 = np.array([side * np.sin(b), np.cos(b)])
        kp[k_i] = kp[h_i] + d1 * L['thigh'] * fs
        bend = rng.uniform(np.deg2rad(-40), np.deg2rad(40))
        d2 = _rot(d1, bend)
        kp[a_i] = kp[k_i] + d2 * L['shin'] * rng.uniform(0.85, 1.0)
    # head: tilt, yaw; points on a head "sphere" at azimuth alpha project to r*sin(alpha+yaw)
    r = L['head_r']
    tilt = t_ang + rng.normal(0, np.deg2rad(12))
    hup = _rot(np.array([0., -1.]), tilt)
    hright = _rot(np.array([1., 0.]), tilt)
    head_c = sh_mid + up * L['neck'] + hup * r
    yaw = rng.uniform(-1, 1) * np.deg2rad(70)
    def on_head(alpha, dy):  # noqa: E306
        return head_c + hright * r * np.sin(alpha + yaw) + hup * (-dy * r)
    kp[0] = on_head(0., 0.25)
    hidden[0] = np.cos(yaw) < 0.2
    for idx, alpha in ((1, np.deg2rad(32)), (2, np.deg2rad(-32))):
        kp[idx] = on_head(alpha, -0.15) * 1.0
        kp[idx] = head_c + (kp[idx] - head_c) * 0.85
        hidden[idx] = np.cos(alpha + yaw) < 0.25
    for idx, alpha in ((3, np.pi / 2), (4, -np.pi / 2)):
        kp[idx] = on_head(alpha, 0.05)
        hidden[idx] = np.cos(alpha + yaw) < -0.05
    draw = dict(h=h, head_c=head_c, head_r=r, hup=hup, hright=hright, yaw=yaw,
                torso=np.stack([kp[5], kp[6], kp[12], kp[11]]),
                neck=(sh_mid, head_c), thick={k: max(1, int(round(v * h)))
                                              for k, v in THICK.items()})
    return kp, hidden, draw


def _pt(p):
    return (int(round(p[0] * 16)), int(round(p[1] * 16)))  # 4 fractional bits for cv2


def draw_figure(canvas, kp, hidden, draw, colors, value=None):
    """Draw one figure onto ``canvas`` (H, W, 3 uint8 image or H, W uint8 mask).
    ``value`` (mask mode): the fill value for every part instead of the colours."""
    sh = 4
    lt = cv2.LINE_AA if value is None else cv2.LINE_8
    c = (lambda name: colors[name]) if value is None else (lambda name: value)
    th = draw['thick']
    neck_t = max(1, int(round(draw['h'] * 0.05)))
    cv2.line(canvas, _pt(draw['neck'][0]), _pt(draw['neck'][1]), c('skin'), neck_t, lt, sh)
    torso = draw['torso']
    ctr = torso.mean(0)
    torso = ctr + (torso - ctr) * 1.12
    cv2.fillConvexPoly(canvas, np.array([_pt(p) for p in torso], np.int32), c('shirt'), lt, sh)
    for a, b, part, col in ((11, 13, 'thigh', 'pants'), (12, 14, 'thigh', 'pants'),
                            (13, 15, 'shin', 'pants'), (14, 16, 'shin', 'pants'),
                            (5, 7, 'upper_arm', 'shirt'), (6, 8, 'upper_arm', 'shirt'),
                            (7, 9, 'forearm', 'skin'), (8, 10, 'forearm', 'skin')):
        cv2.line(canvas, _pt(kp[a]), _pt(kp[b]), c(col), th[part], lt, sh)
        cv2.circle(canvas, _pt(kp[b]), int(th[part] * 8), c(col), -1, lt, sh)
    for i in (9, 10):
        cv2.circle(canvas, _pt(kp[i]), int(th['forearm'] * 9), c('skin'), -1, lt, sh)
    for i in (15, 16):
        cv2.circle(canvas, _pt(kp[i]), int(th['shin'] * 9), c('shoes'), -1, lt, sh)
    r = draw['head_r']
    cv2.circle(canvas, _pt(draw['head_c']), int(r * 16), c('skin'), -1, lt, sh)
    for i in (3, 4):  # visible ears
        if not hidden[i]:
            cv2.circle(canvas, _pt(kp[i]), max(1, int(r * 0.3 * 16)), c('ear'), -1, lt, sh)
    if value is None:
        # hair on the back of the head, then the face marks
        hair_c = draw['head_c'] + draw['hup'] * r * 0.45 - draw['hright'] * r * np.sin(
            draw['yaw']) * 0.3
        cv2.ellipse(canvas, _pt(hair_c), (int(r * 0.95 * 16), int(r * 0.55 * 16)), 0, 180,
                    360, colors['hair'], -1, lt, sh)
        for i in (1, 2):
            if not hidden[i]:
                cv2.circle(canvas, _pt(kp[i]), max(1, int(r * 0.18 * 16)), (20, 20, 20), -1,
                           lt, sh)
        if not hidden[0]:
            cv2.circle(canvas, _pt(kp[0]), max(1, int(r * 0.16 * 16)), colors['nose'], -1,
                       lt, sh)


def _color(rng, lo=0, hi=256):
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


def person_colors(rng):
    skin = rng.choice([[60, 80, 120], [90, 130, 190], [120, 160, 220], [150, 190, 235],
                       [50, 60, 90]]) + rng.integers(-15, 16, 3)
    skin = tuple(int(v) for v in np.clip(skin, 0, 255))
    return dict(skin=skin, shirt=_color(rng), pants=_color(rng, 0, 200), shoes=_color(rng, 0, 90),
                hair=_color(rng, 0, 80), ear=tuple(int(v * 0.8) for v in skin),
                nose=tuple(int(v * 0.6) for v in skin))


def background(rng, w, h):
    """Cluttered background: a two-colour gradient, random rectangles / ellipses / polygons,
    limb-like bars and blobs, blur and sensor noise."""
    c0, c1 = np.array(_color(rng), np.float32), np.array(_color(rng), np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (np.cos(ang) * xs / w + np.sin(ang) * ys / h)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    img = (c0 * (1 - t[..., None]) + c1 * t[..., None]).astype(np.uint8)
    for _ in range(int(rng.integers(4, 14))):
        kind = rng.integers(0, 5)
        col = _color(rng)
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


def _bbox(mask):
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return [0., 0., 0., 0.]
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1)]


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
                             area=float(crowd.sum()), bbox=_bbox(crowd),
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
    front = np.zeros((h, w), np.uint8)
    vis_masks = [None] * len(people)
    for i in range(len(people) - 1, -1, -1):  # near to far: accumulate occluders
        vis_masks[i] = (masks[i] > 0) & (front == 0)
        people[i] = people[i] + (front.copy(), )
        front |= masks[i]
    for i, (_, kp, hid, dr, col, occluder) in enumerate(people):
        vm = vis_masks[i]
        area = float(vm.sum())
        if area < 16:
            continue  # fully hidden
        kps = []
        nk = 0
        for k in range(17):
            x, y = float(kp[k, 0]), float(kp[k, 1])
            if not (0 <= x < w and 0 <= y < h):
                kps += [0, 0, 0]
                continue
            xi, yi = min(int(x), w - 1), min(int(y), h - 1)
            v = 1 if (hid[k] or occluder[yi, xi]) else 2
            kps += [round(x, 2), round(y, 2), v]
            nk += 1
        polys = mask_polygons(vm)
        seg = polys if polys else rle_encode(vm)
        anns.append(dict(iscrowd=0, segmentation=seg, area=area, bbox=_bbox(vm),
                         keypoints=kps, num_keypoints=nk))
    for j, a in enumerate(anns):
        a.update(id=ann_start + j, image_id=img_id, category_id=1)
    return img, dict(id=img_id, width=w, height=h), anns


def make_split(out_dir, split, num, seed, crowded=False):
    """Write ``num`` images of one split; returns the COCO dict. A crowded split draws from
    its own random streams (other images than the normal split of the same seed)."""
    check_out_dir(osp.join(out_dir, split))
    images, annotations = [], []
    split_key = {'train': 1, 'val': 2}.get(split, 3) + (10 if crowded else 0)
    for i in range(num):
        rng = np.random.default_rng([seed, split_key, i])
        img_id = i + 1
        img, info, anns = make_image(rng, img_id, len(annotations) + 1, crowded)
        name = f'{i:06d}.jpg'
        ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise RuntimeError(f'cv2.imencode failed for {split}/{name}')
        atomic_write(osp.join(out_dir, split, name), buf.tobytes())
        info['file_name'] = name
        images.append(info)
        annotations += anns
    return dict(
        info=dict(description='logocap_mm synthetic multi-person keypoints', version='1'),
        images=images, annotations=annotations,
        categories=[dict(id=1, name='person', supercategory='person',
                         keypoints=KEYPOINT_NAMES, skeleton=SKELETON)])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out-dir', required=True)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--num-train', type=int, default=2000)
    p.add_argument('--num-val', type=int, default=200)
    p.add_argument('--crowded', action='store_true',
                   help='crowded images: 3-6 people, most of them overlapping (as OCHuman)')
    p.add_argument('--force', action='store_true', help='regenerate even if cached')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for name in ('num_train', 'num_val'):
        if getattr(args, name) < 0:
            raise ValueError(f'--{name.replace("_", "-")} must be >= 0, '
                             f'got {getattr(args, name)}')
    meta = dict(seed=args.seed, num_train=args.num_train, num_val=args.num_val,
                version=GENERATOR_VERSION)
    if args.crowded:
        meta['crowded'] = True
    stamp = osp.join(args.out_dir, 'meta.json')
    check_out_dir(args.out_dir)
    if not args.force and osp.isfile(stamp):
        with open(stamp) as f:
            if json.load(f) == meta:
                print(f'make_synthetic: {args.out_dir} is up to date (meta.json matches)')
                return 0
    check_out_dir(osp.join(args.out_dir, 'annotations'))
    for split, num in (('train', args.num_train), ('val', args.num_val)):
        coco = make_split(args.out_dir, split, num, args.seed, args.crowded)
        path = osp.join(args.out_dir, 'annotations', f'person_keypoints_{split}.json')
        atomic_write(path, json.dumps(coco, sort_keys=True, separators=(',', ':')))
        n_p = sum(a['iscrowd'] == 0 for a in coco['annotations'])
        n_c = len(coco['annotations']) - n_p
        print(f'{split}: {num} images, {n_p} people, {n_c} crowd regions -> {path}')
    atomic_write(stamp, json.dumps(meta, sort_keys=True))
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except ValueError as e:
        sys.exit(f'make_synthetic: {e}')
