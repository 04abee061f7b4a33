"""tools/make_synthetic_video.py (clips with ground-truth identities) and the tracker's known
answer on them: ground-truth poses with noise, 10% of them dropped and the rest shuffled
must come back with their identities (IDF1 >= 0.98)."""
import importlib.util
import json
import os.path as osp

import cv2
import numpy as np
import pytest

from logocap_rt import track_eval as te
from logocap_rt.tracking import PoseTracker

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load(rel):
    spec = importlib.util.spec_from_file_location(osp.basename(rel)[:-3], osp.join(ROOT, rel))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


msv = _load('tools/make_synthetic_video.py')


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('vid') / 'a')
    assert msv.main(['--out-dir', out, '--num-clips', '2', '--frames', '80', '--people', '5',
                     '--seed', '1']) == 0
    return out


def test_clip_files_and_annotations(clips, capsys):
    cap = cv2.VideoCapture(osp.join(clips, 'clip_000.mp4'))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 80
    with open(osp.join(clips, 'clip_000.json')) as f:
        coco = json.load(f)
    assert coco['videos'][0]['nframes'] == 80 and len(coco['images']) == 80
    by_track = {}
    for a in coco['annotations']:
        by_track.setdefault(a['track_id'], []).append(a)
        assert a['num_keypoints'] == sum(v > 0 for v in a['keypoints'][2::3]) > 0
        assert a['body_area'] >= a['area'] > 0
    assert 2 <= len(by_track) <= 5
    # people move: the labelled keypoints of most tracks travel > 30 px over the clip
    travel = []
    for anns in by_track.values():
        xs = [k[k[:, 2] > 0, 0].mean() for k in
              (np.reshape(a['keypoints'], (17, 3)) for a in anns)]
        travel.append(max(xs) - min(xs))
    assert np.mean(np.array(travel) > 30) > 0.5, travel
    # cached second run; same arguments -> same JSON bytes
    assert msv.main(['--out-dir', clips, '--num-clips', '2', '--frames', '80', '--people',
                     '5', '--seed', '1']) == 0
    assert 'up to date' in capsys.readouterr().out
    with pytest.raises(ValueError, match='--frames'):
        msv.main(['--out-dir', clips, '--frames', '1'])


def test_tracker_recovers_identities_from_noisy_ground_truth(clips):
    for c in range(2):
        gt = te.load_clip(osp.join(clips, f'clip_{c:03d}.json'))
        dets, kept = te.noisy_detections(gt, noise_px=2.0, drop=0.1, seed=c)
        tracker = PoseTracker(fps=gt['fps'])
        hyp = []
        for kpts, scores in dets:
            ids, out = tracker.update(kpts, scores)
            hyp.append((ids[ids >= 0], out[ids >= 0]))
        s, _ = te.mot_metrics(kept, hyp)
        assert s['idf1'] >= 0.98, (c, s)
        assert s['mota'] >= 0.95, (c, s)


def test_benchmark_tool_known_answers_and_speed(clips, tmp_path, capsys):
    vt = _load('tools/analysis/video_tracking.py')
    res = vt.main(['--clips', clips, '--out-dir', str(tmp_path / 'vt'), '--noise', '2',
                   '--speed-people', '5'])
    row = res['known_answers']['noise 2 px, drop 0.1']
    assert row['idf1'] >= 0.98 and row['gt_poses'] > 300
    # smoothing: jitter down by more than 30% with at most one frame of lag
    assert row['jitter_smooth'] < 0.7 * row['jitter_raw'] and 0 <= row['lag_smooth'] <= 1.0
    assert res['tracker_speed']['median_ms'] > 0
    out = capsys.readouterr().out
    assert '| noise 2 px, drop 0.1 |' in out and 'tracker + smoothing, 5 people' in out
    with open(tmp_path / 'vt' / 'results.json') as f:
        assert json.load(f)['known_answers'].keys() == res['known_answers'].keys()
    with pytest.raises(ValueError, match='--config and --checkpoint'):
        vt.main(['--clips', clips, '--config', 'x.py'])
