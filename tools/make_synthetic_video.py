"""Generate synthetic multi-person video clips with ground-truth identities (seeded).

    python tools/make_synthetic_video.py --out-dir data/synthetic_video [--seed 0]
        [--num-clips 4] [--frames 120] [--people 6] [--fps 25] [--size 320x256] [--force]

Writes, under ``--out-dir`` only::

    clip_000.mp4 ...     the clips (MPEG-4 part 2, OpenCV's 'mp4v')
    clip_000.json ...    per-frame COCO-style annotations with a track id (PoseTrack-like)
    meta.json            the generator arguments (a cache stamp)

The figures are those of ``tools/make_synthetic.py`` (same bodies, clothes, clutter and
annotation rules: v=2 visible, v=1 covered by a nearer figure or hidden by the head, v=0
outside the image). In a clip the crowd moves: every person walks left or right at their own
speed and depth, swinging arms and legs (one gait cycle per 0.8 body heights walked); some are in
view from the first frame, others enter later from either side; some turn round; people at
similar depths cross and occlude each other; everybody may leave. The background is fixed,
the sensor noise new in every frame.

Each ``clip_NNN.json`` holds ``videos`` (one: ``file_name``, ``fps``, ``width``, ``height``,
``nframes``), ``images`` (one per frame: ``id``, ``vid_id``, ``frame_id`` from 0,
``file_name`` = the clip), ``annotations`` (COCO person keypoints plus ``track_id``, the same
for one person through the clip, and ``body_area``, the area of the box around all 17
keypoints whether in view or not; a person is annotated in a frame when at least 16 pixels of
them and one keypoint are in view) and ``categories``. Same arguments -> identical JSON.
"""
import argparse
import importlib.util
import json
import math
import os
import os.path as osp
import sys

import cv2
import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:  # runnable from a clone
    sys.path.insert(0, ROOT)

from logocap_rt.outputs import atomic_write, check_out_dir, publish, temp_path  # noqa: E402

GENERATOR_VERSION = 1


def _load_images_tool():
    path = osp.join(osp.dirname(osp.abspath(__file__)), 'make_synthetic.py')
    spec = importlib.util.spec_from_file_location('_make_synthetic_images', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ms = _load_images_tool()


def _rotate_about(points, centre, angle):
    c, s = math.cos(angle), math.sin(angle)
    d = points - centre
    return centre + np.stack([c * d[..., 0] - s * d[..., 1], s * d[..., 0] + c * d[..., 1]], -1)


class Walker:
    """One person of a clip: a body from ``make_synthetic.sample_pose`` that walks.

    Position at frame t: ``x(t)`` piecewise linear (one optional turn), fixed ground line
    (depth); legs swing about the hips and arms about the shoulders in opposite phase.
    """

    def __init__(self, rng, w, h, n_frames, track_id):
        self.track_id = track_id
        self.height = rng.uniform(0.5, 0.85) * h
        ph = self.height
        self.ground = (rng.uniform(0.45, 0.7) * ph + rng.uniform(-0.1, 0.55) * (h - ph)
                       + 0.05 * h)
        self.kp, self.hidden, self.draw = ms.sample_pose(rng, ph, (0.0, self.ground))
        self.colors = ms.person_colors(rng)
        self.speed = rng.uniform(1.0, 3.5) * w / 320.0  # px per frame
        self.dir = float(rng.choice([-1.0, 1.0]))
        margin = 0.35 * ph
        if rng.random() < 0.5:  # in view from the start
            self.x0, self.t0 = rng.uniform(0.1, 0.9) * w, 0
        else:  # enters from the side it walks away from, at a random frame
            self.x0 = -margin if self.dir > 0 else w + margin
            self.t0 = int(rng.integers(0, max(1, int(n_frames * 0.6))))
        self.turn = int(rng.integers(n_frames // 4, n_frames)) if rng.random() < 0.25 else None
        self.swing = np.deg2rad(rng.uniform(15, 30))
        self.stride = 0.8 * ph  # one gait cycle (two steps)
        self.phase0 = rng.uniform(0, 2 * np.pi)

    def x_at(self, t):
        if t < self.t0:
            return None
        if self.turn is None or t <= self.turn:
            return self.x0 + self.dir * self.speed * (t - self.t0)
        xt = self.x0 + self.dir * self.speed * (self.turn - self.t0)
        return xt - self.dir * self.speed * (t - self.turn)

    def pose_at(self, t, w):
        """(kp (17, 2), draw dict) at frame ``t``, or None when not in the scene."""
        x = self.x_at(t)
        if x is None or x < -0.6 * self.height or x > w + 0.6 * self.height:
            return None
        walked = self.speed * (t - self.t0)
        th = self.swing * math.sin(self.phase0 + 2 * math.pi * walked / self.stride)
        bob = -0.01 * self.height * abs(math.cos(self.phase0 + 2 * math.pi * walked
                                                 / self.stride))
        kp = self.kp.copy()
        for hip, (knee, ankle), sgn in ((11, (13, 15), 1), (12, (14, 16), -1)):
            kp[[knee, ankle]] = _rotate_about(kp[[knee, ankle]], kp[hip], sgn * th)
        for sh, (elb, wri), sgn in ((5, (7, 9), -0.7), (6, (8, 10), 0.7)):
            kp[[elb, wri]] = _rotate_about(kp[[elb, wri]], kp[sh], sgn * th)
        shift = np.array([x, bob])
        kp = kp + shift
        d = dict(self.draw)
        d['head_c'] = self.draw['head_c'] + shift
        d['neck'] = tuple(p + shift for p in self.draw['neck'])
        d['torso'] = np.stack([kp[5], kp[6], kp[12], kp[11]])
        return kp, d


def body_area(kp):
    """Area (px^2, rounded to 0.01) of the box around all 17 keypoints, in view or not: the
    size of the whole person, however much of them shows."""
    wh = kp.max(0) - kp.min(0)
    return round(float(wh[0] * wh[1]), 2)


def make_clip(rng, n_frames, n_people, w, h):
    """Frames (list of BGR uint8 images) and per-frame annotation lists (dicts with
    ``track_id``) of one clip."""
    bg = ms.background(rng, w, h)
    walkers = [Walker(rng, w, h, n_frames, i + 1) for i in range(n_people)]
    walkers.sort(key=lambda p: p.ground)  # far to near: drawing order
    frames, per_frame = [], []
    for t in range(n_frames):
        img = bg.copy()
        shown, masks = [], []
        for p in walkers:
            pose = p.pose_at(t, w)
            if pose is None:
                continue
            kp, d = pose
            m = np.zeros((h, w), np.uint8)
            ms.draw_figure(m, kp, p.hidden, d, None, value=1)
            ms.draw_figure(img, kp, p.hidden, d, p.colors)
            shown.append((p, kp))
            masks.append(m)
        noise = rng.normal(0, 3, img.shape)
        frames.append(np.clip(img.astype(np.float64) + noise, 0, 255).astype(np.uint8))
        anns = ms.person_annotations([kp for _, kp in shown], [p.hidden for p, _ in shown],
                                     masks, w, h)
        per_frame.append([dict(a, track_id=p.track_id, body_area=body_area(kp))
                          for (p, kp), a in zip(shown, anns)
                          if a is not None and a['num_keypoints'] > 0])
    return frames, per_frame


def write_video(path, frames, fps):
    """Write ``frames`` to ``path`` (mp4v) through a temporary file in the same folder
    (the shared output rules: never over an input or a non-regular file)."""
    h, w = frames[0].shape[:2]
    tmp = temp_path(path, '.mp4')
    vw = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*'mp4v'), float(fps), (w, h))
    try:
        if not vw.isOpened():
            raise RuntimeError(f'OpenCV cannot write an mp4v video to {tmp}')
        for f in frames:
            vw.write(f)
        vw.release()
        publish(tmp, path)
    finally:
        vw.release()
        if osp.exists(tmp):
            os.remove(tmp)


def clip_json(name, per_frame, fps, w, h, vid_id):
    images, annotations = [], []
    for t, anns in enumerate(per_frame):
        img_id = vid_id * 100000 + t
        images.append(dict(id=img_id, vid_id=vid_id, frame_id=t, file_name=name, width=w,
                           height=h))
        for a in anns:
            annotations.append(dict(a, id=len(annotations) + 1, image_id=img_id,
                                    category_id=1))
    return dict(
        info=dict(description='logocap_mm synthetic multi-person video', version='1'),
        videos=[dict(id=vid_id, file_name=name, fps=fps, width=w, height=h,
                     nframes=len(per_frame))],
        images=images, annotations=annotations,
        categories=[dict(id=1, name='person', supercategory='person',
                         keypoints=ms.KEYPOINT_NAMES, skeleton=ms.SKELETON)])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out-dir', required=True)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--num-clips', type=int, default=4)
    p.add_argument('--frames', type=int, default=120, help='frames per clip')
    p.add_argument('--people', type=int, default=6, help='people per clip (not all at once)')
    p.add_argument('--fps', type=float, default=25.0)
    p.add_argument('--size', default='320x256', help='WxH of the frames')
    p.add_argument('--force', action='store_true', help='regenerate even if cached')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        w, h = (int(v) for v in args.size.lower().split('x'))
    except ValueError:
        raise ValueError(f'--size must be WxH (e.g. 320x256), got {args.size!r}') from None
    for name, v, lo in (('num-clips', args.num_clips, 1), ('frames', args.frames, 3),
                        ('people', args.people, 1), ('size width', w, 64),
                        ('size height', h, 64)):
        if v < lo:
            raise ValueError(f'--{name} must be >= {lo}, got {v}')
    if not (math.isfinite(args.fps) and 0 < args.fps <= 240):
        raise ValueError(f'--fps must be in (0, 240], got {args.fps}')
    meta = dict(seed=args.seed, num_clips=args.num_clips, frames=args.frames,
                people=args.people, fps=args.fps, size=[w, h], version=GENERATOR_VERSION,
                images_version=ms.GENERATOR_VERSION)
    stamp = osp.join(args.out_dir, 'meta.json')
    if not args.force and osp.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == meta:
                print(f'make_synthetic_video: {args.out_dir} is up to date (meta.json matches)')
                return 0
    check_out_dir(args.out_dir)
    for c in range(args.num_clips):
        rng = np.random.default_rng([args.seed, 100, c])
        frames, per_frame = make_clip(rng, args.frames, args.people, w, h)
        name = f'clip_{c:03d}.mp4'
        write_video(osp.join(args.out_dir, name), frames, args.fps)
        coco = clip_json(name, per_frame, args.fps, w, h, c + 1)
        atomic_write(osp.join(args.out_dir, f'clip_{c:03d}.json'),
                     json.dumps(coco, sort_keys=True, separators=(',', ':')))
        n_ids = len({a['track_id'] for a in coco['annotations']})
        print(f'{name}: {args.frames} frames, {len(coco["annotations"])} poses, '
              f'{n_ids} identities')
    atomic_write(stamp, json.dumps(meta, sort_keys=True))
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except ValueError as e:
        sys.exit(f'make_synthetic_video.py: {e}')
