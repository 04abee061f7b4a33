"""Plain LOGO-CA primitives: Gaussian prior, reference-sampled windows, dynamic KAM
convolution and the top-2 decode (the reference formulation; used for training and as the
ground truth of the fast path in :mod:`.global_adapt_fast`).

Frames: ``heatmaps_up`` are the keypoint heatmaps upsampled to the input canvas I; poses
are (x, y) in I. Window pixel (a, b) of instance-keypoint (n, k) is the map sampled
(reference sampler) at ``P0[n, k] + (b - S//2, a - S//2)``.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from logocap_mm.utils.bilinear import axis_weights, bilinear_combine

__all__ = ['gaussian_window', 'sample_windows', 'kam_convolution', 'kam_convolution_per_slot',
           'top2_decode']


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
    x = windows.reshape(1, n, S1, S2)
    if x.device.type == 'cpu' and torch.is_grad_enabled() and \
            (x.requires_grad or kern.requires_grad):
        out = _DepthwiseConv.apply(x, kern)
    else:
        out = F.conv2d(x, kern, padding=k // 2, groups=n)
    return out.reshape(*lead, S1, S2)


class _DepthwiseConv(torch.autograd.Function):
    """``F.conv2d(x, w, padding=k // 2, groups=n)`` for x (1, n, S1, S2), w (n, 1, k, k)
    whose backward is two more depthwise ``conv2d`` forwards.

    Why: on CPU, PyTorch's backward of a depthwise convolution with n groups of 11x11
    kernels falls back to a per-group path; with the ~700 instance-keypoints of a training
    batch it cost ~0.43 s against 0.04 s for these two forwards (2 threads). Same forward
    values; the gradients agree to float32 rounding (summation order).
      grad_x = conv(grad_out, w flipped), zero padding k // 2;
      grad_w = conv(x padded by k // 2, grad_out as the kernel) -> (n, 1, k, k).
    """

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor) -> Tensor:
        ctx.save_for_backward(x, w)
        return F.conv2d(x, w, padding=w.shape[-1] // 2, groups=w.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        x, w = ctx.saved_tensors
        n, p = w.shape[0], w.shape[-1] // 2
        grad = grad.contiguous()
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = F.conv2d(grad, torch.flip(w, [2, 3]), padding=p, groups=n)
        if ctx.needs_input_grad[1]:
            gw = F.conv2d(F.pad(x, (p, p, p, p)), grad.transpose(0, 1), groups=n)
            gw = gw.transpose(0, 1)                                   # (n, 1, k, k)
        return gx, gw


def kam_convolution_per_slot(windows: Tensor, kams: Tensor) -> Tensor:
    """:func:`kam_convolution` of N slots as a loop over the slots (``scan``), each step one
    ``conv2d`` of K groups. Same values; no group count that depends on N, so an exported
    graph (one ONNX ``Scan`` around a ``Conv`` with ``group = K``) has a cost that follows a
    data-dependent N.

    Args:
        windows: (N, K, S, S) Gaussian-weighted windows; kams: (N, K, k, k), odd k.

    Returns:
        (N, K, S, S).
    """
    if windows.dim() != 4 or kams.dim() != 4 or windows.shape[:2] != kams.shape[:2] or \
            kams.shape[-1] != kams.shape[-2] or kams.shape[-1] % 2 == 0:
        raise ValueError(f'windows (N, K, S, S) and kams (N, K, k, k) with odd k must share '
                         f'N and K, got {tuple(windows.shape)} and {tuple(kams.shape)}')
    from torch._higher_order_ops.scan import scan
    K, k = windows.shape[1], kams.shape[-1]
    kern = torch.flip(kams / float(k * k), [2, 3]).to(windows.dtype)

    def step(carry: Tensor, xs: Tuple[Tensor, Tensor]):
        w, kk = xs                                                     # (K, S, S), (K, k, k)
        r = F.conv2d(w[None], kk[:, None], padding=k // 2, groups=K)[0]
        return carry + 0, r                          # a new carry tensor (no aliasing)

    return scan(step, windows.new_zeros(()), (windows, kern))[1]


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
