"""Discovery of a parity fixture folder (logocap_mm.testing): files found by content, any
names and counts, and skip reasons that name the missing key or file."""
import os.path as osp

import numpy as np

from logocap_mm.testing import image_files, missing_file, missing_keys, skip_reasons


def _folder(tmp_path):
    np.savez(tmp_path / 'img_one.npz', file_name='a.jpg', input_size_hw=np.array([256, 384]),
             heatmaps=np.zeros((18, 64, 96), np.float32), embedding=np.zeros(1, np.float32))
    np.savez(tmp_path / 'zz.npz', file_name='b.jpg', input_size_hw=np.array([832, 512]),
             heatmaps=np.zeros((18, 208, 128), np.float32))
    np.savez(tmp_path / 'train_forward.npz', hflip=np.zeros(2, bool))   # not a per-image file
    np.savez(tmp_path / 'other.npz', x=np.zeros(3))                      # neither
    return str(tmp_path)


def test_image_files_by_content_with_test_size(tmp_path):
    d = _folder(tmp_path)
    got = [(osp.basename(p), s) for p, s in image_files(d)]
    assert got == [('img_one.npz', 256), ('zz.npz', 512)]   # size = canvas short side
    assert image_files(str(tmp_path / 'nothing_here')) == []


def test_skip_reasons_name_the_missing_key_and_file(tmp_path):
    d = _folder(tmp_path)
    a, b = (p for p, _ in image_files(d))
    assert missing_keys(a, ('heatmaps', 'embedding'), 'head maps') is None
    r = missing_keys(b, ('heatmaps', 'embedding', 'kam_raw'), 'local KAMs')
    assert r == "zz.npz has no key(s) 'embedding', 'kam_raw': local KAMs skipped"
    assert missing_file(d, 'train_forward.npz', 'training') is None
    r = missing_file(d, 'train_forward_injected.npz', 'injected training')
    assert 'train_forward_injected.npz' in r and r.endswith('injected training skipped')
    reasons = skip_reasons(d, [('head maps', ('heatmaps',)), ('local', ('embedding',))])
    assert reasons == ["zz.npz has no key(s) 'embedding': local skipped"]
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert skip_reasons(str(empty), [('head maps', ('heatmaps',))]) == [
        f'fixture folder {empty} has no per-image .npz file']
