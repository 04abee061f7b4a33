"""Batched runs: a file exported with a fixed batch of N canvases and the runtime's
``predict`` (images grouped by canvas size, runs in flight in worker threads) give the
poses of single calls."""
import glob
import os.path as osp

import numpy as np
import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))  # tests/<group>/<file>
IMAGES = sorted(glob.glob(osp.join(ROOT, 'tests', 'data', '*', '*.jpg')))


def _same(pa, pb, tol=1e-3):
    assert len(pa) == len(pb)
    if pa:
        for k in ('keypoints', 'keypoint_scores', 'bbox'):
            np.testing.assert_allclose(np.array([p[k] for p in pa]),
                                       np.array([p[k] for p in pb]), rtol=0, atol=tol)


def test_batched_file_equals_single_runs(deploy_export):
    from logocap_rt import LogoCapONNX, read_image
    one = LogoCapONNX(deploy_export('full'))
    four = LogoCapONNX(deploy_export('full', batch_size=4))
    assert one.batch_size == 1 and four.batch_size == 4
    assert four.meta['batch_size'] == 4 and four.engine.input_ranks == [4]
    imgs = [read_image(p) for p in IMAGES] + [np.zeros((240, 320, 3), np.uint8)]
    # 10 images of several canvas sizes: full groups of 4, and smaller ones filled up
    sizes = {one.preprocess(im)[0].shape[2:] for im in imgs}
    assert 1 < len(sizes) < len(imgs)
    single = [one(im) for im in imgs]
    assert sum(map(len, single)) > 0 and single[-1] == []
    for got in (four.predict(imgs), one.predict(imgs, batch_size=3),
                four.predict(imgs, batch_size=1), one.predict(imgs, workers=3),
                four.predict(imgs, workers=2)):
        assert len(got) == len(imgs)
        for a, b in zip(single, got):
            _same(a, b)
    # the network input of one canvas size in runs of 4: (6, ...) -> two runs, 6 results
    x = np.concatenate([one.preprocess(imgs[0])[0]] * 6)
    out = four.run(x)
    assert out['keypoints'].shape == (6, four.meta['topk'], four.meta['num_keypoints'], 2)
    np.testing.assert_array_equal(out['valid'][0], out['valid'][5])
    with pytest.raises(ValueError, match='batch_size'):
        four.predict(imgs, batch_size=0)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match='workers must be a positive int'):
            one.predict(imgs, workers=bad)
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        four.run(x[0])


def test_worker_errors_reach_the_caller(deploy_export, monkeypatch):
    """A run that fails in a worker thread raises in ``predict``; the pool is shut down."""
    from logocap_rt import LogoCapONNX, read_image
    one = LogoCapONNX(deploy_export('full'))
    imgs = [read_image(p) for p in IMAGES[:5]]
    calls = []

    def broken(x):
        calls.append(len(x))
        if len(calls) == 3:
            raise RuntimeError('engine failed on run 3')
        return real(x)
    real = one.engine.run
    monkeypatch.setattr(one.engine, 'run', broken)
    with pytest.raises(RuntimeError, match='engine failed on run 3'):
        one.predict(imgs, workers=2)
    assert 3 <= len(calls) <= 5
