"""Global contextual adaptation (LOGO-CA): 97x97 windows, Gaussian prior, dynamic KAM
convolution and top-2 decoding.

Frames: ``heatmaps_up`` are the keypoint heatmaps upsampled x4 to the input canvas I
(bilinear, align_corners=False); poses and returned keypoints are (x, y) in I.
Window pixel (a, b) of instance-keypoint (n, k) is the map sampled (reference sampler) at ``P0[n, k] + (b - S//2, a - S//2)``.

Two paths give the same result:

* plain (``fast=False``): sample every window point, multiply by the Gaussian, one grouped
  ``conv2d`` with the flipped ``KAM / k**2`` kernels (padding k//2), ``topk(2)``. This is the
  reference formulation and the one to use for training (full response with gradient).
* fast (``fast=True``, inference): the window taps are separable, so sampling and Gaussian
  weighting are one integer crop plus two separable 2-tap passes; the convolution is then
  evaluated only on a tile around the window's maximum, and a per-block upper bound of the
  response (``sum(k+) * max(G) - sum(k-) * min(G)`` over each block's receptive field)
  certifies that no position outside the tile can enter the top 2. Rows whose certificate
  fails are recomputed with the plain convolution. The result equals the plain path up to
  float rounding (values ~1e-6 relative); positions can differ only where the 2nd and 3rd
  (or 1st and 2nd) responses tie within that rounding.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from logocap_mm.utils.bilinear import axis_weights, bilinear_combine

__all__ = ['gaussian_window', 'sample_windows', 'kam_convolution', 'top2_decode',
           'global_adaptation', 'partial_decode']


def _check_size(size: int, name: str = 'size') -> None:
    if not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(f'{name} must be a positive odd int, got {size!r}')


def gaussian_window(size: int = 97, sigma: float = 16., device=None, dtype=None) -> Tensor:
    """(S, S) prior ``exp(-((a-c)^2 + (b-c)^2) / (2 sigma^2))``, c = S//2, zeroed below 1e-4."""
    _check_size(size)
    if not sigma > 0:
        raise ValueError(f'sigma must be > 0, got {sigma!r}')
    u = torch.arange(size, device=device, dtype=dtype or torch.float32) - size // 2
    yy, xx = torch.meshgrid(u, u, indexing='ij')
    g = torch.exp(-(xx ** 2 + yy ** 2) / (2 * sigma * sigma))
    return g * (g >= 1e-4)


def _gaussian_1d(size: int, sigma: float, device, dtype) -> Tensor:
    u = torch.arange(size, device=device, dtype=dtype) - size // 2
    return torch.exp(-(u * u) / (2 * sigma * sigma))


def _check_maps_poses(heatmaps_up: Tensor, poses: Tensor) -> None:
    if heatmaps_up.dim() != 4:
        raise ValueError(f'heatmaps_up must be (B, K, H, W), got {tuple(heatmaps_up.shape)}')
    if (poses.dim() != 4 or poses.shape[-1] != 2 or poses.shape[0] != heatmaps_up.shape[0]
            or poses.shape[2] != heatmaps_up.shape[1]):
        raise ValueError(f'poses must be (B, T, K, 2) with B={heatmaps_up.shape[0]}, '
                         f'K={heatmaps_up.shape[1]}, got {tuple(poses.shape)}')


def sample_windows(heatmaps_up: Tensor, poses: Tensor, size: int = 97) -> Tensor:
    """Sample the S x S unit-step window of every instance-keypoint (reference sampler).

    Args:
        heatmaps_up: (B, K, H, W) keypoint heatmaps in I.
        poses: (B, T, K, 2) window centres P0 in I.

    Returns:
        (B, T, K, S, S), ``out[..., a, b] = Hr[k](P0 + (b - S//2, a - S//2))``.
        Differentiable w.r.t. ``heatmaps_up``.
    """
    _check_size(size)
    _check_maps_poses(heatmaps_up, poses)
    B, K, H, W = heatmaps_up.shape
    T = poses.shape[1]
    mrow = (torch.arange(B, device=poses.device)[:, None, None] * K +
            torch.arange(K, device=poses.device)).expand(B, T, K).reshape(-1)
    out = _sample_rows(heatmaps_up.reshape(B * K, H, W), mrow, poses.reshape(-1, 2), size)
    return out.reshape(B, T, K, size, size)


def _sample_rows(maps: Tensor, mrow: Tensor, centers: Tensor, size: int) -> Tensor:
    """Per-point reference sampling of windows; row m samples ``maps[mrow[m]]`` around
    ``centers[m]`` -> (M, S, S). Same arithmetic (and order) as the reference sampler."""
    Mm, H, W = maps.shape
    u = torch.arange(size, device=maps.device, dtype=maps.dtype) - size // 2
    centers = centers.to(maps.dtype)
    px = centers[:, 0, None] + u                                       # (M, S) along b
    py = centers[:, 1, None] + u                                       # (M, S) along a
    x0, x1, wx0, wx1 = axis_weights(px, W)
    y0, y1, wy0, wy1 = axis_weights(py, H)
    xt = (x0[:, None, :], x1[:, None, :], wx0[:, None, :], wx1[:, None, :])   # along b
    yt = (y0[:, :, None], y1[:, :, None], wy0[:, :, None], wy1[:, :, None])   # along a
    flat = maps.reshape(-1)
    base = (mrow * (H * W))[:, None, None]

    def g(yy, xx):
        return flat.take(base + yy * W + xx)                          # (M, S, S)

    return bilinear_combine(g, yt, xt)


def kam_convolution(windows: Tensor, kams: Tensor) -> Tensor:
    """Dynamic depthwise **true** convolution of each window with its KAM.

    ``R(u) = sum_d KAM(d) / k^2 * G(u - d)``, ``d = (j - k//2, i - k//2)``, zero padding
    k//2 (output size = input size). A one-hot KAM at (i, j) shifts the window content by
    (+(j - k//2), +(i - k//2)).

    Args:
        windows: (..., K, S, S) Gaussian-weighted windows.
        kams: (..., K, k, k) kernels (the caller clamps them to [0, 1] at test time).

    Returns:
        (..., K, S, S).
    """
    if windows.dim() < 3 or kams.dim() != windows.dim() or \
            windows.shape[:-2] != kams.shape[:-2] or kams.shape[-1] != kams.shape[-2] or \
            kams.shape[-1] % 2 == 0:
        raise ValueError(f'windows (..., K, S, S) and kams (..., K, k, k) with odd k must share '
                         f'leading dims, got {tuple(windows.shape)} and {tuple(kams.shape)}')
    lead = windows.shape[:-2]
    S1, S2 = windows.shape[-2:]
    k = kams.shape[-1]
    n = windows[..., 0, 0].numel()
    if n == 0:
        return windows.new_zeros(windows.shape)
    kern = torch.flip(kams.reshape(n, 1, k, k) / float(k * k), [2, 3]).to(windows.dtype)
    out = F.conv2d(windows.reshape(1, n, S1, S2), kern, padding=k // 2, groups=n)
    return out.reshape(*lead, S1, S2)


def top2_decode(response: Tensor, lam: float = 0.75) -> Tuple[Tensor, Tensor]:
    """Convex average of the two largest responses.

    Args:
        response: (..., K, S, S).
        lam: weight of the largest (0.75).

    Returns:
        offsets (..., K, 2) (x, y) relative to the window centre (S//2, S//2), in pixels;
        values (..., K) = lam * v1 + (1 - lam) * v2.
    """
    if response.dim() < 2:
        raise ValueError(f'response must be (..., S, S), got {tuple(response.shape)}')
    S1, S2 = response.shape[-2:]
    if S1 * S2 < 2:
        raise ValueError('response windows need at least 2 pixels for a top-2 decode')
    val, idx = response.flatten(-2).topk(2, dim=-1)
    return _combine_top2(val, idx // S2, idx % S2, lam, S1 // 2, S2 // 2)


def _combine_top2(val, rows, cols, lam, cy, cx):
    lam2 = 1.0 - lam
    bx = lam * cols[..., 0].to(val.dtype) + lam2 * cols[..., 1].to(val.dtype)
    ay = lam * rows[..., 0].to(val.dtype) + lam2 * rows[..., 1].to(val.dtype)
    off = torch.stack([bx - cx, ay - cy], -1)
    return off, lam * val[..., 0] + lam2 * val[..., 1]


# --------------------------------------------------------------------------------------
# fast path
# --------------------------------------------------------------------------------------
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


def global_adaptation(heatmaps_up: Tensor, poses: Tensor, kams: Tensor, size: int = 97,
                      sigma: float = 16., lam: float = 0.75, fast: bool = True,
                      valid: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Full LOGO-CA refinement of initial poses.

    Args:
        heatmaps_up: (B, K, H, W) keypoint heatmaps (no centre channel) in I.
        poses: (B, T, K, 2) initial poses P0 in I.
        kams: (B, T, K, k, k) KAMs (clamped to [0, 1] by the caller at test time).
        size, sigma, lam: window side (97), Gaussian sigma (16), top-2 weight (0.75).
        fast: use the pruned path (same result, see module docstring).
        valid: optional (B, T) bool; invalid slots are skipped and return (P0, 0).

    Returns:
        keypoints (B, T, K, 2) in I (``P0 + top-2 offset``), values (B, T, K) (the convex
        top-2 response, not yet multiplied by the centre score).
    """
    _check_size(size)
    _check_maps_poses(heatmaps_up, poses)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f'lam must be in [0, 1], got {lam!r}')
    B, T, K, _ = poses.shape
    if kams.dim() != 5 or kams.shape[:3] != (B, T, K) or kams.shape[-1] != kams.shape[-2] \
            or kams.shape[-1] % 2 == 0:
        raise ValueError(f'kams must be (B={B}, T={T}, K={K}, k, k) with odd k, '
                         f'got {tuple(kams.shape)}')
    dt = heatmaps_up.dtype
    poses = poses.to(dt)
    if valid is None:
        sel = None
        P = poses.reshape(B * T, K, 2)
        KA = kams.reshape(B * T, K, *kams.shape[-2:])
        bidx = torch.arange(B, device=poses.device).repeat_interleave(T)
    else:
        if valid.shape != (B, T):
            raise ValueError(f'valid must be (B, T)=({B}, {T}), got {tuple(valid.shape)}')
        sel = valid.reshape(-1).nonzero()[:, 0]
        P = poses.reshape(B * T, K, 2)[sel]
        KA = kams.reshape(B * T, K, *kams.shape[-2:])[sel]
        bidx = sel // T
    N = P.shape[0]
    maps = heatmaps_up.reshape(B * K, *heatmaps_up.shape[2:])
    mrow = (bidx[:, None] * K + torch.arange(K, device=poses.device)).reshape(-1)
    if N == 0:
        off = poses.new_zeros(N, K, 2)
        v = poses.new_zeros(N, K)
    elif fast:
        o, vv = _fast_rows(maps, mrow, P.reshape(-1, 2), KA.reshape(N * K, *KA.shape[-2:]).to(dt),
                           size, sigma, lam)
        off, v = o.reshape(N, K, 2), vv.reshape(N, K)
    else:
        win = _sample_rows(maps, mrow, P.reshape(-1, 2), size).reshape(N, K, size, size)
        G = win * gaussian_window(size, sigma, heatmaps_up.device, dt)
        R = kam_convolution(G, KA)
        off, v = top2_decode(R, lam)
    kp = P + off
    if sel is None:
        return kp.reshape(B, T, K, 2), v.reshape(B, T, K)
    out_kp = poses.reshape(B * T, K, 2).clone()
    out_v = poses.new_zeros(B * T, K)
    out_kp[sel] = kp
    out_v[sel] = v
    return out_kp.reshape(B, T, K, 2), out_v.reshape(B, T, K)


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
                                sigma: float) -> Tensor:
    """Gaussian-weighted windows via one integer crop and two separable 2-tap passes.

    The reference sampler's taps are separable and, along each axis, window column b uses
    the consecutive map indices ``floor(p_0) + b`` and ``+ 1`` (clamped), so a window is an
    integer crop of (S+1)^2 map pixels followed by a 2-tap pass along x and one along y,
    with the per-coordinate reference weights (the Gaussian folded in, it is separable).

    Args:
        maps: (Mm, H, W) heatmap channels; row m of the output samples ``maps[mrow[m]]``.
        mrow: (M,) long; centers: (M, 2) window centres (x, y) in I.

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
    crop = _crops(maps, mrow, iy, ix)                                  # (M, S+1, S+1)
    tmp = crop[:, :, :-1] * wx0[:, None, :]
    tmp.addcmul_(crop[:, :, 1:], wx1[:, None, :])
    out = tmp[:, :-1] * wy0[:, :, None]
    out.addcmul_(tmp[:, 1:], wy1[:, :, None])
    g2 = gaussian_window(size, sigma, dev, dt)
    if bool((g2 == 0).any()):
        out = out * (g2 > 0)
    return out


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


def partial_decode(kem: Tensor, kams: Tensor) -> Tuple[Tensor, Tensor]:
    """``'partial'`` level: per keypoint the KEM point with the largest KAM.

    Args:
        kem: (..., s, s, K, 2) KEM points in I; kams: (..., K, s, s) (clamped by the caller).

    Returns:
        keypoints (..., K, 2), values (..., K); ties resolve to the FIRST maximum in the
        flattened ``i * s + j`` order (as the reference).
    """
    if kem.dim() < 4 or kem.shape[-1] != 2 or kams.dim() != kem.dim() - 1 or \
            kams.shape[-3] != kem.shape[-2] or kams.shape[-2:] != kem.shape[-4:-2]:
        raise ValueError(f'kem (..., s, s, K, 2) and kams (..., K, s, s) do not match: '
                         f'{tuple(kem.shape)} vs {tuple(kams.shape)}')
    s = kams.shape[-1]
    K = kams.shape[-3]
    flat = kams.flatten(-2)                                            # (..., K, s*s)
    am = flat.argmax(-1)                                               # first maximum
    val = flat.gather(-1, am[..., None])[..., 0]
    pts = kem.reshape(*kem.shape[:-4], s * s, K, 2).transpose(-3, -2)  # (..., K, s*s, 2)
    kp = pts.gather(-2, am[..., None, None].expand(*am.shape, 1, 2))[..., 0, :]
    return kp, val

