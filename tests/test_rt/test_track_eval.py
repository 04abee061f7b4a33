"""logocap_rt.track_eval: MOT scores, jitter and lag on hand-made tracks with known answers."""
import numpy as np
import pytest

from logocap_rt import track_eval as te

pytest.importorskip('motmetrics')


def _gt(n_frames=20, people=2, speed=3.0):
    """Two people walking apart; all keypoints labelled; body area 10000 px^2."""
    shape = np.random.default_rng(3).uniform(-50, 50, (17, 2))
    frames = []
    for f in range(n_frames):
        kp = np.stack([shape + [100 + 200 * p + speed * f * (1 - 2 * p), 200]
                       for p in range(people)])
        frames.append(dict(ids=np.arange(1, people + 1), kpts=kp,
                           vis=np.full((people, 17), 2), area=np.full(people, 1e4)))
    return dict(fps=25.0, video='x.mp4', frames=frames)


def test_perfect_and_swapped_tracks():
    gt = _gt()
    hyp = [(np.array([7, 9]), g['kpts']) for g in gt['frames']]
    s, matches = te.mot_metrics(gt, hyp)
    assert s['mota'] == 1.0 and s['idf1'] == 1.0 and s['id_switches'] == 0
    assert s['gt_poses'] == 40 and len(matches) == 40
    # ids exchanged from frame 10 on: 2 switches, IDF1 = 0.5 (each id right half the time)
    hyp = [(np.array([7, 9]) if f < 10 else np.array([9, 7]), g['kpts'])
           for f, g in enumerate(gt['frames'])]
    s, _ = te.mot_metrics(gt, hyp)
    assert s['id_switches'] == 2 and s['idf1'] == pytest.approx(0.5)
    assert s['switches_per_100'] == pytest.approx(5.0)
    # a pose far off (OKS < 0.5) is a miss plus a false positive, not a match
    hyp = [(np.array([7, 9]), g['kpts'] + [[[0.]], [[80.]]]) for g in gt['frames']]
    s, _ = te.mot_metrics(gt, hyp)
    assert s['misses'] == 20 and s['false_positives'] == 20
    with pytest.raises(ValueError, match='hypothesis frames'):
        te.mot_metrics(gt, hyp[:-1])


def test_jitter_and_lag_known_answers():
    gt = _gt(n_frames=40)
    # hypotheses = ground truth delayed by exactly 2 frames (frames 0-1 repeat frame 0)
    hyp = [(np.array([1, 2]), gt['frames'][max(f - 2, 0)]['kpts']) for f in range(40)]
    s, matches = te.mot_metrics(gt, hyp)
    r = te.jitter_and_lag(gt, hyp, matches)
    assert r['lag'] == pytest.approx(2.0)
    assert r['acc_gt'] == pytest.approx(0.0, abs=1e-9)
    # alternating +-1 px on x: second differences of 4 px
    hyp = [(np.array([1, 2]), g['kpts'] + [(-1) ** f, 0]) for f, g in enumerate(gt['frames'])]
    s, matches = te.mot_metrics(gt, hyp)
    r = te.jitter_and_lag(gt, hyp, matches)
    assert r['jitter'] == pytest.approx(4.0) and r['acc_hyp'] == pytest.approx(4.0)
    assert r['lag'] == pytest.approx(0.0)
    assert r['samples'] == 2 * 38 * 17


def test_noisy_detections_drop_and_shuffle():
    gt = _gt(n_frames=200, people=3)
    dets, kept = te.noisy_detections(gt, noise_px=2.0, drop=0.1, seed=0)
    n_all = sum(len(g['ids']) for g in gt['frames'])
    n_kept = sum(len(g['ids']) for g in kept['frames'])
    assert 0.85 < n_kept / n_all < 0.95
    err = np.concatenate([(k - g['kpts']).ravel() for (k, _), g in zip(dets, kept['frames'])])
    assert err.std() == pytest.approx(2.0, rel=0.05)
    orders = {tuple(g['ids']) for g in kept['frames'] if len(g['ids']) == 3}
    assert len(orders) > 1  # shuffled
