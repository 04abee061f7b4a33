"""The LOGO-CAP test-time canvas geometry (numpy and OpenCV only, no torch).

One implementation shared by :class:`logocap_mm.datasets.LogoCapResize` (the MMPose test
pipeline) and the torch-free ONNX runtime (:mod:`logocap_rt`), so that both warp an
image onto the same canvas bit for bit.

The reference (HigherHRNet's ``get_multi_scale_size`` + ``get_affine_transform`` at scale 1)
scales the short side of the original image to ``S`` and the long side to
``int((S / short * long + 63) // 64 * 64)``. The image centre ``(int(w/2 + 0.5),
int(h/2 + 0.5))`` is mapped to the canvas centre by one isotropic affine warp (bilinear,
constant border).

Frames: **O** original image pixels, **I** network input canvas (stride 1), both (x, y).
"""
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from .checks import ROUND_MODES
from .pixels import to_network_dtype

__all__ = ['reference_resize_params', 'fit_long_side_params', 'reference_warp_matrix',
           'to_three_channels', 'resize_to_canvas', 'canvas_to_original', 'ROUND_MODES']


def _round_to_factor(x: float, factor: int, round_mode: str) -> int:
    """Round a length up to a multiple of ``factor`` the reference's way or as a true ceil.

    ``'reference'``: ``int((x + factor - 1) // factor * factor)`` (float floor division; a
    ceil only for integer ``x``). ``'ceil'``: ``int(ceil(x / factor) * factor)``.
    """
    if round_mode == 'reference':
        return int((x + factor - 1) // factor * factor)
    return int(np.ceil(x / factor) * factor)


def reference_resize_params(img_wh: Tuple[int, int],
                            input_size: int,
                            size_factor: int = 64,
                            round_mode: str = 'reference'):
    """Canvas size, centre and scale of the reference test resize (scale factor 1).

    Args:
        img_wh: original image (width, height) in O pixels.
        input_size: target short side ``S``.
        size_factor: canvas sides are multiples of it (64 in the reference).
        round_mode: ``'reference'`` or ``'ceil'`` (see :func:`_round_to_factor`).

    Returns:
        tuple: ``(size_wh, center, scale)``: canvas (W_I, H_I) ints; ``center`` (2,) float64 in O
        pixels (integers, ``int(w/2 + 0.5)``); ``scale`` (2,) float64 in units of 200 px per axis,
        exactly as the reference's ``meta['scale']``.
    """
    w, h = int(img_wh[0]), int(img_wh[1])
    center = np.array([int(w / 2.0 + 0.5), int(h / 2.0 + 0.5)], dtype=np.float64)
    short = _round_to_factor(input_size, size_factor, round_mode)
    if w < h:
        w_resized = short
        h_resized = _round_to_factor(short / w * h, size_factor, round_mode)
        scale_w = w / 200.0
        scale_h = h_resized / w_resized * w / 200.0
    else:
        h_resized = short
        w_resized = _round_to_factor(short / h * w, size_factor, round_mode)
        scale_h = h / 200.0
        scale_w = w_resized / h_resized * h / 200.0
    return (w_resized, h_resized), center, np.array([scale_w, scale_h])


def fit_long_side_params(img_wh: Tuple[int, int], max_long_side: int, size_factor: int = 64):
    """Canvas size, centre and scale that fit the image's LONG side to the largest multiple
    of ``size_factor`` <= ``max_long_side`` (the fallback for extreme aspect ratios, whose
    short side then ends up below ``S``). Same return convention as
    :func:`reference_resize_params`; the short canvas side is rounded up to a multiple of
    ``size_factor``, so the whole image stays on the canvas."""
    w, h = int(img_wh[0]), int(img_wh[1])
    center = np.array([int(w / 2.0 + 0.5), int(h / 2.0 + 0.5)], dtype=np.float64)
    long_i = (int(max_long_side) // size_factor) * size_factor
    f = long_i / max(w, h)                       # O -> I factor
    if w >= h:
        w_i, h_i = long_i, _round_to_factor(h * f, size_factor, 'ceil')
        src_w = float(w)
    else:
        h_i, w_i = long_i, _round_to_factor(w * f, size_factor, 'ceil')
        src_w = w_i / f
    return (int(w_i), int(h_i)), center, np.array([src_w / 200.0, src_w * h_i / w_i / 200.0])


def reference_warp_matrix(center: np.ndarray, scale: np.ndarray,
                          size_wh: Tuple[int, int], inv: bool = False) -> np.ndarray:
    """The reference's ``get_affine_transform(center, scale, 0, size_wh, inv=inv)``.

    Isotropic (only ``scale[0]`` is used): O-pixel ``center`` maps to the canvas centre
    (W/2, H/2) and a length of ``200 * scale[0]`` O pixels maps to ``W`` I pixels. The three
    point pairs are built in float32, as the reference does, and solved by
    ``cv2.getAffineTransform`` (float64 result), so the matrix is bit-identical.

    Returns:
        (2, 3) float64 matrix, O -> I (or I -> O when ``inv``).
    """
    src_w = np.float64(scale[0]) * 200.0
    dst_w, dst_h = size_wh
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0, :] = center
    src[1, :] = center + np.array([0.0, src_w * -0.5])
    dst[0, :] = [dst_w * 0.5, dst_h * 0.5]
    dst[1, :] = np.array([dst_w * 0.5, dst_h * 0.5]) + np.array([0.0, dst_w * -0.5])
    for pts in (src, dst):
        d = pts[0, :] - pts[1, :]
        pts[2, :] = pts[1, :] + np.array([-d[1], d[0]], dtype=np.float32)
    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def to_three_channels(img: np.ndarray, name: str) -> np.ndarray:
    """(H, W) / (H, W, 1) -> (H, W, 3) replicated; (H, W, 4) -> drop alpha; else 3 as is."""
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f'LogoCapResize: image {name} is empty, shape {img.shape}')
    c = img.shape[2]
    if c == 1:
        return np.ascontiguousarray(np.repeat(img, 3, axis=2))
    if c == 4:
        return np.ascontiguousarray(img[..., :3])
    if c != 3:
        raise ValueError(f'LogoCapResize: image {name} has {c} channels; expected 1 '
                         '(grayscale), 3 (colour) or 4 (with alpha)')
    return img


def resize_to_canvas(img: np.ndarray, input_size: int, size_factor: int = 64,
                     round_mode: str = 'reference', max_long_side: int = 4096,
                     min_side: int = 4, pad_val: Union[float, Sequence[float]] = 0,
                     name: str = '<array>', on_fit: Optional[Callable] = None
                     ) -> Tuple[np.ndarray, Dict, Optional[Tuple]]:
    """Warp an image onto the test canvas.

    Args:
        img: (H_O, W_O[, C]) image (1, 3 or 4 channels; uint8, uint16 or float32, see
            :mod:`logocap_rt.pixels`).
        input_size: target short side ``S``; the other arguments as ``LogoCapResize``'s.
        name: the image's name for error messages.
        on_fit: called as ``on_fit(need_wh, size_wh)`` when the long side is fitted (the
            canvas ``S`` needs exceeds ``max_long_side``), before the canvas is checked.

    Returns:
        tuple: ``(canvas, meta, need)``: ``canvas`` (H_I, W_I, 3) of the input dtype after
        conversion; ``meta`` with ``input_size`` (W_I, H_I), ``input_center`` (2,) float32 O,
        ``input_scale`` (2,) float32 O pixels, ``warp_mat`` (2, 3) float64 O -> I; ``need``
        the (W, H) canvas that ``S`` would have needed when it exceeded ``max_long_side``
        (the long side was fitted instead), else None.

    Raises:
        ValueError: empty image, bad channel count or dtype, or a canvas side below
            ``min_side``.
    """
    img = to_network_dtype(to_three_channels(img, name), name)
    h, w = img.shape[:2]
    size_wh, center, scale = reference_resize_params((w, h), input_size, size_factor,
                                                     round_mode)
    need = None
    if max(size_wh) > max_long_side:
        need = size_wh
        size_wh, center, scale = fit_long_side_params((w, h), max_long_side, size_factor)
        if on_fit is not None:
            on_fit(need, size_wh)
    if min(size_wh) < min_side:
        raise ValueError(
            f'LogoCapResize: image {name} is {w}x{h} (w x h); its input canvas would be '
            f'{size_wh[0]}x{size_wh[1]}, a side below the network stride '
            f'(min_side={min_side}); crop or pad the image')
    warp_mat = reference_warp_matrix(center, scale, size_wh)
    pad = tuple(float(v) for v in pad_val) if isinstance(pad_val, (tuple, list)) else pad_val
    canvas = cv2.warpAffine(img, warp_mat, size_wh, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=pad)
    w_i, h_i = size_wh
    src_w = scale[0] * 200.0
    meta = dict(input_size=(w_i, h_i), input_center=center.astype(np.float32),
                input_scale=np.array([src_w, src_w * h_i / w_i], dtype=np.float32),
                warp_mat=warp_mat)
    return canvas, meta, need


def canvas_to_original(points: np.ndarray, meta: Dict) -> np.ndarray:
    """Map (..., 2) points from I to O as MMPose's bottom-up estimator does
    (``p / input_size * input_scale + input_center - 0.5 * input_scale``, same operand
    types, so the same rounding)."""
    input_size, scale = meta['input_size'], meta['input_scale']
    return points / input_size * scale + meta['input_center'] - 0.5 * scale
