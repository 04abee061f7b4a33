"""logocap_rt.tracking: OKS, assignment, birth/end, stable ids, value checks, speed-free."""
import numpy as np
import pytest

from logocap_rt.tracking import COCO_SIGMAS, PoseTracker, TrackerConfig, oks_matrix


def _person(x, y, h=100.0, rng=None):
    """A (17, 2) pose: a fixed body shape of height ``h`` at ``(x, y)`` (the hips)."""
    shape = np.random.default_rng(7).uniform(-0.2, 0.2, (17, 2)) * [1, 3]
    return np.array([x, y]) + shape * h


def test_oks_matrix_known_values():
    det = np.zeros((2, 17, 2))
    det[1] += 10.0  # 10 px off along x and y
    trk = np.zeros((1, 17, 2))
    ok = np.ones((2, 17), bool)
    oks = oks_matrix(det, ok, trk, np.ones((1, 17), bool), np.array([400.0]), COCO_SIGMAS)
    var = (2 * np.asarray(COCO_SIGMAS)) ** 2
    expect = np.exp(-200.0 / (2 * 400.0 * var)).mean()
    assert oks.shape == (2, 1)
    assert oks[0, 0] == pytest.approx(1.0)
    assert oks[1, 0] == pytest.approx(expect, rel=1e-12)
    # only keypoints valid in both count; none in common -> 0
    half = np.zeros((2, 17), bool)
    half[:, :5] = True
    oks = oks_matrix(det, half, trk, ~half[:1], np.array([400.0]), COCO_SIGMAS)
    assert np.all(oks == 0)


def test_ids_follow_people_through_shuffles_and_drops():
    """Three people walking, detections shuffled every frame and one dropped now and then:
    each keeps one id; ids are 1, 2, 3 (birth after min_hits=2 frames)."""
    rng = np.random.default_rng(0)
    starts = np.array([[100., 300.], [300., 300.], [500., 320.]])
    vel = np.array([[4., 0.], [-1., 0.5], [-4., 0.]])
    tracker = PoseTracker(min_hits=2)
    truth_to_id = {}
    for f in range(60):
        poses = np.stack([_person(*(s + v * f)) for s, v in zip(starts, vel)])
        poses += rng.normal(0, 1.5, poses.shape)
        order = rng.permutation(3)
        if f > 5 and f % 7 == 0:
            order = order[1:]  # one person not detected in this frame
        ids, _ = tracker.update(poses[order], np.ones((len(order), 17)))
        if f == 0:
            assert np.all(ids == -1)  # tentative
            continue
        for p, i in zip(order, ids):
            assert i >= 1
            assert truth_to_id.setdefault(p, i) == i, f'frame {f}: person {p} changed id'
    assert sorted(truth_to_id.values()) == [1, 2, 3]


def test_crossing_people_keep_ids():
    """Two people crossing (opposite directions, same height in the image): the motion
    prediction keeps them apart where a nearest-pose match swaps them (velocity=0 does)."""
    tracker = PoseTracker()
    seen = {}
    for f in range(40):
        a, b = _person(200 + 7 * f, 300), _person(440 - 7 * f, 300)
        ids, _ = tracker.update(np.stack([a, b]))
        if f >= 1:
            assert seen.setdefault('a', ids[0]) == ids[0]
            assert seen.setdefault('b', ids[1]) == ids[1]
    assert seen['a'] != seen['b']


def test_track_survives_gap_then_ends_after_max_age():
    tracker = PoseTracker(max_age=5)
    p = _person(100, 200)
    for _ in range(3):
        ids, _ = tracker.update(p[None])
    first = ids[0]
    for _ in range(5):  # 5 frames without anybody: still alive
        tracker.update(np.zeros((0, 17, 2)))
    ids, _ = tracker.update(p[None])
    assert ids[0] == first
    for _ in range(6):  # 6 frames: ended
        tracker.update(np.zeros((0, 17, 2)))
    assert tracker.num_tracks == 0
    ids, _ = tracker.update(p[None])
    ids, _ = tracker.update(p[None])
    assert ids[0] == first + 1  # a new identity, never a reused one


def test_tentative_track_dies_on_first_miss_and_min_hits_1():
    tracker = PoseTracker(min_hits=3)
    p = _person(100, 200)
    tracker.update(p[None])
    tracker.update(p[None])
    tracker.update(np.zeros((0, 17, 2)))  # a tentative track misses: gone
    assert tracker.num_tracks == 0
    ids = [tracker.update(p[None])[0][0] for _ in range(3)]
    assert ids == [-1, -1, 1]
    tracker = PoseTracker(min_hits=1)
    assert tracker.update(np.stack([p, _person(400, 200)]))[0].tolist() == [1, 2]


def test_default_gives_ids_from_the_first_frame():
    ids, _ = PoseTracker().update(np.stack([_person(100, 200), _person(400, 200)]))
    assert ids.tolist() == [1, 2]


def test_person_entering_with_an_arm_in_view_keeps_one_id():
    """Noise 3 px; a third person enters showing only a compact arm (shoulder, elbow, wrist:
    a 15 x 18 px keypoint box) for 12 frames, then the whole body. Scored at the arm's
    size the noise breaks the track every few frames (new ids); at the size of the
    people already tracked (scene_area) the person keeps one id."""
    rng = np.random.default_rng(3)
    tracker = PoseTracker()
    arm = np.array([[0., 0.], [8., 10.], [15., 18.]])  # shoulder, elbow, wrist
    seen = set()
    for f in range(30):
        x = 600 - 3 * f
        c = _person(x, 300)
        c[[6, 8, 10]] = c[6] + arm
        ks = np.ones((3, 17))
        if f < 12:
            ks[2] = 0
            ks[2, [6, 8, 10]] = 1
        poses = np.stack([_person(100 + f, 300), _person(350, 300 - f), c])
        ids, _ = tracker.update(poses + rng.normal(0, 3, poses.shape), ks)
        seen.add(int(ids[2]))
    assert seen == {3}


def test_person_turning_round_out_of_sight_keeps_the_id():
    """A person walks right, is not detected for 10 frames (turns round behind something)
    and comes back where last seen, walking left: the constant-velocity prediction has
    moved on by 33 px, the second round at the last seen pose finds the person; another
    person appearing 150 px away gets a new id."""
    rng = np.random.default_rng(4)
    tracker = PoseTracker()
    for f in range(20):
        ids, _ = tracker.update(_person(100 + 3 * f, 300)[None] + rng.normal(0, 2, (1, 17, 2)))
    for f in range(20, 30):
        tracker.update(np.zeros((0, 17, 2)))
    for f in range(30, 40):
        poses = np.stack([_person(160 - 3 * (f - 30), 300), _person(310, 300)])
        ids2, _ = tracker.update(poses + rng.normal(0, 2, poses.shape))
        assert ids2.tolist() == [ids[0], ids[0] + 1]


def test_low_scores_not_tracked_and_far_pose_is_new_person():
    tracker = PoseTracker(min_hits=1, pose_thr=0.3, kpt_thr=0.2)
    p = _person(100, 200)
    ids, _ = tracker.update(np.stack([p, p + 300]), np.ones((2, 17)), np.array([0.9, 0.1]))
    assert ids.tolist() == [1, -1]
    ks = np.full((1, 17), 0.1)  # every keypoint under kpt_thr: not tracked
    assert tracker.update(p[None], ks)[0].tolist() == [-1]
    ids, _ = tracker.update(np.stack([p, p + 400]))  # far away: a second person
    assert ids.tolist() == [1, 2]


def test_smoothing_output_and_raw_kept():
    tracker = PoseTracker(smooth=True, min_hits=1)
    rng = np.random.default_rng(1)
    p = _person(100, 200)
    outs = []
    for f in range(30):
        noisy = p + rng.normal(0, 3, p.shape)
        ids, out = tracker.update(noisy[None])
        outs.append(out[0])
        if f == 0:
            np.testing.assert_array_equal(out[0], noisy)  # first sample passes through
    outs = np.stack(outs)
    assert np.abs(outs[10:] - p).mean() < 0.6 * 3 * np.sqrt(2 / np.pi)  # less noise
    inst = [dict(keypoints=p.tolist(), keypoint_scores=[0.9] * 17, bbox_score=0.8)]
    res = tracker.update_instances(inst)
    assert res[0]['track_id'] == 1
    assert res[0]['keypoints_raw'] == p.tolist() and res[0]['keypoints'] != p.tolist()
    assert 'track_id' not in inst[0]  # the input is not changed


@pytest.mark.parametrize('field,value', [
    ('min_oks', 0.0), ('min_oks', 1.5), ('min_hits', 0), ('max_age', -1), ('fps', 0.0),
    ('min_area', 0.5), ('velocity', 2.0), ('kpt_thr', float('nan')), ('min_cutoff', 0.0),
    ('beta', -1.0), ('sigmas', ()), ('min_hits', 2.5), ('scene_area', -1.0),
    ('rematch_oks', 0.0), ('scene_area', float('inf'))])
def test_config_refuses_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        TrackerConfig(**{field: value})


def test_update_refuses_bad_input():
    tracker = PoseTracker()
    with pytest.raises(ValueError, match='keypoints must have shape'):
        tracker.update(np.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match='keypoint_scores'):
        tracker.update(np.zeros((2, 17, 2)), np.ones((3, 17)))
    with pytest.raises(ValueError, match='NaN'):
        tracker.update(np.full((1, 17, 2), np.nan))
    ids, out = tracker.update([])  # an empty frame is normal
    assert ids.shape == (0, ) and out.shape == (0, 17, 2)


def test_tracking_imports_no_torch():
    import subprocess
    import sys
    code = ('import sys, logocap_rt.tracking, logocap_rt.smoothing, logocap_rt.track_eval; '
            'bad = [m for m in ("torch", "mmpose", "mmengine", "mmcv") if m in sys.modules]; '
            'assert not bad, bad')
    import os.path as osp
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    r = subprocess.run([sys.executable, '-c', code], cwd=root, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
