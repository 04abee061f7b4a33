"""Pose-tracking benchmark on synthetic clips with ground-truth identities.

    python tools/analysis/video_tracking.py --clips DIR [--out-dir DIR]
        [--config CFG --checkpoint CKPT [--levels none partial full] [--device cpu]]
        [--noise 2 5] [--drop 0.1] [--draw LEVEL] [--max-clips N] [--pose-thr 0.05]

``--clips``: a folder written by ``tools/make_synthetic_video.py`` (``clip_NNN.mp4`` +
``clip_NNN.json``). Two parts, each a markdown table (also in ``OUT/results.json``):

1. **known answers**: the tracker (``logocap_rt.PoseTracker``, default settings) fed the
   ground-truth poses with Gaussian noise of ``--noise`` px, ``--drop`` of them removed and
   the rest shuffled; scored against the ground truth of the poses fed;
2. **the model** (with ``--config/--checkpoint``): its poses on every frame of the clips at
   each adaptation level, tracked; scored against the whole ground truth. Predictions are
   cached in ``OUT/pred_LEVEL_clip_NNN.json``.

Scores: MOTA, IDF1, ID switches (py-motmetrics, OKS >= 0.5 matching), ID switches per 100
ground-truth track-frames, jitter (mean keypoint acceleration error against the ground truth,
px/frame^2) and lag (frames) of the raw and of the One-Euro-smoothed keypoints, and the
per-frame cost of the tracker (with smoothing) next to the model's; then the tracker's cost
with ``--speed-people`` (30) people in a frame. ``--draw LEVEL`` writes
the first clip tracked and smoothed at that level, drawn (``OUT/tracked_LEVEL.mp4``), and one
of its frames as a PNG.
"""
import argparse
import glob
import json
import os.path as osp
import sys
import time

import cv2
import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from logocap_rt import track_eval as te  # noqa: E402
from logocap_rt.outputs import atomic_write, check_out_dir, json_text  # noqa: E402
from logocap_rt.track_draw import draw_tracks  # noqa: E402
from logocap_rt.video import VideoSink  # noqa: E402
from logocap_rt.tracking import PoseTracker  # noqa: E402

LEVELS = ('none', 'partial', 'full')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--clips', required=True)
    p.add_argument('--out-dir', default='work_dirs/video_tracking')
    p.add_argument('--config')
    p.add_argument('--checkpoint')
    p.add_argument('--levels', nargs='+', choices=LEVELS, default=list(LEVELS))
    p.add_argument('--device', default='cpu')
    p.add_argument('--noise', nargs='*', type=float, default=[2.0, 5.0])
    p.add_argument('--drop', type=float, default=0.1)
    p.add_argument('--draw', choices=LEVELS, default=None)
    p.add_argument('--max-clips', type=int, default=None)
    p.add_argument('--speed-people', type=int, default=30,
                   help='people in the tracker speed test (0: skip it)')
    p.add_argument('--kpt-thr', type=float, default=0.05,
                   help="keypoints under this score are ignored by the tracker and not drawn")
    p.add_argument('--pose-thr', type=float, default=0.05,
                   help="the model's poses under this score are not tracked")
    return p.parse_args(argv)


def run_tracker(frames, fps, pose_thr=0.05, kpt_thr=0.05):
    """Track per-frame ``(kpts, kpt_scores, pose_scores)`` with smoothing on.

    Returns ``(raw, smooth, tracked, sec)``: hypotheses ``(ids, kpts)`` per frame with the
    detected and with the smoothed keypoints, per-frame lists of ``(id, smoothed (K, 2))``
    for drawing, and the tracker's seconds per frame."""
    tracker = PoseTracker(fps=fps, smooth=True, pose_thr=pose_thr, kpt_thr=kpt_thr)
    raw, smooth, tracked, t = [], [], [], 0.0
    for kpts, ks, ps in frames:
        t0 = time.perf_counter()
        ids, out = tracker.update(kpts, ks, ps)
        t += time.perf_counter() - t0
        m = ids >= 0
        raw.append((ids[m], np.asarray(kpts)[m]))
        smooth.append((ids[m], out[m]))
        tracked.append((ids, out))
    return raw, smooth, tracked, t / max(len(frames), 1)


def tracker_speed(people=30, frames=200, seed=0):
    """Median and mean seconds per frame of the tracker with smoothing on ``people``
    walkers (17 keypoints, noise 2 px, order shuffled every frame)."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 1000, (people, 1, 2)) + rng.uniform(-40, 40, (people, 17, 2))
    vel = rng.uniform(-3, 3, (people, 1, 2))
    tracker = PoseTracker(smooth=True)
    ts = []
    for f in range(frames):
        k = (base + vel * f + rng.normal(0, 2, base.shape))[rng.permutation(people)]
        t0 = time.perf_counter()
        tracker.update(k, np.ones((people, 17)), np.ones(people))
        ts.append(time.perf_counter() - t0)
    ts = np.asarray(ts[10:])
    return float(np.median(ts)), float(ts.mean())


def score(gts, raws, smooths):
    gt, raw = te.merge_clips(gts, raws)
    _, smooth = te.merge_clips(gts, smooths)
    s, matches = te.mot_metrics(gt, raw)
    jr = te.jitter_and_lag(gt, raw, matches)
    js = te.jitter_and_lag(gt, smooth, matches)
    s.update(jitter_raw=jr['jitter'], jitter_smooth=js['jitter'], acc_gt=jr['acc_gt'],
             lag_raw=jr['lag'], lag_smooth=js['lag'],
             jitter_drop=1.0 - js['jitter'] / jr['jitter'] if jr['jitter'] > 0 else 0.0)
    return s


def known_answers(gts, noises, drop):
    rows = {}
    for noise in noises:
        kept_all, raws, smooths, sec = [], [], [], []
        for c, gt in enumerate(gts):
            dets, kept = te.noisy_detections(gt, noise, drop, seed=c)
            frames = [(k, s, np.ones(len(k))) for k, s in dets]
            raw, smooth, _, t = run_tracker(frames, gt['fps'])
            kept_all.append(kept)
            raws.append(raw)
            smooths.append(smooth)
            sec.append(t)
        rows[f'noise {noise:g} px, drop {drop:g}'] = dict(score(kept_all, raws, smooths),
                                                         track_ms=1e3 * float(np.mean(sec)))
    return rows


def build_model(args, level):
    import logocap_mm  # noqa: F401  (registers the plugin)
    from mmengine.config import Config
    from mmpose.apis import init_model
    cfg = Config.fromfile(args.config)
    cfg.model.test_cfg.adaptation = level
    cfg.model.backbone.pop('init_cfg', None)
    return init_model(cfg, args.checkpoint, device=args.device)


def predict_video(model, path):
    """Per frame: (kpts (N, K, 2), kpt_scores (N, K), pose_scores (N,)); seconds/frame."""
    from mmpose.apis import inference_bottomup
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise ValueError(f'cannot open video {path}')
    frames, t = [], 0.0
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                break
            t0 = time.perf_counter()
            inst = inference_bottomup(model, img)[0].pred_instances
            t += time.perf_counter() - t0
            scores = inst.bbox_scores if 'bbox_scores' in inst else np.ones(len(inst))
            frames.append((np.asarray(inst.keypoints, np.float64),
                           np.asarray(inst.keypoint_scores, np.float64),
                           np.asarray(scores, np.float64).reshape(-1)))
    finally:
        cap.release()
    return frames, t / max(len(frames), 1)


def _cache_io(path, frames=None, sec=None):
    if frames is None:
        with open(path) as f:
            d = json.load(f)
        return [tuple(np.asarray(a, np.float64) for a in fr) for fr in d['frames']], d['sec']
    atomic_write(path, json.dumps(dict(sec=sec, frames=[[a.tolist() for a in fr]
                                                         for fr in frames])))


def model_rows(args, gts, names):
    rows, drawn = {}, None
    for level in args.levels:
        model = None
        raws, smooths, msec, tsec = [], [], [], []
        for c, (gt, name) in enumerate(zip(gts, names)):
            cache = osp.join(args.out_dir, f'pred_{level}_{osp.splitext(name)[0]}.json')
            if osp.exists(cache):
                frames, sec = _cache_io(cache)
            else:
                model = model or build_model(args, level)
                frames, sec = predict_video(model, osp.join(args.clips, gt['video']))
                _cache_io(cache, frames, sec)
            raw, smooth, tracked, t = run_tracker(frames, gt['fps'], args.pose_thr,
                                                  args.kpt_thr)
            raws.append(raw)
            smooths.append(smooth)
            msec.append(sec)
            tsec.append(t)
            if level == args.draw and c == 0:
                drawn = (level, gt, frames, tracked)
        rows[level] = dict(score(gts, raws, smooths), model_ms=1e3 * float(np.mean(msec)),
                           track_ms=1e3 * float(np.mean(tsec)))
        print(f'[video_tracking] {level}: done', flush=True)
    return rows, drawn


def draw_clip(args, level, gt, frames, tracked):
    from make_synthetic import SKELETON  # noqa: E402 (tools/ on sys.path)
    skel = [(a - 1, b - 1) for a, b in SKELETON]
    cap = cv2.VideoCapture(osp.join(args.clips, gt['video']))
    path = osp.join(args.out_dir, f'tracked_{level}.mp4')
    sink, best = VideoSink(path, gt['fps']), (-1, None)
    try:
        for (kpts, ks, ps), (ids, out) in zip(frames, tracked):
            ok, img = cap.read()
            if not ok:
                break
            inst = [dict(keypoints=k, keypoint_scores=s, track_id=int(i))
                    for k, s, i, p in zip(out, ks, ids, ps) if p >= args.pose_thr]
            vis = draw_tracks(img, inst, skel, args.kpt_thr)
            sink.write(vis)
            n = int((ids >= 0).sum())
            if n > best[0]:
                best = (n, vis)
    except BaseException:
        sink.abort()
        raise
    finally:
        cap.release()
    written = sink.finish()
    if written is None:
        raise ValueError(f'drawn clip {path} not written: {sink.error}')
    png = osp.join(args.out_dir, f'tracked_{level}.png')
    ok, buf = cv2.imencode('.png', best[1])
    if ok:
        atomic_write(png, buf.tobytes())
    return written, png


def table(rows, with_model):
    cols = ['MOTA', 'IDF1', 'ID sw.', 'ID sw./100', 'jitter raw', 'jitter 1€', 'jitter -%',
            'lag raw', 'lag 1€', 'track ms'] + (['model ms'] if with_model else [])
    lines = ['| run | ' + ' | '.join(cols) + ' |', '|---' * (len(cols) + 1) + '|']
    for name, r in rows.items():
        vals = [f'{r["mota"]:.3f}', f'{r["idf1"]:.3f}', str(r['id_switches']),
                f'{r["switches_per_100"]:.2f}', f'{r["jitter_raw"]:.2f}',
                f'{r["jitter_smooth"]:.2f}', f'{100 * r["jitter_drop"]:.0f}',
                f'{r["lag_raw"]:.1f}', f'{r["lag_smooth"]:.1f}', f'{r["track_ms"]:.2f}']
        if with_model:
            vals.append(f'{r["model_ms"]:.0f}')
        lines.append(f'| {name} | ' + ' | '.join(vals) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    jsons = sorted(glob.glob(osp.join(args.clips, 'clip_*.json')))[:args.max_clips]
    if not jsons:
        raise ValueError(f'no clip_*.json in {args.clips} (tools/make_synthetic_video.py)')
    if bool(args.config) != bool(args.checkpoint):
        raise ValueError('--config and --checkpoint go together')
    if not 0 <= args.drop < 1:
        raise ValueError(f'--drop must be in [0, 1), got {args.drop}')
    check_out_dir(args.out_dir)
    gts = [te.load_clip(j) for j in jsons]
    n_gt = sum(len(g['ids']) for gt in gts for g in gt['frames'])
    print(f'{len(gts)} clip(s), {sum(len(g["frames"]) for g in gts)} frames, {n_gt} '
          'ground-truth poses')
    results = dict(known_answers=known_answers(gts, args.noise, args.drop))
    print('\nKnown answers (ground truth + noise, dropped, shuffled):\n')
    print(table(results['known_answers'], False))
    if args.config:
        rows, drawn = model_rows(args, gts, [osp.basename(j) for j in jsons])
        results['model'] = rows
        print(f'\n{osp.basename(args.checkpoint)} on the clips:\n')
        print(table(rows, True))
        if drawn:
            print('drawn:', *draw_clip(args, *drawn))
    if args.speed_people > 0:
        med, mean = tracker_speed(args.speed_people)
        results['tracker_speed'] = dict(people=args.speed_people, median_ms=1e3 * med,
                                        mean_ms=1e3 * mean)
        print(f'\ntracker + smoothing, {args.speed_people} people: median {1e3 * med:.2f} ms '
              f'per frame (mean {1e3 * mean:.2f} ms)')
    atomic_write(osp.join(args.out_dir, 'results.json'), json_text(results))
    return results


if __name__ == '__main__':
    try:
        main()
    except ValueError as e:
        sys.exit(f'video_tracking.py: {e}')
