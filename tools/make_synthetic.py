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

TOOLS = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, osp.dirname(TOOLS))
if TOOLS not in sys.path:  # the synthetic package beside this file
    sys.path.insert(0, TOOLS)
from logocap_rt.outputs import atomic_write, check_out_dir  # noqa: E402
# the generator's parts, also used as make_synthetic.NAME (make_synthetic_video.py, tests)
from synthetic.coco import (KEYPOINT_NAMES, SKELETON, person_annotations,  # noqa: E402,F401
                            rle_encode)
from synthetic.person import draw_figure, person_colors, sample_pose  # noqa: E402,F401
from synthetic.scene import IMAGE_SIZES, background, make_image  # noqa: E402,F401

GENERATOR_VERSION = 2


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
