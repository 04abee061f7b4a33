"""``python -m logocap_rt`` (tools/deploy/onnx_infer.py) end to end on a tiny ONNX file:
output naming, outputs never over inputs or non-regular files, per-input failures skipped,
the pixel limit, videos (Ctrl-C, sizes the encoder refuses), one-line errors."""
import json
import os
import os.path as osp
import sys

import pytest

from logocap_rt import cli, video

from .helpers import count_frames, png_header_only, write_image, write_video


def test_same_stem_keeps_both_results(tiny_onnx, tmp_path, capsys):
    folder = tmp_path / 'in'
    folder.mkdir()
    write_image(folder / 'a.jpg')
    write_image(folder / 'a.png', 30, 50)
    out = tmp_path / 'out'
    assert cli.run([tiny_onnx, str(folder), '--out-dir', str(out)]) == 0
    assert sorted(os.listdir(out)) == ['a.jpg', 'a.jpg.json', 'a.png', 'a.png.json']
    import cv2
    assert cv2.imread(str(out / 'a.png')).shape == (30, 50, 3)  # drawn in the input format
    for name in ('a.jpg', 'a.png'):
        (inst,) = json.loads((out / f'{name}.json').read_text())
        assert inst['bbox_score'] == pytest.approx(0.9)
    assert oct(os.stat(out / 'a.jpg.json').st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_same_name_in_two_folders_is_refused_up_front(tiny_onnx, tmp_path, capsys):
    for d in ('x', 'y'):
        (tmp_path / d).mkdir()
        write_image(tmp_path / d / 'a.jpg')
    assert cli.run([tiny_onnx, str(tmp_path / 'x'), str(tmp_path / 'y'),
                    '--out-dir', str(tmp_path / 'out')]) == 2
    err = capsys.readouterr().err
    assert 'would write the same outputs (a.jpg)' in err and len(err.splitlines()) == 1
    assert not os.listdir(tmp_path / 'out')


def test_output_over_input_or_non_regular_file_is_refused(tiny_onnx, tmp_path, capsys):
    out = tmp_path / 'out'
    out.mkdir()
    img = write_image(out / 'a.jpg')  # the drawing would be out/a.jpg: the input
    before = open(img, 'rb').read()
    assert cli.run([tiny_onnx, img, '--out-dir', str(out)]) == 2
    assert 'is the input' in capsys.readouterr().err
    assert open(img, 'rb').read() == before
    src = write_image(tmp_path / 'b.jpg')
    os.mkfifo(out / 'b.jpg.json')
    assert cli.run([tiny_onnx, src, '--out-dir', str(out), '--no-draw']) == 2
    assert 'not a regular file' in capsys.readouterr().err
    assert not osp.isfile(out / 'b.jpg.json')


@pytest.mark.parametrize('workers', [1, 2])
def test_every_per_image_failure_is_skipped(tiny_onnx, tmp_path, capsys, workers):
    """An image OpenCV refuses with cv2.error (over its own 2^30-pixel cap), a truncated one,
    then a good one: the good one is processed, the failures are summarised, exit 1 (also
    with images processed in two threads)."""
    folder = tmp_path / 'in'
    folder.mkdir()
    png_header_only(folder / 'a_huge.png', 40000, 30000)
    (folder / 'b_cut.jpg').write_bytes(open(write_image(tmp_path / 'g.jpg'), 'rb').read()[:200])
    write_image(folder / 'c_good.jpg')
    out = tmp_path / 'out'
    assert cli.main([tiny_onnx, str(folder), '--out-dir', str(out), '--max-pixels', '0',
                     '--workers', str(workers)]) == 1
    assert sorted(os.listdir(out)) == ['c_good.jpg', 'c_good.jpg.json']
    err = capsys.readouterr().err
    assert '2 of 3 input(s) failed' in err
    assert 'a_huge.png: image' in err and 'cannot be decoded (OpenCV' in err
    assert 'b_cut.jpg: image' in err and 'Traceback' not in err


def test_failures_of_any_type_are_skipped(tiny_onnx, tmp_path, capsys, monkeypatch):
    """Not only ValueErrors: e.g. running out of memory on one image."""
    real = cli.read_image

    def reader(path, limit=None):
        if 'a_big' in path:
            raise MemoryError('cannot allocate 8 GiB')
        return real(path, limit)
    monkeypatch.setattr(cli, 'read_image', reader)
    folder = tmp_path / 'in'
    folder.mkdir()
    write_image(folder / 'a_big.jpg')
    write_image(folder / 'b_good.jpg')
    assert cli.run([tiny_onnx, str(folder), '--out-dir', str(tmp_path / 'o')]) == 1
    assert osp.isfile(tmp_path / 'o' / 'b_good.jpg.json')
    assert 'a_big.jpg: MemoryError: cannot allocate 8 GiB' in capsys.readouterr().err


def test_workers_give_the_outputs_of_one_at_a_time(tiny_onnx, tmp_path, capsys):
    """Images in two threads, a video between them (run by itself): the same files with the
    same contents as ``--workers 1``; the summary counts every input."""
    folder = tmp_path / 'in'
    folder.mkdir()
    for i in range(5):
        write_image(folder / f'{i}.jpg', 40 + 8 * i, 60)
    clip = write_video(tmp_path / 'clip.mp4', n=3)
    inputs = [str(folder / f'{i}.jpg') for i in range(3)] + [clip] + \
        [str(folder / f'{i}.jpg') for i in range(3, 5)]
    outs = {}
    for w in (1, 2):
        out = tmp_path / f'out{w}'
        assert cli.run([tiny_onnx, *inputs, '--out-dir', str(out), '--workers', str(w)]) == 0
        assert '6 input(s) done' in capsys.readouterr().out
        outs[w] = {f: (out / f).read_bytes() for f in sorted(os.listdir(out))
                   if f.endswith('.json')}
    assert len(outs[1]) == 6 and outs[2] == outs[1]
    with pytest.raises(SystemExit) as e:  # argparse's usage error
        cli.run([tiny_onnx, clip, '--out-dir', str(tmp_path / 'o'), '--workers', '0'])
    assert e.value.code == 2
    assert '--workers must be >= 1' in capsys.readouterr().err


def test_ctrl_c_with_workers_stops_and_keeps_what_is_written(tiny_onnx, tmp_path, capsys,
                                                               monkeypatch):
    """Ctrl-C while images run in two threads: exit 130, the images done keep their files,
    no temporary file is left."""
    real = cli.read_image

    def reader(path, limit=None):
        if osp.basename(path) == '3.jpg':
            raise KeyboardInterrupt
        return real(path, limit)
    monkeypatch.setattr(cli, 'read_image', reader)
    folder = tmp_path / 'in'
    folder.mkdir()
    for i in range(8):
        write_image(folder / f'{i}.jpg')
    out = tmp_path / 'out'
    assert cli.run([tiny_onnx, str(folder), '--out-dir', str(out), '--workers', '2',
                    '--no-draw']) == 130
    err = capsys.readouterr().err
    names = sorted(os.listdir(out))
    # 0-2 done before it; of 4-7, those a worker had started finish and count
    assert f'interrupted: {len(names)} of 8 input(s) done' in err and 'Traceback' not in err
    assert {'0.jpg.json', '1.jpg.json', '2.jpg.json'} <= set(names)
    assert '3.jpg.json' not in names and not [f for f in names if f.startswith('.')]


def test_pixel_limit_refuses_a_bomb_and_goes_on(tiny_onnx, tmp_path, capsys):
    folder = tmp_path / 'in'
    folder.mkdir()
    png_header_only(folder / 'bomb.png', 30000, 30000)
    write_image(folder / 'ok.jpg')
    assert cli.run([tiny_onnx, str(folder), '--out-dir', str(tmp_path / 'o')]) == 1
    assert 'over the limit of 178,956,970' in capsys.readouterr().err
    assert osp.isfile(tmp_path / 'o' / 'ok.jpg.json')
    assert cli.run([tiny_onnx, str(folder / 'ok.jpg'), '--out-dir', str(tmp_path / 'p'),
                    '--max-pixels', '100']) == 1
    assert '2,400 pixels, over the limit of 100' in capsys.readouterr().err


@pytest.mark.parametrize('bad', ['file', 'under_file'])
def test_bad_out_dir_is_one_line(tiny_onnx, tmp_path, capsys, bad):
    img = write_image(tmp_path / 'a.jpg')
    (tmp_path / 'f').write_text('x')
    out = tmp_path / 'f' if bad == 'file' else tmp_path / 'f' / 'sub'
    assert cli.run([tiny_onnx, img, '--out-dir', str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith('error: --out-dir')


@pytest.mark.skipif(os.geteuid() == 0, reason='root can write anywhere')
def test_read_only_out_dir_is_one_line(tiny_onnx, tmp_path, capsys):
    img = write_image(tmp_path / 'a.jpg')
    ro = tmp_path / 'ro'
    ro.mkdir()
    ro.chmod(0o500)
    assert cli.run([tiny_onnx, img, '--out-dir', str(ro)]) == 2
    assert 'is not writable' in capsys.readouterr().err


def test_video_outputs(tiny_onnx, tmp_path, capsys):
    clip = write_video(tmp_path / 'clip.mp4', n=4)
    out = tmp_path / 'out'
    assert cli.run([tiny_onnx, clip, '--out-dir', str(out)]) == 0
    frames = json.loads((out / 'clip.mp4.json').read_text())
    assert [f['frame_id'] for f in frames] == [0, 1, 2, 3]
    assert count_frames(out / 'clip.mp4') == 4
    assert not [f for f in os.listdir(out) if f.startswith('.')]  # no temporary file left


class _InterruptedSource(video.FrameSource):
    """Frames of a real file, then Ctrl-C after the third frame."""

    def __iter__(self):
        for i, frame in enumerate(super().__iter__()):
            if i == 3:
                raise KeyboardInterrupt
            yield frame


def test_ctrl_c_keeps_the_frames_done(tiny_onnx, tmp_path, capsys, monkeypatch):
    clip = write_video(tmp_path / 'clip.mp4', n=8)
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'clip.mp4.json').write_text('complete earlier result')
    monkeypatch.setattr(video, 'FrameSource', _InterruptedSource)
    assert cli.run([tiny_onnx, clip, '--out-dir', str(out)]) == 130
    err = capsys.readouterr().err
    assert 'interrupted after 3 of 8 frame(s)' in err and 'Traceback' not in err
    assert len(json.loads((out / 'clip.mp4.partial.json').read_text())) == 3
    assert count_frames(out / 'clip.partial.mp4') == 3
    assert (out / 'clip.mp4.json').read_text() == 'complete earlier result'
    assert not [f for f in os.listdir(out) if f.startswith('.')]


def test_size_the_encoder_refuses_is_reported(tiny_onnx, tmp_path, capsys):
    """A 1x1 video (an MJPEG stream in a file named .mp4): the MPEG-4 encoder refuses 1x1,
    so no drawn video is announced; the JSON is written and the exit status is 1."""
    clip = write_video(tmp_path / 'tiny.avi', n=2, size=(1, 1), fourcc='MJPG')
    os.rename(clip, tmp_path / 'tiny.mp4')
    out = tmp_path / 'out'
    assert cli.run([tiny_onnx, str(tmp_path / 'tiny.mp4'), '--out-dir', str(out)]) == 1
    captured = capsys.readouterr()
    assert 'drawn video' in captured.err and 'refused frames of 1x1' in captured.err
    assert sorted(os.listdir(out)) == ['tiny.mp4.json']


def test_video_frame_size_over_the_limit(tiny_onnx, tmp_path, capsys):
    clip = write_video(tmp_path / 'clip.mp4', n=2, size=(32, 24))
    assert cli.run([tiny_onnx, clip, '--out-dir', str(tmp_path / 'o'),
                    '--max-pixels', '700']) == 1
    assert '32x24 = 768 pixels, over the limit of 700' in capsys.readouterr().err
    assert not os.listdir(tmp_path / 'o')


def test_missing_onnxruntime_names_the_extra(tiny_onnx, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # import -> ImportError
    img = write_image(tmp_path / 'a.jpg')
    assert cli.run([tiny_onnx, img, '--out-dir', str(tmp_path / 'o')]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: onnxruntime is not installed (needed to run an exported .onnx "
                   "file): pip install 'logocap-mm[runtime]'")
