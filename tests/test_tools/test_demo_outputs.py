"""tools/demo.py's outputs: one result per input file (named after the full file name), no
output over an input, videos (Ctrl-C keeps the frames done, sizes the encoder refuses), the
pixel limit, one-line errors, one checkpoint-loading line, missing MMPose stack named."""
import json
import os
import os.path as osp
import sys

import pytest

from logocap_mm.testing import REPO_ROOT as ROOT
from logocap_mm.testing import load_tool
from logocap_rt.outputs import json_text
from logocap_rt.video import FrameSource

TINY_COCO = osp.join(ROOT, 'tests', 'configs', 'tiny_coco.py')
helpers = load_tool('tests/test_rt/helpers.py', 'rt_test_helpers')


@pytest.fixture(scope='module')
def demo():
    return load_tool('tools/demo.py', 'logocap_demo_outputs')


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory):
    """The tiny config's freshly initialised weights (+ dataset meta) as a checkpoint."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import logocap_mm  # noqa: F401
    from mmpose.registry import MODELS
    init_default_scope('mmpose')
    cfg = Config.fromfile(TINY_COCO)
    cfg.model.backbone.pop('init_cfg', None)
    sd = MODELS.build(cfg.model).state_dict()
    path = str(tmp_path_factory.mktemp('ckpt') / 'tiny.pth')
    torch.save({'state_dict': sd, 'meta': {}}, path)
    return path


def test_same_stem_keeps_both_results(demo, ckpt, tmp_path, capfd):
    folder = tmp_path / 'in'
    folder.mkdir()
    helpers.write_image(folder / 'a.jpg', 64, 96)
    helpers.write_image(folder / 'a.png', 80, 48, seed=1)
    out = tmp_path / 'out'
    results = demo.main([TINY_COCO, ckpt, str(folder), '--out-dir', str(out), '--no-flip'])
    assert [osp.basename(p) for p, _ in results] == ['a.jpg', 'a.png']
    assert sorted(os.listdir(out / 'predictions')) == ['a.jpg.json', 'a.png.json']
    assert sorted(os.listdir(out / 'vis')) == ['a.jpg', 'a.png']
    import cv2
    assert cv2.imread(str(out / 'vis' / 'a.png')).shape == (80, 48, 3)
    for path, preds in results:
        with open(out / 'predictions' / (osp.basename(path) + '.json')) as f:
            assert json.load(f) == json.loads(json_text(preds))
    # the checkpoint-loading line is printed once
    got = capfd.readouterr()
    assert (got.out + got.err).count('Loads checkpoint by') == 1


def test_input_in_the_vis_folder_is_never_overwritten(demo, ckpt, tmp_path, capsys):
    vis = tmp_path / 'out' / 'vis'
    vis.mkdir(parents=True)
    img = helpers.write_image(vis / 'photo.jpg')
    clip = helpers.write_video(vis / 'clip.mp4')
    before = {p: open(p, 'rb').read() for p in (img, clip)}
    for src in (img, clip):
        assert demo.run([TINY_COCO, ckpt, src, '--out-dir', str(tmp_path / 'out')]) == 2
        err = capsys.readouterr().err
        assert f'output {src} is the input' in err and len(err.splitlines()) == 1
    assert {p: open(p, 'rb').read() for p in before} == before
    assert not osp.exists(tmp_path / 'out' / 'predictions')


def test_bad_out_dir_is_one_line(demo, ckpt, tmp_path, capsys):
    img = helpers.write_image(tmp_path / 'a.jpg')
    (tmp_path / 'f').write_text('x')
    assert demo.run([TINY_COCO, ckpt, img, '--out-dir', str(tmp_path / 'f')]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f'demo.py: --out-dir {tmp_path / "f"} exists and is not a directory'
    assert demo.run([TINY_COCO, ckpt, img, '--out-dir', str(tmp_path / 'f' / 'sub')]) == 2
    assert 'is not a directory' in capsys.readouterr().err


def test_bomb_is_refused_and_the_rest_goes_on(demo, ckpt, tmp_path, capsys):
    folder = tmp_path / 'in'
    folder.mkdir()
    helpers.png_header_only(folder / 'a_bomb.png', 30000, 30000)
    helpers.write_image(folder / 'b_ok.jpg')
    out = tmp_path / 'out'
    assert demo.run([TINY_COCO, ckpt, str(folder), '--out-dir', str(out), '--no-flip']) == 1
    assert 'a_bomb.png: image' in capsys.readouterr().err
    assert os.listdir(out / 'predictions') == ['b_ok.jpg.json']


class _InterruptedSource(FrameSource):
    """Frames of a real file, then Ctrl-C after the third frame."""

    def __iter__(self):
        for i, frame in enumerate(super().__iter__()):
            if i == 3:
                raise KeyboardInterrupt
            yield frame


def test_video_ctrl_c_keeps_the_frames_done(demo, ckpt, tmp_path, capsys, monkeypatch):
    from logocap_rt import video
    clip = helpers.write_video(tmp_path / 'clip.mp4', n=6, size=(64, 48))
    out = tmp_path / 'out'
    monkeypatch.setattr(video, 'FrameSource', _InterruptedSource)
    assert demo.run([TINY_COCO, ckpt, clip, '--out-dir', str(out), '--no-flip']) == 130
    err = capsys.readouterr().err
    assert 'interrupted after 3 of 6 frame(s)' in err and 'Traceback' not in err
    with open(out / 'predictions' / 'clip.mp4.partial.json') as f:
        assert [fr['frame_id'] for fr in json.load(f)] == [0, 1, 2]
    assert helpers.count_frames(out / 'vis' / 'clip.partial.mp4') == 3
    assert not osp.exists(out / 'vis' / 'clip.mp4')


def test_video_and_a_size_the_encoder_refuses(demo, ckpt, tmp_path, capsys):
    clip = helpers.write_video(tmp_path / 'clip.mp4', n=3, size=(64, 48))
    out = tmp_path / 'out'
    (path, frames), = demo.main([TINY_COCO, ckpt, clip, '--out-dir', str(out), '--no-flip'])
    assert len(frames) == 3 and helpers.count_frames(out / 'vis' / 'clip.mp4') == 3
    with open(out / 'predictions' / 'clip.mp4.json') as f:
        assert len(json.load(f)) == 3
    # 1x1 frames (an MJPEG stream named .mp4): no drawn video, said so, exit 1
    tiny = helpers.write_video(tmp_path / 'tiny.avi', n=2, size=(1, 1), fourcc='MJPG')
    os.rename(tiny, tmp_path / 'tiny.mp4')
    assert demo.run([TINY_COCO, ckpt, str(tmp_path / 'tiny.mp4'), '--out-dir', str(out),
                     '--no-flip']) == 1
    captured = capsys.readouterr()
    assert 'refused frames of 1x1' in captured.err
    assert 'tiny.mp4' not in os.listdir(out / 'vis')
    assert osp.isfile(out / 'predictions' / 'tiny.mp4.json')


def test_missing_mmpose_names_the_extra(demo, ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, 'mmpose.apis', None)
    img = helpers.write_image(tmp_path / 'a.jpg')
    assert demo.run([TINY_COCO, ckpt, img, '--out-dir', str(tmp_path / 'o')]) == 2
    assert capsys.readouterr().err.strip() == (
        "demo.py: mmpose.apis is not installed (needed by tools/demo.py): "
        "pip install 'logocap-mm[mmpose,lite]'")


def test_video_track_smooth_and_max_frames(demo, ckpt, tmp_path, capsys, monkeypatch):
    """Tracking on top of the inferencer's predictions (replaced here by one person walking
    2 px per frame and a low-score pose, so that the ids are known)."""
    import numpy as np
    clip = helpers.write_video(tmp_path / 'clip.mp4', n=5, size=(64, 48))
    out = tmp_path / 'out'
    calls = []

    def fake_infer(inferencer, img, kpt_thr):
        calls.append(1)
        kp = np.random.default_rng(0).uniform(10, 30, (17, 2)) + [2 * len(calls), 0]
        person = dict(keypoints=kp.tolist(), keypoint_scores=[0.5] * 17, bbox_score=0.6)
        faint = dict(keypoints=(kp + 20).tolist(), keypoint_scores=[0.5] * 17,
                     bbox_score=0.01)
        return [person, faint], img
    monkeypatch.setattr(demo, 'infer', fake_infer)
    (path, frames), = demo.main([TINY_COCO, ckpt, clip, '--out-dir', str(out), '--no-flip',
                                 '--smooth', '--max-frames', '3'])
    assert len(frames) == 3 and helpers.count_frames(out / 'vis' / 'clip.mp4') == 3
    with open(out / 'predictions' / 'clip.mp4.json') as f:
        saved = json.load(f)
    assert [[i['track_id'] for i in fr['instances']] for fr in saved] == [[1, -1], [1, -1],
                                                                          [1, -1]]
    tracked = saved[2]['instances'][0]
    assert tracked['keypoints_raw'] != tracked['keypoints']  # smoothed: trails the motion
    assert '[3/3] 100%' in capsys.readouterr().err


class _FakeCamera:
    def __init__(self, index):
        assert index == 1
        self.n = 0

    def isOpened(self):
        return True

    def get(self, prop):
        import cv2
        return {cv2.CAP_PROP_FRAME_WIDTH: 64, cv2.CAP_PROP_FRAME_HEIGHT: 48}.get(prop, 0.0)

    def read(self):
        import numpy as np
        self.n += 1
        return True, np.full((48, 64, 3), 30 * self.n % 255, np.uint8)

    def release(self):
        pass


def test_camera_with_tracking(demo, ckpt, tmp_path, capsys, monkeypatch):
    import cv2
    monkeypatch.setattr(cv2, 'VideoCapture', _FakeCamera)
    out = tmp_path / 'out'
    (path, frames), = demo.main([TINY_COCO, ckpt, '--camera', '1', '--out-dir', str(out),
                                 '--no-flip', '--track', '--max-frames', '2'])
    assert path == '1' and len(frames) == 2
    with open(out / 'predictions' / 'camera1.json') as f:
        assert len(json.load(f)) == 2
    err = capsys.readouterr().err
    assert '2 frames' in err and 'frames/s' in err
    with pytest.raises(SystemExit):  # INPUT and --camera: one of them
        demo.parse_args([TINY_COCO, ckpt, 'x.mp4', '--camera', '0'])


class _BrokenSource(FrameSource):
    def __iter__(self):
        for i, frame in enumerate(super().__iter__()):
            if i == 1:
                raise RuntimeError('decoder lost the stream')
            yield frame


def test_video_error_is_a_failed_input_not_a_traceback(demo, ckpt, tmp_path, capsys,
                                                       monkeypatch):
    from logocap_rt import video
    clip = helpers.write_video(tmp_path / 'clip.mp4', n=3, size=(64, 48))
    monkeypatch.setattr(video, 'FrameSource', _BrokenSource)
    assert demo.run([TINY_COCO, ckpt, clip, '--out-dir', str(tmp_path / 'o'),
                     '--no-flip']) == 1
    err = capsys.readouterr().err
    assert 'RuntimeError: decoder lost the stream' in err and 'Traceback' not in err
    assert not [f for f in os.listdir(tmp_path / 'o' / 'vis')]  # no temporary file left
