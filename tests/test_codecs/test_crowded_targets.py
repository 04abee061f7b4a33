"""Targets of crowded images: the Gaussian rendering works in chunks of points, so memory
stays bounded for thousands of people and the targets do not depend on the chunk size."""
import tracemalloc

import numpy as np

import logocap_mm.codecs.targets as targets
from logocap_mm.codecs import LogoCapCodec


def _crowd(n, seed=0):
    rng = np.random.default_rng(seed)
    kp = rng.uniform(0, 512, (n, 17, 2))
    vis = (rng.random((n, 17)) > 0.2).astype(np.float32)
    area = rng.uniform(2000, 20000, n)
    return kp, vis, area


def test_chunked_rendering_gives_the_same_targets(monkeypatch):
    codec = LogoCapCodec((512, 512), (128, 128))
    kp, vis, area = _crowd(40)
    whole = codec.encode(kp, vis, area=area)
    assert targets.RENDER_CHUNK_ELEMENTS >= 40 * 18 * 29 * 29  # one chunk above
    monkeypatch.setattr(targets, 'RENDER_CHUNK_ELEMENTS', 3 * 29 * 29)  # 3-7 points a chunk
    chunked = codec.encode(kp, vis, area=area)
    for k in whole:
        np.testing.assert_array_equal(chunked[k], whole[k])
    assert (whole['heatmaps'].max(axis=(1, 2)) > 0.9).all()  # every channel drawn


def test_crowded_image_memory_is_bounded():
    """1000 people (17 000 keypoints): the (points, S, S) float64 work arrays of one pass
    took 400+ MiB; in chunks the peak of the whole encode stays below 200 MiB."""
    codec = LogoCapCodec((512, 512), (128, 128))
    kp, vis, area = _crowd(1000, seed=1)
    tracemalloc.start()
    try:
        enc = codec.encode(kp, vis, area=area)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2 ** 20, f'peak {peak / 2 ** 20:.0f} MiB'
    assert enc['heatmaps'].shape == (18, 128, 128)
    assert (enc['heatmaps'].max(axis=(1, 2)) > 0.99).all()  # keypoints and centres drawn
