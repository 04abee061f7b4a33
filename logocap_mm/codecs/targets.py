"""Target-rendering helpers of :class:`~logocap_mm.codecs.LogoCapCodec` (numpy, F grid)
and its argument checks."""
from typing import Tuple

import numpy as np

__all__ = ['check_size', 'check_positive', 'render_gaussians', 'RENDER_CHUNK_ELEMENTS']

# elements of the largest (points, S, S) work array of render_gaussians (float64: 16 MiB)
RENDER_CHUNK_ELEMENTS = 2 ** 21


def check_size(name: str, value) -> Tuple[int, int]:
    try:
        w, h = value
        w_i, h_i = int(w), int(h)
    except (TypeError, ValueError):
        raise ValueError(f'{name} must be a (w, h) pair of positive ints, got {value!r}')
    if w_i != w or h_i != h or w_i <= 0 or h_i <= 0:
        raise ValueError(f'{name} must be a (w, h) pair of positive ints, got {value!r}')
    return w_i, h_i


def check_positive(name: str, value, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f'{name} must be a number, got {value!r}')
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = '>= 0' if allow_zero else '> 0'
        raise ValueError(f'{name} must be a finite number {bound}, got {value!r}')
    return v


def render_gaussians(heatmaps: np.ndarray, foreground: np.ndarray, pts: np.ndarray,
                      chans: np.ndarray, sigmas: np.ndarray) -> None:
    """Max-merge unnormalised Gaussians into ``heatmaps`` (in place, no loop over points).

    Args:
        heatmaps: ``(C, H, W)`` float32 target, updated by element-wise max.
        foreground: ``(H, W)`` bool, set True inside every support square.
        pts: ``(P, 2)`` float64 ``(x, y)`` in F, all inside ``[0, W) x [0, H)``.
        chans: ``(P,)`` channel of each point.
        sigmas: ``(P,)`` Gaussian sigma of each point (F px).

    Each Gaussian is evaluated at integer pixels of the square
    ``[floor(x - 3s - 1), ceil(x + 3s + 2))`` (clipped to the map). Points are taken in
    chunks so that the ``(P_chunk, S, S)`` work arrays stay below ``RENDER_CHUNK_ELEMENTS``
    elements (memory bounded for crowded images; the result does not depend on the chunks).
    """
    if len(pts) == 0:
        return
    lo = np.floor(pts - 3 * sigmas[:, None] - 1).astype(np.int64)  # (P, 2)
    hi = np.ceil(pts + 3 * sigmas[:, None] + 2).astype(np.int64)  # (P, 2) exclusive
    span = int((hi - lo).max())
    step = max(1, RENDER_CHUNK_ELEMENTS // (span * span))
    for i in range(0, len(pts), step):
        sl = slice(i, i + step)
        _render_chunk(heatmaps, foreground, pts[sl], chans[sl], sigmas[sl], lo[sl], hi[sl])


def _render_chunk(heatmaps, foreground, pts, chans, sigmas, lo, hi) -> None:
    _, H, W = heatmaps.shape
    span = int((hi - lo).max())
    d = np.arange(span)
    xs = lo[:, 0, None] + d  # (P, S)
    ys = lo[:, 1, None] + d
    okx = (xs < hi[:, 0, None]) & (xs >= 0) & (xs < W)
    oky = (ys < hi[:, 1, None]) & (ys >= 0) & (ys < H)
    dx2 = (xs - pts[:, 0, None]) ** 2  # (P, S)
    dy2 = (ys - pts[:, 1, None]) ** 2
    # One exp of the summed squared distance, as the reference evaluates it (float64).
    g = np.exp(-(dy2[:, :, None] + dx2[:, None, :]) / (2 * sigmas[:, None, None] ** 2))
    ok = oky[:, :, None] & okx[:, None, :]  # (P, S, S)
    p_idx, iy, ix = np.nonzero(ok)
    yy = ys[p_idx, iy]
    xx = xs[p_idx, ix]
    np.maximum.at(heatmaps, (chans[p_idx], yy, xx), g[p_idx, iy, ix].astype(np.float32))
    foreground[yy, xx] = True
