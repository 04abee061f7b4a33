"""logocap_rt.smoothing: the vectorised One-Euro filter equals the reference package value
for value; it lowers jitter with a bounded lag; masks and time stamps."""
import numpy as np
import pytest

from logocap_rt.smoothing import OneEuroFilter


def test_equals_the_reference_package():
    ref_mod = pytest.importorskip('OneEuroFilter')
    rng = np.random.default_rng(0)
    n, shape = 60, (3, 2)
    xs = np.cumsum(rng.normal(0, 2, (n, ) + shape), 0) + rng.normal(0, 1, (n, ) + shape)
    ts = 0.5 + np.cumsum(rng.uniform(0.02, 0.06, n))  # irregular time stamps
    params = dict(min_cutoff=1.3, beta=0.07, d_cutoff=0.8)
    ours = OneEuroFilter(**params)
    refs = [ref_mod.OneEuroFilter(freq=30, mincutoff=1.3, beta=0.07, dcutoff=0.8)
            for _ in range(6)]
    for x, t in zip(xs, ts):
        got = ours(x, t)
        want = [r(v, t) for r, v in zip(refs, x.reshape(-1))]
        np.testing.assert_allclose(got.reshape(-1), want, rtol=0, atol=1e-9)


def test_lowers_jitter_with_bounded_lag():
    """A ramp at 2 px/frame plus noise (sigma 2 px) at 25 fps: the smoothed track's
    frame-to-frame acceleration is much lower, and it trails the ramp by <= 1 frame."""
    rng = np.random.default_rng(1)
    n = 400
    truth = 2.0 * np.arange(n)
    x = truth + rng.normal(0, 2, n)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.05)
    y = np.array([f(np.array([v]), i / 25)[0] for i, v in enumerate(x)])
    acc = lambda s: np.abs(np.diff(s[50:], 2)).mean()  # noqa: E731
    assert acc(y) < 0.7 * acc(x)
    lag = ((truth[50:] - y[50:]) / 2.0).mean()  # frames behind the ramp
    assert 0 < lag <= 1.0


def test_mask_and_gaps():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    a = f(np.array([0.0, 10.0]), 0.0)
    np.testing.assert_array_equal(a, [0.0, 10.0])  # first values pass through
    b = f(np.array([1.0, 99.0]), 0.04, valid=np.array([True, False]))
    assert b[1] == 99.0 and 0 < b[0] < 1.0  # masked: returned as given, state kept
    c = f(np.array([1.0, 10.0]), 0.08)
    assert c[1] == pytest.approx(10.0)  # the masked 99 never entered the filter
    with pytest.raises(ValueError, match='increase'):
        f(np.array([1.0, 1.0]), 0.08)
    with pytest.raises(ValueError, match='shape'):
        f(np.zeros(3), 1.0)
    with pytest.raises(ValueError, match='min_cutoff'):
        OneEuroFilter(min_cutoff=0)
