"""The tools' video options on the ONNX runtime's CLI (tiny ONNX file: one fixed pose per
frame): --track / --smooth (track_id in the JSON, drawings by id), --max-frames, a fake
camera through --camera (cv2.VideoCapture replaced), frames per second for streams,
Ctrl-C with tracking, refused values."""
import json
import types

import numpy as np
import pytest

from logocap_rt import cli, video
from logocap_rt.video_track import VideoOptions

from .helpers import count_frames, write_video


def test_track_smooth_and_max_frames_on_a_clip(tiny_onnx, tmp_path, capsys):
    clip = write_video(tmp_path / 'clip.mp4', n=8, size=(64, 48))
    out = tmp_path / 'out'
    assert cli.run([tiny_onnx, clip, '--out-dir', str(out), '--smooth',
                    '--max-frames', '5']) == 0
    frames = json.loads((out / 'clip.mp4.json').read_text())
    assert [f['frame_id'] for f in frames] == [0, 1, 2, 3, 4]
    ids = [[i['track_id'] for i in f['instances']] for f in frames]
    assert ids == [[1], [1], [1], [1], [1]]  # an id from frame 0 on, the same one
    for f in (0, 3):  # the filter passes the first sample through; a still pose stays
        tracked = frames[f]['instances'][0]
        np.testing.assert_allclose(tracked['keypoints'], tracked['keypoints_raw'])
    assert count_frames(out / 'clip.mp4') == 5
    err = capsys.readouterr().err
    assert '[5/5] 100%' in err  # a file: progress line with the (limited) frame count


def test_without_track_there_is_no_track_id(tiny_onnx, tmp_path):
    clip = write_video(tmp_path / 'clip.mp4', n=3, size=(64, 48))
    assert cli.run([tiny_onnx, clip, '--out-dir', str(tmp_path / 'o'), '--no-draw']) == 0
    frames = json.loads((tmp_path / 'o' / 'clip.mp4.json').read_text())
    assert all('track_id' not in i for f in frames for i in f['instances'])


class _FakeCapture:
    """Stands for cv2.VideoCapture(0): an endless camera of 64x48 frames, no frame count,
    no frame rate."""
    opened = []

    def __init__(self, index):
        self.index, self.n = index, 0
        _FakeCapture.opened.append(index)

    def isOpened(self):
        return True

    def get(self, prop):
        import cv2
        return {cv2.CAP_PROP_FRAME_WIDTH: 64, cv2.CAP_PROP_FRAME_HEIGHT: 48}.get(prop, 0.0)

    def read(self):
        self.n += 1
        return True, np.full((48, 64, 3), self.n % 255, np.uint8)

    def release(self):
        pass


def test_fake_camera_with_tracking(tiny_onnx, tmp_path, capsys, monkeypatch):
    import cv2
    monkeypatch.setattr(cv2, 'VideoCapture', _FakeCapture)
    out = tmp_path / 'out'
    assert cli.run([tiny_onnx, '--camera', '0', '--out-dir', str(out), '--track',
                    '--max-frames', '4']) == 0
    assert _FakeCapture.opened[-1] == 0  # opened as a device index
    frames = json.loads((out / 'camera0.json').read_text())
    assert [[i['track_id'] for i in f['instances']] for f in frames] == [[1], [1], [1], [1]]
    err = capsys.readouterr().err
    assert '4 frames' in err and 'frames/s' in err and '%' not in err  # a stream: fps only


class _InterruptedSource(video.FrameSource):
    def __iter__(self):
        for i, frame in enumerate(super().__iter__()):
            if i == 3:
                raise KeyboardInterrupt
            yield frame


def test_ctrl_c_with_tracking_keeps_the_tracked_frames(tiny_onnx, tmp_path, capsys,
                                                       monkeypatch):
    clip = write_video(tmp_path / 'clip.mp4', n=8, size=(64, 48))
    monkeypatch.setattr(video, 'FrameSource', _InterruptedSource)
    out = tmp_path / 'out'
    assert cli.run([tiny_onnx, clip, '--out-dir', str(out), '--track']) == 130
    frames = json.loads((out / 'clip.mp4.partial.json').read_text())
    assert [[i['track_id'] for i in f['instances']] for f in frames] == [[1], [1], [1]]
    assert count_frames(out / 'clip.partial.mp4') == 3


@pytest.mark.parametrize('argv,msg', [(['--camera', '-1'], '--camera'),
                                      (['--max-frames', '0'], '--max-frames')])
def test_refused_values(tiny_onnx, tmp_path, capsys, argv, msg):
    clip = write_video(tmp_path / 'clip.mp4', n=2, size=(64, 48))
    assert cli.run([tiny_onnx, clip, '--out-dir', str(tmp_path / 'o')] + argv) == 2
    assert msg in capsys.readouterr().err


def test_live_sources_get_increasing_real_time_stamps():
    args = types.SimpleNamespace(track=True, smooth=True, max_frames=None, pose_thr=0.05,
                                 kpt_thr=0.05)
    opts = VideoOptions(args, '0', sigmas=[0.1, 0.1], stream=None)
    inst = [dict(keypoints=[[1.0, 1.0], [5.0, 5.0]], keypoint_scores=[0.9, 0.9],
                 bbox_score=0.9)]
    for _ in range(3):
        res = opts.track(inst)
    assert res[0]['track_id'] == 1 and opts.tracker.config.sigmas == (0.1, 0.1)
    assert opts._last_t > 0
