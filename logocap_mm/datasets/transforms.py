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
from typing import Dict, Optional, Sequence, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmpose.registry import TRANSFORMS

# the geometry is numpy-only and shared with the torch-free ONNX runtime
from logocap_rt.checks import check_canvas, check_value
from logocap_rt.geometry import (fit_long_side_params, reference_resize_params,
                                 reference_warp_matrix, resize_to_canvas)

__all__ = ['LogoCapResize', 'reference_resize_params', 'reference_warp_matrix',
           'fit_long_side_params']


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
        max_long_side (int): largest canvas side (4096; at most 8192, as ``input_size``,
            which may not exceed it). The canvas keeps the aspect ratio
            with the short side at ``S``; an extreme image whose canvas would exceed it
            (1x300 at S=256 would need 256x76800) is instead scaled so that its LONG side
            fits ``max_long_side`` (the short side is then below ``S``), with one warning
            per transform; keypoints are still returned in the original frame.
        min_side (int): smallest allowed canvas side, the network's output stride (4): a
            canvas with a side below it is a ``ValueError`` naming the file.

    Input dtypes: see :mod:`logocap_rt.pixels` (uint8; uint16 scaled to 8
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
        # the value rules of the ONNX runtime's metadata check (logocap_rt.checks)
        pfx = 'LogoCapResize: '
        input_size = check_value('input_size', input_size, pfx + 'input_size')
        size_factor = check_value('size_factor', size_factor, pfx + 'size_factor')
        round_mode = check_value('round_mode', round_mode, pfx + 'round_mode')
        max_long_side = check_value('max_long_side', max_long_side, pfx + 'max_long_side')
        min_side = check_value('min_side', min_side, pfx + 'min_side')
        check_value('pad_val', list(pad_val) if isinstance(pad_val, (tuple, list))
                    else [pad_val] * 3, pfx + 'pad_val')
        check_canvas(input_size, size_factor, max_long_side, min_side, pfx)
        if resize_mode != 'expand':
            raise ValueError("LogoCapResize: resize_mode must be 'expand' (short side to "
                             f'input_size), got {resize_mode!r}')
        if aug_scales:
            raise ValueError('LogoCapResize: aug_scales must be None (multi-scale test is '
                             f'not supported), got {aug_scales!r}')
        if use_udp:
            raise ValueError('LogoCapResize: use_udp must be False (the reference warp is '
                             'not UDP)')
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
        h, w = img.shape[:2]

        def warn_fit(need, size_wh):
            if self._warned_fit:
                return
            self._warned_fit = True
            warnings.warn(
                f'LogoCapResize: image {name} is {w}x{h} (w x h); its short side at '
                f'{self.input_size} would need a {need[0]}x{need[1]} canvas, above '
                f'max_long_side={self.max_long_side}: using a {size_wh[0]}x{size_wh[1]} '
                'canvas (long side fitted, short side below input_size; accuracy may '
                'drop). Shown once per pipeline.', UserWarning, stacklevel=3)

        canvas, meta, _ = resize_to_canvas(
            img, self.input_size, self.size_factor, self.round_mode, self.max_long_side,
            self.min_side, self.pad_val, name, on_fit=warn_fit)
        results['img'] = canvas
        w_i, h_i = meta['input_size']
        results['img_shape'] = (h_i, w_i)
        results['input_size'] = (w_i, h_i)
        results['input_center'] = meta['input_center']
        results['input_scale'] = meta['input_scale']
        results['warp_mat'] = meta['warp_mat']
        results['aug_scale'] = None
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(input_size={self.input_size}, '
                f'size_factor={self.size_factor}, round_mode={self.round_mode!r}, '
                f'pad_val={self.pad_val!r}, max_long_side={self.max_long_side}, '
                f'min_side={self.min_side})')
