"""Identities of poses across video frames (numpy + scipy only; no torch).

:class:`PoseTracker` links the poses of consecutive frames into tracks with stable integer
ids:

* **distance**: ``1 - OKS`` between each detection and each track's pose predicted for this
  frame (last pose + a per-keypoint constant-velocity step), keypoints with a score below
  ``kpt_thr`` left out, the track's keypoint-box area as the OKS scale (at least
  ``scene_area`` times the confirmed tracks' median);
* **assignment**: optimal (scipy's ``linear_sum_assignment``), pairs under ``min_oks``
  refused; then a second round for the poses left and the confirmed tracks lost for more
  than a frame, at the better of the predicted and the last seen pose, pairs under
  ``rematch_oks`` refused;
* **birth**: a new track gets the next integer id (1, 2, ...), kept until the track ends;
  with ``min_hits`` > 1 it is tentative (``track_id = -1`` in the output) until it has been
  matched in ``min_hits`` consecutive frames;
* **end**: a track not matched for more than ``max_age`` frames is dropped (a tentative one
  as soon as it misses a frame);
* **smoothing** (optional): each confirmed track's keypoints go through a One-Euro filter
  (:mod:`.smoothing`); a keypoint under ``kpt_thr`` is left as detected.

All settings live in :class:`TrackerConfig`. Frames: all coordinates are original-image
pixels (O), as the runtimes return them.
"""
import dataclasses
import math

import numpy as np

from .smoothing import check_one_euro, new_state, one_euro_step

# COCO keypoint sigmas (the OKS constants of the 17 COCO keypoints, COCO order)
COCO_SIGMAS = (0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
               0.107, 0.107, 0.087, 0.087, 0.089, 0.089)


@dataclasses.dataclass(frozen=True)
class TrackerConfig:
    """Every setting of the tracker and its smoothing.

    Attributes:
        min_oks (float): smallest OKS (0-1] at which a detection may continue a track.
        min_hits (int): consecutive matched frames before a track gets an id (>= 1).
        max_age (int): frames a confirmed track survives without a match (>= 0).
        kpt_thr (float): keypoints with a score below this are ignored (matching, smoothing).
        min_area (float): smallest OKS scale s^2, px^2: a person showing only a few keypoints
            (entering, leaving, occluded) is matched at least at this scale.
        support (float): the similarity of a detection and a track is their OKS times
            ``n / (n + support)``, n = the keypoints they share: a match on few keypoints
            counts less (>= 0).
        pose_thr (float): poses with a pose score below this are not tracked (id -1).
        scene_area (float): the OKS scale is at least this times the median area of the
            confirmed tracks (their largest keypoint boxes): a person entering the image
            with an arm in view is matched at about a person's size, not the arm's (0: off).
        rematch_oks (float): a second assignment round gives the poses left unmatched to
            the confirmed tracks lost for more than a frame, each scored at the better of
            its predicted and its last seen pose (a person who stopped or turned round out
            of sight), when their similarity is at least this (> 1: no second round).
        velocity (float): weight (0-1) of the newest displacement in each keypoint's velocity
            estimate (an exponential average); 0 turns motion prediction off.
        smooth (bool): One-Euro smoothing of the tracked keypoints.
        fps (float): frame rate used to turn frame numbers into seconds when the caller gives
            no time stamps.
        min_cutoff, beta, d_cutoff (float): the One-Euro parameters (Hz, per px/s, Hz).
        sigmas (tuple): per-keypoint OKS sigmas (COCO's by default).
    """
    min_oks: float = 0.25
    min_hits: int = 1
    max_age: int = 15
    kpt_thr: float = 0.05
    min_area: float = 1024.0
    support: float = 1.0
    pose_thr: float = 0.05
    velocity: float = 0.3
    scene_area: float = 1.0
    rematch_oks: float = 0.5
    smooth: bool = False
    fps: float = 25.0
    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0
    sigmas: tuple = COCO_SIGMAS

    def __post_init__(self):
        def bad(name, what):
            raise ValueError(f'TrackerConfig.{name} must be {what}, '
                             f'got {getattr(self, name)!r}')
        for name in ('min_oks', 'kpt_thr', 'min_area', 'support', 'pose_thr', 'velocity',
                     'fps', 'scene_area', 'rematch_oks'):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                bad(name, 'a finite number')
        if not 0 < self.min_oks <= 1:
            bad('min_oks', 'in (0, 1]')
        if not 0 <= self.velocity <= 1:
            bad('velocity', 'in [0, 1]')
        if self.fps <= 0:
            bad('fps', '> 0')
        if self.support < 0:
            bad('support', '>= 0')
        if self.scene_area < 0:
            bad('scene_area', '>= 0')
        if self.rematch_oks <= 0:
            bad('rematch_oks', '> 0')
        if self.min_area < 1:
            bad('min_area', '>= 1')
        for name, lo in (('min_hits', 1), ('max_age', 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                bad(name, f'an integer >= {lo}')
        check_one_euro(self.min_cutoff, self.beta, self.d_cutoff)
        s = np.asarray(self.sigmas, np.float64)
        if s.ndim != 1 or len(s) == 0 or not np.all(np.isfinite(s)) or np.any(s <= 0):
            bad('sigmas', 'a non-empty sequence of positive numbers')


def oks_matrix(det_kpts, det_valid, trk_kpts, trk_valid, area, sigmas):
    """Object keypoint similarity of every detection with every track (COCO's formula).

    Args:
        det_kpts (np.ndarray): (N, K, 2) detections, O pixels.
        det_valid (np.ndarray): (N, K) bool, keypoints that count.
        trk_kpts (np.ndarray): (M, K, 2) track poses (predicted for this frame), O pixels.
        trk_valid (np.ndarray): (M, K) bool.
        area (np.ndarray): the OKS scale s^2 of each pair, px^2, broadcastable to (N, M)
            (e.g. (M,) for the tracks' areas); values under 1 count as 1.
        sigmas (array-like): (K,) keypoint sigmas.

    Returns:
        np.ndarray: (N, M) OKS in [0, 1]: the mean of ``exp(-d^2 / (2 s^2 (2 sigma)^2))`` over
        the keypoints valid in both; 0 where they share none.
    """
    var = (2.0 * np.asarray(sigmas, np.float64)) ** 2  # (K,)
    d2 = ((det_kpts[:, None] - trk_kpts[None]) ** 2).sum(-1)  # (N, M, K)
    s2 = np.broadcast_to(np.maximum(np.asarray(area, np.float64), 1.0), d2.shape[:2])
    e = d2 / (2.0 * s2[..., None] * var)
    both = det_valid[:, None] & trk_valid[None]
    n = both.sum(-1)
    return np.where(n > 0, (np.exp(-e) * both).sum(-1) / np.maximum(n, 1), 0.0)


def keypoint_area(kpts, valid):
    """(M,) area of the box around each pose's valid keypoints, px^2 (0 if none)."""
    v = valid[..., None]
    wh = np.where(v, kpts, -np.inf).max(1) - np.where(v, kpts, np.inf).min(1)  # (M, 2)
    return np.where(valid.any(1), wh[:, 0] * wh[:, 1], 0.0)


class PoseTracker:
    """Online multi-person pose tracker (see the module docstring).

    Args:
        config (TrackerConfig | None): the settings; keyword overrides of its fields may be
            given instead of / on top of it (``PoseTracker(smooth=True)``).

    Use :meth:`update` once per frame, in order. The state of the M live tracks is held in
    stacked arrays (``(M, K, 2)`` poses and velocities, ``(M, K)`` last sightings, ...), so a
    frame costs a handful of numpy operations whatever the number of people.
    """

    def __init__(self, config=None, **overrides):
        config = config or TrackerConfig()
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        self.reset()

    def reset(self):
        """Forget every track; ids start again at 1."""
        k = len(self.config.sigmas)
        self.frame, self.next_id = -1, 1
        self._t = dict(kpts=np.zeros((0, k, 2)), vel=np.zeros((0, k, 2)),
                       valid=np.zeros((0, k), bool), seen=np.zeros((0, k), np.int64),
                       last=np.zeros(0, np.int64), hits=np.zeros(0, np.int64),
                       id=np.zeros(0, np.int64), area=np.zeros(0))
        self._f = new_state((0, k, 2))  # One-Euro state of every track

    @property
    def num_tracks(self):
        """Live tracks (confirmed or tentative)."""
        return len(self._t['last'])

    def _predict(self, f):
        """(M, K, 2) poses expected at frame ``f``: each keypoint moves from its last
        sighting with its track's mean (body) velocity, plus one step of its own deviation
        from it (a limb's swing is not extrapolated over a long gap)."""
        tr = self._t
        steps = (f - tr['seen'])[..., None].astype(np.float64)  # (M, K, 1)
        n = np.maximum(tr['valid'].sum(1), 1)[:, None]
        body = (tr['vel'] * tr['valid'][..., None]).sum(1) / n  # (M, 2)
        body = body[:, None]
        return tr['kpts'] + body * steps + (tr['vel'] - body) * np.minimum(steps, 1.0)

    def update(self, keypoints, keypoint_scores=None, pose_scores=None, t=None):
        """Track the poses of the next frame.

        Args:
            keypoints (array-like): (N, K, 2) poses of this frame, O pixels (N may be 0).
            keypoint_scores (array-like | None): (N, K); None = all keypoints count.
            pose_scores (array-like | None): (N,); None = all poses are tracked.
            t (float | None): time stamp in seconds (smoothing only); default
                ``frame / fps``.

        Returns:
            tuple: ``(track_ids, keypoints)``: (N,) int64 ids (-1: not tracked, i.e. a
            tentative track or a pose under ``pose_thr``) and (N, K, 2) float64 keypoints
            (smoothed for tracked poses when ``config.smooth``, else a copy of the input).
        """
        cfg, tr = self.config, self._t
        kpts, kscore, pscore = self._check(keypoints, keypoint_scores, pose_scores)
        self.frame += 1
        f = self.frame
        t = f / cfg.fps if t is None else float(t)
        if not math.isfinite(t):
            raise ValueError(f'time stamp t must be finite, got {t!r}')
        valid = kscore >= cfg.kpt_thr
        areas = keypoint_area(kpts, valid)
        use = np.flatnonzero((pscore >= cfg.pose_thr) & valid.any(1))
        det_i = trk_i = np.zeros(0, np.int64)
        if len(use) and self.num_tracks:
            pred = self._predict(f)
            # OKS scale: the largest keypoint box of the pair (the track's largest so far: a
            # person entering the image or coming out of occlusion shows only part of the
            # body), at least min_area and scene_area x the confirmed tracks' median
            floor = cfg.min_area
            conf = tr['id'] >= 0
            if cfg.scene_area > 0 and conf.any():
                floor = max(floor, cfg.scene_area * float(np.median(tr['area'][conf])))
            area = np.maximum(np.maximum(areas[use][:, None], tr['area'][None]), floor)
            sim = self._similarity(kpts[use], valid[use], pred, tr['valid'], area)
            from scipy.optimize import linear_sum_assignment
            rows, cols = linear_sum_assignment(1.0 - sim)
            ok = sim[rows, cols] >= cfg.min_oks
            rows, cols = rows[ok], cols[ok]
            # second round: the poses left against the confirmed tracks lost for more than a
            # frame, each at the better of its predicted and its last seen pose (a person who
            # stopped or turned round while out of sight), under the stricter rematch_oks
            lost = np.setdiff1d(np.flatnonzero((f - tr['last'] > 1) & (tr['id'] >= 0)), cols)
            left = np.setdiff1d(np.arange(len(use)), rows)
            if cfg.rematch_oks <= 1 and len(lost) and len(left):
                sub = np.ix_(left, lost)
                s2 = np.maximum(sim[sub], self._similarity(
                    kpts[use[left]], valid[use[left]], tr['kpts'][lost], tr['valid'][lost],
                    area[sub]))
                r2, c2 = linear_sum_assignment(1.0 - s2)
                ok = s2[r2, c2] >= cfg.rematch_oks
                rows = np.concatenate([rows, left[r2[ok]]])
                cols = np.concatenate([cols, lost[c2[ok]]])
            det_i, trk_i = use[rows], cols
        self._continue(det_i, trk_i, kpts, valid, areas, f)
        born = np.setdiff1d(use, det_i)
        trk_born = self._birth(born, kpts, valid, areas, f)
        # output: ids of confirmed tracks, smoothed poses
        d_all = np.concatenate([det_i, born])
        t_all = np.concatenate([trk_i, trk_born])
        ids = np.full(len(kpts), -1, np.int64)
        ids[d_all] = tr['id'][t_all]
        out = kpts.copy()
        if cfg.smooth:
            conf = tr['id'][t_all] >= 0
            d_s, t_s = d_all[conf], t_all[conf]
            if len(d_s):
                st = {k: v[t_s] for k, v in self._f.items()}
                out[d_s] = one_euro_step(st, kpts[d_s], t,
                                         np.repeat(valid[d_s][..., None], 2, -1),
                                         cfg.min_cutoff, cfg.beta, cfg.d_cutoff)
                for k, v in st.items():
                    self._f[k][t_s] = v
        # end of tracks: tentative ones that missed this frame, confirmed ones too old
        keep = (tr['last'] == f) | ((tr['id'] >= 0) & (f - tr['last'] <= cfg.max_age))
        if not keep.all():
            for k in tr:
                tr[k] = tr[k][keep]
            for k in self._f:
                self._f[k] = self._f[k][keep]
        return ids, out

    def _similarity(self, kd, vd, kt, vt, area):
        """(N, M) OKS of detections ``kd`` (N, K, 2) / ``vd`` (N, K) with track poses ``kt``
        (M, K, 2) / ``vt`` (M, K) at scale ``area`` (N, M), times ``n / (n + support)``, n
        the keypoints they share: a match on few keypoints weighs less (one ankle of a
        person entering the image must not take the track of the person it overlaps)."""
        oks = oks_matrix(kd, vd, kt, vt, area, self.config.sigmas)
        n = (vd[:, None] & vt[None]).sum(-1)
        return oks * n / np.maximum(n + self.config.support, 1e-9)

    def _continue(self, det_i, trk_i, kpts, valid, areas, f):
        """Matched detections ``det_i`` continue tracks ``trk_i``."""
        cfg, tr = self.config, self._t
        if not len(det_i):
            return
        kd, vd = kpts[det_i], valid[det_i]
        seen = tr['seen'][trk_i]
        both = (vd & tr['valid'][trk_i] & (seen >= 0))[..., None]
        step = np.maximum(f - seen, 1)[..., None]
        vel = tr['vel'][trk_i]
        w = cfg.velocity
        tr['vel'][trk_i] = np.where(both, w * (kd - tr['kpts'][trk_i]) / step + (1 - w) * vel,
                                    vel)
        tr['kpts'][trk_i] = np.where(vd[..., None], kd, tr['kpts'][trk_i])
        tr['valid'][trk_i] |= vd
        tr['seen'][trk_i] = np.where(vd, f, seen)
        tr['hits'][trk_i] = np.where(tr['last'][trk_i] == f - 1, tr['hits'][trk_i] + 1, 1)
        tr['last'][trk_i] = f
        tr['area'][trk_i] = np.maximum(tr['area'][trk_i], areas[det_i])
        self._confirm(trk_i)

    def _birth(self, born, kpts, valid, areas, f):
        """New (tentative) tracks for the unmatched detections ``born``; their rows."""
        tr = self._t
        m, n = self.num_tracks, len(born)
        if not n:
            return np.zeros(0, np.int64)
        k = kpts.shape[1]
        add = dict(kpts=kpts[born], vel=np.zeros((n, k, 2)), valid=valid[born].copy(),
                   seen=np.where(valid[born], f, -1), last=np.full(n, f),
                   hits=np.ones(n, np.int64), id=np.full(n, -1, np.int64), area=areas[born])
        for key, v in add.items():
            tr[key] = np.concatenate([tr[key], v.astype(tr[key].dtype)])
        for key, v in new_state((n, k, 2)).items():
            self._f[key] = np.concatenate([self._f[key], v])
        rows = np.arange(m, m + n)
        self._confirm(rows)
        return rows

    def _confirm(self, rows):
        """Give the next ids to the tentative tracks among ``rows`` with enough hits."""
        tr = self._t
        new = rows[(tr['id'][rows] < 0) & (tr['hits'][rows] >= self.config.min_hits)]
        tr['id'][new] = np.arange(self.next_id, self.next_id + len(new))
        self.next_id += len(new)

    def update_instances(self, instances, t=None):
        """:meth:`update` on MMPose-style instances (dicts with ``keypoints`` (K, 2),
        ``keypoint_scores`` (K,), optional ``bbox_score``), as the JSON outputs hold them.

        Returns new dicts with ``track_id`` (int, -1 = not tracked) and, when smoothing, the
        smoothed ``keypoints`` (the detected ones kept as ``keypoints_raw``).
        """
        k = len(self.config.sigmas)
        kp = np.asarray([i['keypoints'] for i in instances], np.float64).reshape(-1, k, 2)
        ks = np.asarray([i['keypoint_scores'] for i in instances],
                        np.float64).reshape(-1, k)
        ps = np.asarray([i.get('bbox_score', 1.0) for i in instances], np.float64)
        ids, out = self.update(kp, ks, ps, t=t)
        res = []
        for inst, tid, pts in zip(instances, ids, out):
            inst = dict(inst, track_id=int(tid))
            if self.config.smooth and tid >= 0:
                inst['keypoints_raw'] = inst['keypoints']
                inst['keypoints'] = pts.tolist()
            res.append(inst)
        return res

    def _check(self, keypoints, keypoint_scores, pose_scores):
        k = len(self.config.sigmas)
        kpts = np.asarray(keypoints, np.float64)
        if kpts.size == 0:
            kpts = kpts.reshape(0, k, 2)
        if kpts.ndim != 3 or kpts.shape[1:] != (k, 2):
            raise ValueError(f'keypoints must have shape (N, {k}, 2), got {kpts.shape}')
        n = len(kpts)
        ks = np.ones((n, k)) if keypoint_scores is None else np.asarray(keypoint_scores,
                                                                         np.float64)
        if ks.size == 0:
            ks = ks.reshape(0, k)
        ps = np.ones(n) if pose_scores is None else np.asarray(pose_scores,
                                                                np.float64).reshape(-1)
        if ks.shape != (n, k):
            raise ValueError(f'keypoint_scores must have shape ({n}, {k}), got {ks.shape}')
        if ps.shape != (n, ):
            raise ValueError(f'pose_scores must have shape ({n},), got {ps.shape}')
        for name, a in (('keypoints', kpts), ('keypoint_scores', ks), ('pose_scores', ps)):
            if not np.all(np.isfinite(a)):
                raise ValueError(f'{name} hold NaN or infinite values')
        return kpts, ks, ps
