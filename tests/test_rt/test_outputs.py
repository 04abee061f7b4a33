"""The shared output rules (logocap_rt.outputs) on their own."""
import os

import pytest

from logocap_rt.outputs import (InputSet, atomic_write, check_output, json_text, partial_name,
                                result_names)


def test_names_keep_the_full_file_name_and_refuse_clashes(tmp_path):
    assert result_names(['x/a.jpg', 'x/a.png', 'y/b.jpg']) == {
        'x/a.jpg': 'a.jpg', 'x/a.png': 'a.png', 'y/b.jpg': 'b.jpg'}
    assert result_names(['0', 'rtsp://cam.local/live/stream1?token=1']) == {
        '0': 'camera0', 'rtsp://cam.local/live/stream1?token=1': 'stream1'}
    with pytest.raises(ValueError, match=r'y/A\.JPG and x/a\.jpg would write the same'):
        result_names(['x/a.jpg', 'y/A.JPG'])  # one file on case-insensitive file systems
    assert partial_name('o/clip.mp4') == 'o/clip.partial.mp4'
    assert partial_name('o/clip.mp4.json') == 'o/clip.mp4.partial.json'


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    dst = tmp_path / 'r.json'
    dst.write_text('old')

    def fail(f):
        f.write(b'half')
        raise OSError(28, 'No space left on device')
    with pytest.raises(OSError, match='No space left'):
        atomic_write(str(dst), fail)
    assert dst.read_text() == 'old' and os.listdir(tmp_path) == ['r.json']
    atomic_write(str(dst), json_text({'a': __import__('numpy').float32(0.5)}))
    assert dst.read_text() == '{\n  "a": 0.5\n}'


def test_inputs_are_found_through_links(tmp_path):
    src = tmp_path / 'in.jpg'
    src.write_bytes(b'x')
    os.link(src, tmp_path / 'hard.jpg')
    os.symlink(src, tmp_path / 'soft.jpg')
    inputs = InputSet([str(src), None, '0', 'http://x/y.mp4'])
    for p in ('in.jpg', 'hard.jpg', 'soft.jpg'):
        with pytest.raises(ValueError, match='is the input'):
            check_output(str(tmp_path / p), inputs)
    os.symlink(tmp_path / 'gone', tmp_path / 'dangling.json')
    check_output(str(tmp_path / 'dangling.json'), inputs)  # the link itself is replaced
    check_output(str(tmp_path / 'new' / 'deeper' / 'r.json'), inputs)
    with pytest.raises(ValueError, match='is not a directory'):
        check_output(str(src / 'r.json'), inputs)
