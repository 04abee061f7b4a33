"""Test-time resize that reproduces the LOGO-CAP reference exactly.

The reference (HigherHRNet's ``get_multi_scale_size`` + ``get_affine_transform`` at scale 1)
scales the short side of the original image to ``S`` and the long side to
``int((S / short * long + 63) // 64 * 64)``. For a non-integer ``S / short * long`` that is
*not* a ceil to a multiple of 64 (500x333 at S=256: 384.38 -> 384, MMPose's
``BottomupResize`` gives 448). The image centre ``(int(w/2 + 0.5), int(h/2 + 0.5))`` is mapped
to the canvas centre by one isotropic affine warp (bilinear, constant-0 border).

Frames: **O** original image pixels, **I** network input canvas (stride 1), both (x, y).
"""
import warnings
from typing import Dict, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmpose.registry import TRANSFORMS

from .input_checks import to_network_dtype

__all__ = ['LogoCapResize', 'reference_resize_params', 'reference_warp_matrix',
           'fit_long_side_params']

_ROUND_MODES = ('reference', 'ceil')


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


def _to_three_channels(img: np.ndarray, name: str) -> np.ndarray:
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


@TRANSFORMS.register_module()
class LogoCapResize(BaseTransform):
    """Drop-in for MMPose's ``BottomupResize`` in test pipelines, reproducing the reference.

    Required keys: ``img`` (H_O, W_O, 3) uint8 (any channel order; channels are warped
    independently; 1- and 4-channel images are converted, see below). Modified keys: ``img`` (H_I, W_I, 3), ``img_shape`` (H_I, W_I).
    Added keys: ``input_size`` (W_I, H_I), ``input_center`` (2,) float32 O pixels,
    ``input_scale`` (2,) float32 O pixels, ``warp_mat`` (2, 3) float64 O -> I, ``aug_scale`` None.

    ``BottomupPoseEstimator.add_pred_to_datasample`` maps I keypoints back with
    ``k / input_size * input_scale + input_center - 0.5 * input_scale``; with
    ``input_scale = 200 * scale[0] * (1, H_I / W_I)`` this equals the reference's
    ``affine_I2O`` (x_O = a (x_I - W_I/2) + c_x, a = 200 scale[0] / W_I, same for y).

    Args:
        input_size (int | tuple[int, int]): target short side ``S``; a ``(w, h)`` tuple is
            accepted for compatibility with ``BottomupResize`` configs if ``w == h``.
        size_factor (int): canvas sides are multiples of it. Defaults to 64 (reference).
        round_mode (str): ``'reference'`` (default; ``int((x + 63) // 64 * 64)``) or ``'ceil'``.
        resize_mode (str): only ``'expand'`` (short side to S), kept for drop-in configs.
        pad_val (int | tuple): border value of the warp. Defaults to 0 (reference).
        aug_scales: only ``None`` (no multi-scale test in the reference).
        use_udp (bool): only ``False``.
        max_long_side (int): largest canvas side (4096). The canvas keeps the aspect ratio
            with the short side at ``S``; an extreme image whose canvas would exceed it
            (1x300 at S=256 would need 256x76800) is instead scaled so that its LONG side
            fits ``max_long_side`` (the short side is then below ``S``), with one warning
            per transform; keypoints are still returned in the original frame.
        min_side (int): smallest allowed canvas side, the network's output stride (4): a
            canvas with a side below it is a ``ValueError`` naming the file.

    Input dtypes: see :mod:`logocap_mm.datasets.input_checks` (uint8; uint16 scaled to 8
    bits; float32 in [0, 255], a [0, 1] float image rescaled with a warning; other dtypes
    and NaN / inf pixels refused with a ``ValueError`` naming them).

    Input channels: grayscale ``(H, W)`` / ``(H, W, 1)`` images are replicated to 3 channels
    and the alpha channel of ``(H, W, 4)`` images is dropped (``LoadImage`` already gives 3
    channels for files; this covers arrays passed to the inferencer); other channel counts
    and empty images raise a ``ValueError`` naming the file.
    """

    def __init__(self,
                 input_size: Union[int, Sequence[int]],
                 size_factor: int = 64,
                 round_mode: str = 'reference',
                 resize_mode: str = 'expand',
                 pad_val: Union[int, Sequence[int]] = (0, 0, 0),
                 aug_scales: Optional[Sequence[float]] = None,
                 use_udp: bool = False,
                 max_long_side: int = 4096,
                 min_side: int = 4):
        super().__init__()
        if isinstance(input_size, (tuple, list)):
            if len(input_size) != 2 or int(input_size[0]) != int(input_size[1]):
                raise ValueError(
                    'LogoCapResize: input_size must be an int (short side S) or a square '
                    f'(S, S) tuple, got {input_size!r}')
            input_size = input_size[0]
        if isinstance(input_size, bool) or not isinstance(input_size, (int, np.integer)) \
                or input_size <= 0:
            raise ValueError(
                f'LogoCapResize: input_size must be a positive int, got {input_size!r}')
        if isinstance(size_factor, bool) or not isinstance(size_factor, (int, np.integer)) \
                or size_factor <= 0:
            raise ValueError(
                f'LogoCapResize: size_factor must be a positive int, got {size_factor!r}')
        if round_mode not in _ROUND_MODES:
            raise ValueError(f'LogoCapResize: round_mode must be one of {_ROUND_MODES}, '
                             f'got {round_mode!r}')
        if resize_mode != 'expand':
            raise ValueError("LogoCapResize: resize_mode must be 'expand' (short side to "
                             f'input_size), got {resize_mode!r}')
        if aug_scales:
            raise ValueError('LogoCapResize: aug_scales must be None (multi-scale test is '
                             f'not supported), got {aug_scales!r}')
        if use_udp:
            raise ValueError('LogoCapResize: use_udp must be False (the reference warp is '
                             'not UDP)')
        if isinstance(max_long_side, bool) or not isinstance(max_long_side, (int, np.integer)) \
                or max_long_side <= 0:
            raise ValueError('LogoCapResize: max_long_side must be a positive int, got '
                             f'{max_long_side!r}')
        if isinstance(min_side, bool) or not isinstance(min_side, (int, np.integer)) \
                or min_side <= 0:
            raise ValueError(f'LogoCapResize: min_side must be a positive int, got {min_side!r}')
        if max_long_side < size_factor or max_long_side < min_side:
            raise ValueError(f'LogoCapResize: max_long_side ({max_long_side}) must be >= '
                             f'size_factor ({size_factor}) and min_side ({min_side})')
        self.max_long_side = int(max_long_side)
        self.min_side = int(min_side)
        self._warned_fit = False
        self.input_size = int(input_size)
        self.size_factor = int(size_factor)
        self.round_mode = round_mode
        self.resize_mode = resize_mode
        self.pad_val = pad_val

    def transform(self, results: Dict) -> Dict:
        img = results['img']
        if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
            raise ValueError('LogoCapResize: results["img"] must be an (H, W[, C]) numpy array, '
                             f'got {type(img).__name__}')
        name = results.get('img_path') or '<array>'
        img = to_network_dtype(_to_three_channels(img, name), name)
        h, w = img.shape[:2]
        size_wh, center, scale = reference_resize_params(
            (w, h), self.input_size, self.size_factor, self.round_mode)
        if max(size_wh) > self.max_long_side:
            need = size_wh
            size_wh, center, scale = fit_long_side_params(
                (w, h), self.max_long_side, self.size_factor)
            if not self._warned_fit:
                self._warned_fit = True
                warnings.warn(
                    f'LogoCapResize: image {name} is {w}x{h} (w x h); its short side at '
                    f'{self.input_size} would need a {need[0]}x{need[1]} canvas, above '
                    f'max_long_side={self.max_long_side}: using a {size_wh[0]}x{size_wh[1]} '
                    'canvas (long side fitted, short side below input_size; accuracy may '
                    'drop). Shown once per pipeline.', UserWarning, stacklevel=2)
        if min(size_wh) < self.min_side:
            raise ValueError(
                f'LogoCapResize: image {name} is {w}x{h} (w x h); its input canvas would be '
                f'{size_wh[0]}x{size_wh[1]}, a side below the network stride '
                f'(min_side={self.min_side}); crop or pad the image')
        warp_mat = reference_warp_matrix(center, scale, size_wh)
        pad = self.pad_val
        if isinstance(pad, (tuple, list)):
            pad = tuple(float(v) for v in pad)
        results['img'] = cv2.warpAffine(
            img, warp_mat, size_wh, flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT, borderValue=pad)
        w_i, h_i = size_wh
        src_w = scale[0] * 200.0
        results['img_shape'] = (h_i, w_i)
        results['input_size'] = (w_i, h_i)
        results['input_center'] = center.astype(np.float32)
        results['input_scale'] = np.array([src_w, src_w * h_i / w_i], dtype=np.float32)
        results['warp_mat'] = warp_mat
        results['aug_scale'] = None
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(input_size={self.input_size}, '
                f'size_factor={self.size_factor}, round_mode={self.round_mode!r}, '
                f'pad_val={self.pad_val!r}, max_long_side={self.max_long_side}, '
                f'min_side={self.min_side})')
