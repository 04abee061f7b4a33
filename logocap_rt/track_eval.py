"""Scoring pose tracks against ground-truth identities (numpy; py-motmetrics for MOT).

Ground truth: a clip's COCO-style JSON with a ``track_id`` per annotation (as written by
``tools/make_synthetic_video.py``, PoseTrack-like). Hypotheses: per frame, the tracked poses
(``track_id >= 0``) with their keypoints.

* :func:`mot_metrics`: MOTA, IDF1, ID switches (py-motmetrics' CLEAR-MOT and identity
  metrics) with COCO's OKS as the similarity: a hypothesis may match a ground-truth person
  when OKS >= 0.5 (distance ``1 - OKS``, its labelled keypoints v > 0). The OKS scale is
  the whole person's size (``body_area``: the box of all 17 keypoints, in view or not)
  rather than COCO's visible-mask area, with which a person showing one hand or one
  shoulder could hardly be matched;
* :func:`jitter_and_lag`: on the matched pairs, the mean keypoint acceleration (second
  difference, px/frame^2) of the hypotheses, of the ground truth and of their difference
  (the jitter), and the lag: the time shift (frames) of the ground truth that best fits the
  hypotheses' trajectories.

Frames: O pixels throughout.
"""
import json

import numpy as np

from .tracking import COCO_SIGMAS, oks_matrix

MATCH_OKS = 0.5


def load_clip(path):
    """A clip's ground truth: a dict with ``fps``, ``video`` (file name), ``size`` (w, h),
    ``frames``: one
    dict per frame, ``ids`` (G,) int, ``kpts`` (G, 17, 2), ``vis`` (G, 17) int (COCO v),
    ``area`` (G,) float (``body_area``; COCO's ``area`` where the file has none)."""
    with open(path) as f:
        coco = json.load(f)
    vid = coco['videos'][0]
    order = sorted(coco['images'], key=lambda im: im['frame_id'])
    index = {im['id']: t for t, im in enumerate(order)}
    per = [[] for _ in order]
    for a in coco['annotations']:
        if a.get('iscrowd', 0) or a.get('num_keypoints', 0) == 0:
            continue
        per[index[a['image_id']]].append(a)
    frames = []
    for anns in per:
        kp = np.asarray([a['keypoints'] for a in anns], np.float64).reshape(-1, 17, 3)
        frames.append(dict(ids=np.asarray([a['track_id'] for a in anns], np.int64),
                           kpts=kp[..., :2], vis=kp[..., 2].astype(np.int64),
                           area=np.asarray([a.get('body_area', a['area']) for a in anns],
                                             np.float64)))
    return dict(fps=float(vid['fps']), video=vid['file_name'], frames=frames,
                size=(int(vid['width']), int(vid['height'])))


def gt_oks(gt_frame, kpts):
    """(G, H) COCO OKS of every ground-truth person with every hypothesis pose ``kpts``
    (H, 17, 2): the ground truth's labelled keypoints and area as scale."""
    h = np.asarray(kpts, np.float64).reshape(-1, 17, 2)
    g = gt_frame
    return oks_matrix(g['kpts'], g['vis'] > 0, h, np.ones(h.shape[:2], bool),
                      g['area'][:, None], COCO_SIGMAS)


def noisy_detections(gt, noise_px=2.0, drop=0.1, seed=0, min_kpts=3):
    """Detections made from the ground truth: Gaussian noise of ``noise_px`` on every
    coordinate, a ``drop`` fraction of the poses removed at random, the rest shuffled.
    Poses with fewer than ``min_kpts`` labelled keypoints (a foot or a hand at the image
    border, a person almost hidden) are not given: a detector does not find a person
    from one ankle.

    Returns ``(frames, kept_gt)``: per frame ``(kpts (N, 17, 2), kpt_scores (N, 17))`` (score
    1 for labelled keypoints, 0 for the others), and the ground truth restricted to the
    poses kept (same structure as ``gt``).
    """
    rng = np.random.default_rng(seed)
    dets, kept = [], []
    for g in gt['frames']:
        keep = np.flatnonzero((rng.random(len(g['ids'])) >= drop)
                              & ((g['vis'] > 0).sum(1) >= min_kpts))
        keep = keep[rng.permutation(len(keep))]
        k = g['kpts'][keep] + rng.normal(0, noise_px, g['kpts'][keep].shape)
        dets.append((k, (g['vis'][keep] > 0).astype(np.float64)))
        kept.append({name: v[keep] for name, v in g.items()})
    return dets, dict(gt, frames=kept)


def _accumulate(gt, hyp):
    import motmetrics as mm
    acc = mm.MOTAccumulator(auto_id=True)
    for g, (ids, kpts) in zip(gt['frames'], hyp):
        oks = gt_oks(g, kpts) if len(ids) else np.zeros((len(g['ids']), 0))
        dist = np.where(oks >= MATCH_OKS, 1.0 - oks, np.nan)
        acc.update(g['ids'].tolist(), np.asarray(ids).tolist(), dist)
    return acc


def mot_metrics(gt, hyp):
    """MOT scores of the hypotheses ``hyp`` (per frame ``(track_ids (H,), kpts (H, 17, 2))``,
    tracked poses only) against ``gt`` (:func:`load_clip`).

    Returns:
        tuple: ``(scores, matches)``: scores is a dict with ``mota``, ``idf1``,
        ``id_switches``, ``gt_poses`` (track-frames), ``switches_per_100`` (ID switches per
        100 ground-truth track-frames), ``misses``, ``false_positives``; matches lists
        ``(frame, gt_id, hyp_id)`` of the matched pairs.
    """
    if len(hyp) != len(gt['frames']):
        raise ValueError(f'{len(hyp)} hypothesis frames for {len(gt["frames"])} ground-truth '
                         'frames')
    import motmetrics as mm
    acc = _accumulate(gt, hyp)
    mh = mm.metrics.create()
    s = mh.compute(acc, metrics=['mota', 'idf1', 'num_switches', 'num_objects', 'num_misses',
                                 'num_false_positives'], name='clip')
    row = s.loc['clip']
    n = int(row['num_objects'])
    ev = acc.mot_events
    m = ev[ev['Type'].isin(['MATCH', 'SWITCH'])]
    frames = m.index.get_level_values('FrameId').to_numpy()
    matches = list(zip(frames.tolist(), m['OId'].astype(int).tolist(),
                       m['HId'].astype(int).tolist()))
    scores = dict(mota=float(row['mota']), idf1=float(row['idf1']),
                  id_switches=int(row['num_switches']), gt_poses=n,
                  switches_per_100=100.0 * int(row['num_switches']) / max(n, 1),
                  misses=int(row['num_misses']),
                  false_positives=int(row['num_false_positives']))
    return scores, matches


def _segments(gt, hyp, matches):
    """Runs of consecutive frames in which one ground-truth person stays matched to one
    hypothesis: list of ``(P (T, 17, 2), G (T, 17, 2), V (T, 17) bool)``."""
    pairs = {}
    for f, g, h in matches:
        pairs.setdefault((g, h), []).append(f)
    out = []
    for (g, h), fr in pairs.items():
        fr = sorted(fr)
        cuts = np.flatnonzero(np.diff(fr) != 1) + 1
        for run in np.split(np.asarray(fr), cuts):
            if len(run) < 3:
                continue
            P, G, V = [], [], []
            for f in run:
                gf = gt['frames'][f]
                gi = int(np.flatnonzero(gf['ids'] == g)[0])
                hi = int(np.flatnonzero(np.asarray(hyp[f][0]) == h)[0])
                P.append(np.asarray(hyp[f][1], np.float64)[hi])
                G.append(gf['kpts'][gi])
                V.append(gf['vis'][gi] > 0)
            out.append((np.stack(P), np.stack(G), np.stack(V)))
    return out


def jitter_and_lag(gt, hyp, matches, max_lag=4.0, step=0.1):
    """Acceleration and lag of matched trajectories.

    Returns a dict: ``acc_hyp``, ``acc_gt`` (mean keypoint acceleration norms, px/frame^2),
    ``jitter`` (mean norm of their difference), ``lag`` (frames: the shift ``tau`` in
    ``[-max_lag, max_lag]`` minimising the mean squared distance between the hypothesis at
    ``t`` and the ground truth at ``t - tau``, linearly interpolated), ``samples`` (the
    number of acceleration samples).
    """
    segs = _segments(gt, hyp, matches)
    a_h, a_g, a_d = [], [], []
    for P, G, V in segs:
        ok = V[2:] & V[1:-1] & V[:-2]
        ah = P[2:] - 2 * P[1:-1] + P[:-2]
        ag = G[2:] - 2 * G[1:-1] + G[:-2]
        a_h.append(np.linalg.norm(ah, axis=-1)[ok])
        a_g.append(np.linalg.norm(ag, axis=-1)[ok])
        a_d.append(np.linalg.norm(ah - ag, axis=-1)[ok])
    cat = (lambda xs: np.concatenate(xs) if xs else np.zeros(0))  # noqa: E731
    a_h, a_g, a_d = cat(a_h), cat(a_g), cat(a_d)
    taus = np.arange(-max_lag, max_lag + step / 2, step)
    err = np.zeros(len(taus))
    cnt = np.zeros(len(taus))
    for P, G, V in segs:
        T = len(P)
        t = np.arange(T)
        for j, tau in enumerate(taus):
            src = t - tau
            i0 = np.floor(src).astype(int)
            fr = src - i0
            ok = (i0 >= 0) & (i0 + 1 < T)
            if not ok.any():
                continue
            tt, i0, fr = t[ok], i0[ok], fr[ok][:, None, None]
            g = (1 - fr) * G[i0] + fr * G[i0 + 1]
            v = V[tt] & V[i0] & V[i0 + 1]
            d2 = ((P[tt] - g) ** 2).sum(-1)
            err[j] += d2[v].sum()
            cnt[j] += v.sum()
    mse = np.where(cnt > 0, err / np.maximum(cnt, 1), np.inf)
    nan = float('nan')
    return dict(acc_hyp=float(a_h.mean()) if len(a_h) else nan,
                acc_gt=float(a_g.mean()) if len(a_g) else nan,
                jitter=float(a_d.mean()) if len(a_d) else nan,
                lag=float(taus[int(np.argmin(mse))]) if np.isfinite(mse).any() else nan,
                samples=int(len(a_d)))


def merge_clips(gts, hyps, stride=100000):
    """One ground truth and one hypothesis sequence from several clips (frames one after
    the other; clip c's ground-truth and track ids offset by ``c * stride``, so no identity
    spans two clips). Score the result with :func:`mot_metrics` and :func:`jitter_and_lag`.
    """
    frames, hyp = [], []
    for c, (gt, h) in enumerate(zip(gts, hyps)):
        if len(h) != len(gt['frames']):
            raise ValueError(f'clip {c}: {len(h)} hypothesis frames for '
                             f'{len(gt["frames"])} ground-truth frames')
        frames += [dict(g, ids=g['ids'] + c * stride) for g in gt['frames']]
        hyp += [(np.asarray(ids) + c * stride, k) for ids, k in h]
    return dict(fps=gts[0]['fps'] if gts else 25.0, video=None, frames=frames), hyp
