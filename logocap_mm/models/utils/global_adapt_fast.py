"""Fast (test-time) path of LOGO-CA; numerically equal to the plain path of
:mod:`.global_windows` (see :mod:`.global_adapt` for the argument).
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .global_windows import _combine_top2, _gaussian_1d, gaussian_window

__all__ = ['fast_rows']


def _sliding_max(x: Tensor, w: int) -> Tensor:
    """Max over every w x w window (stride 1, no padding) of x (M, L, L) -> (M, L-w+1, L-w+1),
    by doubling shifts (``max_pool2d`` with stride 1 is very slow on CPU)."""
    for dim in (1, 2):
        n = x.shape[dim]
        span = 1
        while span < w:
            step = min(span, w - span)
            x = torch.maximum(x.narrow(dim, 0, x.shape[dim] - step),
                              x.narrow(dim, step, x.shape[dim] - step))
            span += step
        x = x.narrow(dim, 0, n - w + 1)
    return x


def _fast_conv_top2(G: Tensor, kams: Tensor, lam: float, block: int = 4,
                    tile_blocks: int = 8):
    """Top-2 of ``kam_convolution(G, kams)`` without computing the full response.

    Args:
        G: (M, S, S) weighted windows; kams: (M, k, k).

    Returns:
        offsets (M, 2), values (M,).
    """
    M, S, _ = G.shape
    k = kams.shape[-1]
    r = k // 2
    dev, dt = G.device, G.dtype
    kern = torch.flip(kams / float(k * k), [1, 2]).to(dt)              # cross-correlation form
    nb = -(-S // block)
    tile_blocks = min(tile_blocks, nb)
    Lt = tile_blocks * block
    Lp = nb * block + 2 * r
    Gp = F.pad(G, (r, Lp - S - r, r, Lp - S - r))                      # zero padding, (M, Lp, Lp)
    # per-block upper bound of R: for u in block B, R(u) = sum_e kern(e) Gp(u + e)
    #   <= sum_e kern+(e) max_{u in B} Gp(u + e) - sum_e kern-(e) min_{u in B} Gp(u + e),
    # i.e. a stride-`block` correlation of the sliding block max (min) of Gp.
    kpos = kern.clamp(min=0)
    smax = _sliding_max(Gp, block)                                     # (M, L', L')
    ub = F.conv2d(smax[None], kpos[:, None], stride=block, groups=M)[0]
    if bool((kern < 0).any()):
        kneg = (-kern).clamp(min=0)
        smin = -_sliding_max(-Gp, block)
        ub = ub - F.conv2d(smin[None], kneg[:, None], stride=block, groups=M)[0]
    # tile of tile_blocks x tile_blocks blocks around the block with the largest bound
    am = ub.reshape(M, -1).argmax(1)
    by = am // nb
    bx = am % nb
    ty = (by - (tile_blocks - 1) // 2).clamp(0, nb - tile_blocks)
    tx = (bx - (tile_blocks - 1) // 2).clamp(0, nb - tile_blocks)
    sM, sR = Gp.stride(0), Gp.stride(1)
    npos = nb - tile_blocks + 1
    view = Gp.as_strided((M, npos, npos, Lt + 2 * r, Lt + 2 * r),
                         (sM, block * sR, block, sR, 1))
    ar = torch.arange(M, device=dev)
    crops = view[ar, ty, tx]                                           # (M, Lt+2r, Lt+2r)
    R = F.conv2d(crops[None], kern[:, None], groups=M)[0]              # (M, Lt, Lt)
    oy = (ty * block)[:, None]
    ox = (tx * block)[:, None]
    lt = torch.arange(Lt, device=dev)
    bad_y = (oy + lt) >= S
    bad_x = (ox + lt) >= S
    R = R.masked_fill(bad_y[:, :, None] | bad_x[:, None, :], float('-inf'))
    val, idx = R.reshape(M, -1).topk(2, dim=1)
    rows = oy + idx // Lt
    cols = ox + idx % Lt
    # certificate: every block outside the tile has a bound below the 2nd value
    bi = torch.arange(nb, device=dev)
    in_y = (bi[None] >= ty[:, None]) & (bi[None] < ty[:, None] + tile_blocks)
    in_x = (bi[None] >= tx[:, None]) & (bi[None] < tx[:, None] + tile_blocks)
    ub_out = ub.masked_fill(in_y[:, :, None] & in_x[:, None, :], float('-inf'))
    ub_out = ub_out.reshape(M, -1).amax(1)
    ok = (ub_out + 1e-6 * ub_out.abs() + 1e-12) < val[:, 1]
    if tile_blocks == nb:
        ok = torch.ones_like(ok)
    nfail = int((~ok).sum())
    if nfail:
        bad = (~ok).nonzero()[:, 0]
        Rf = F.conv2d(G[bad][None], kern[bad][:, None], padding=r, groups=bad.numel())[0]
        v2, i2 = Rf.reshape(nfail, -1).topk(2, dim=1)
        val = val.index_put((bad,), v2)
        rows = rows.index_put((bad,), i2 // S)
        cols = cols.index_put((bad,), i2 % S)
    off, v = _combine_top2(val, rows, cols, lam, S // 2, S // 2)
    return off, v


def _fast_rows(maps: Tensor, mrow: Tensor, centers: Tensor, kams: Tensor, size: int,
               sigma: float, lam: float) -> Tuple[Tensor, Tensor]:
    """Fast path for M instance-keypoint rows -> offsets (M, 2), values (M,).

    Rows whose KAM is exactly zero (common after the test-time clamp to [0, 1]) have an
    all-zero response in the plain path; their top-2 is ``topk`` of zeros, reproduced here
    without sampling a window or convolving (same op on the same values, so the same tie
    order). The other rows go through the sampled windows and the pruned convolution.
    """
    M = mrow.numel()
    zero = (kams.reshape(M, -1) == 0).all(1)
    if not bool(zero.any()):
        G = _weighted_windows_fast_rows(maps, mrow, centers, size, sigma)
        o, v = _fast_conv_top2(G, kams, lam)
        return o, v
    off = centers.new_zeros(M, 2)
    val = centers.new_zeros(M)
    nz = (~zero).nonzero()[:, 0]
    z = zero.nonzero()[:, 0]
    if nz.numel():
        G = _weighted_windows_fast_rows(maps, mrow[nz], centers[nz], size, sigma)
        o, v = _fast_conv_top2(G, kams[nz], lam)
        off[nz] = o
        val[nz] = v
    zv, zi = centers.new_zeros(z.numel(), size * size).topk(2, dim=-1)
    o, v = _combine_top2(zv, zi // size, zi % size, lam, size // 2, size // 2)
    off[z] = o
    val[z] = v
    return off, val


def _weighted_windows_fast_rows(maps: Tensor, mrow: Tensor, centers: Tensor, size: int,
                                sigma: float, static: bool = False) -> Tensor:
    """Gaussian-weighted windows via one integer crop and two separable 2-tap passes.

    The reference sampler's taps are separable and, along each axis, window column b uses
    the consecutive map indices ``floor(p_0) + b`` and ``+ 1`` (clamped), so a window is an
    integer crop of (S+1)^2 map pixels followed by a 2-tap pass along x and one along y,
    with the per-coordinate reference weights (the Gaussian folded in, it is separable).

    Args:
        maps: (Mm, H, W) heatmap channels; row m of the output samples ``maps[mrow[m]]``.
        mrow: (M,) long; centers: (M, 2) window centres (x, y) in I.

        static: no data-dependent branch (for an exported graph): every crop is one flat
            ``take`` and the Gaussian's zero mask is always applied.

    Returns:
        (M, S, S) equal to ``gaussian_window * sample_windows`` up to float rounding.
    """
    Mm, H, W = maps.shape
    dev, dt = maps.device, maps.dtype
    c = size // 2
    u = torch.arange(size, device=dev, dtype=dt) - c
    ar = torch.arange(size + 1, device=dev)

    def taps(p0, n):
        p = p0[:, None] + u
        e0 = torch.floor(p[:, 0]).long()
        e = e0[:, None] + ar[:size]
        i0 = e.clamp(0, n - 1)
        i1 = (i0 + 1).clamp(0, n - 1)
        w0 = (i1.to(dt) - p).clamp(0, 1)
        w1 = (p - i0.to(dt)).clamp(0, 1)
        idx = (e0[:, None] + ar).clamp(0, n - 1)
        return idx, w0, w1

    ix, wx0, wx1 = taps(centers[:, 0], W)
    iy, wy0, wy1 = taps(centers[:, 1], H)
    g1 = _gaussian_1d(size, sigma, dev, dt)
    wx0, wx1 = wx0 * g1, wx1 * g1
    wy0, wy1 = wy0 * g1, wy1 * g1
    crop = (_take_crops if static else _crops)(maps, mrow, iy, ix)     # (M, S+1, S+1)
    tmp = crop[:, :, :-1] * wx0[:, None, :]
    tmp.addcmul_(crop[:, :, 1:], wx1[:, None, :])
    out = tmp[:, :-1] * wy0[:, :, None]
    out.addcmul_(tmp[:, 1:], wy1[:, :, None])
    g2 = gaussian_window(size, sigma, dev, dt)
    if static or bool((g2 == 0).any()):
        out = out * (g2 > 0)
    return out


def weighted_windows_crop(maps: Tensor, mrow: Tensor, centers: Tensor, size: int,
                          sigma: float) -> Tensor:
    """:func:`_weighted_windows_fast_rows` without data-dependent branches (one flat
    ``take`` of (M, S+1, S+1) map pixels instead of the reference sampler's four of
    (M, S, S)): the Gaussian-weighted windows of an exported graph."""
    return _weighted_windows_fast_rows(maps, mrow, centers, size, sigma, static=True)


def _take_crops(maps: Tensor, mrow: Tensor, iy: Tensor, ix: Tensor) -> Tensor:
    """``maps[mrow[m]][iy[m]][:, ix[m]]`` for (clamped) index runs iy, ix (M, L), by one
    flat ``take`` for every row."""
    Mm, H, W = maps.shape
    idx = ((mrow * (H * W))[:, None, None] + iy[:, :, None] * W + ix[:, None, :])
    return maps.reshape(-1).take(idx)


def _crops(maps: Tensor, mrow: Tensor, iy: Tensor, ix: Tensor) -> Tensor:
    """``maps[mrow[m]][iy[m]][:, ix[m]]`` for (already clamped) index runs iy, ix (M, L).

    Rows whose runs are unclamped (window inside the map) are copied from a strided view
    of all L x L crops (no index tensor); the others use a flat ``take``.
    """
    Mm, H, W = maps.shape
    M, L = iy.shape
    inside = (iy[:, -1] - iy[:, 0] == L - 1) & (ix[:, -1] - ix[:, 0] == L - 1)
    if H < L or W < L:
        inside = torch.zeros_like(inside)
    crop = maps.new_empty(M, L, L)
    if bool(inside.all()):
        sel_in, sel_out = None, None
    else:
        sel_in = inside.nonzero()[:, 0]
        sel_out = (~inside).nonzero()[:, 0]
    if bool(inside.any()):
        maps_c = maps.contiguous()
        view = maps_c.as_strided((Mm, H - L + 1, W - L + 1, L, L), (H * W, W, 1, W, 1))
        if sel_in is None:
            return view[mrow, iy[:, 0], ix[:, 0]]
        crop[sel_in] = view[mrow[sel_in], iy[sel_in, 0], ix[sel_in, 0]]
    if sel_out is not None and sel_out.numel():
        idx = ((mrow[sel_out] * (H * W))[:, None, None] + iy[sel_out][:, :, None] * W +
               ix[sel_out][:, None, :])
        crop[sel_out] = maps.reshape(-1).take(idx)
    return crop


fast_rows = _fast_rows
