"""Checks and conversions of the image arrays that enter the test pipeline.

dtype policy (an image array handed to ``LogoCapResize``, e.g. through the inferencer):

* ``uint8``: used as is (what ``LoadImage`` gives for files).
* ``uint16``: scaled to 8 bits (``round(v / 257)``, so 65535 -> 255).
* ``float32``: pixel values in [0, 255]; an array whose maximum is in (0, 1] is taken as
  a [0, 1] image and multiplied by 255, with a warning. Values outside [0, 255] (negative,
  or above 255, e.g. 1e20 or 3e38) are refused with a ``ValueError`` naming the range: the
  network was trained on 8-bit intensities and such values give meaningless (or overflowing)
  maps. The PyTorch pipeline (``LogoCapResize``) and the ONNX runtime both check here.
* anything else (bool, int8/16/32/64, uint32/64, float16, float64, complex...) is refused
  with a ``ValueError`` naming the dtype: OpenCV, which MMPose's inferencer uses to draw on
  the input array, cannot convert float64 / float16 images, so they must be converted by
  the caller (``img.astype(np.float32)``).
* NaN / inf pixels are refused with a ``ValueError`` naming the file and the count.
"""
import warnings

import numpy as np

from .checks import pixel_range_error

__all__ = ['to_network_dtype']

ACCEPTED = ('uint8', 'uint16', 'float32')


def to_network_dtype(img: np.ndarray, name: str) -> np.ndarray:
    """Return ``img`` (H, W[, C]) as uint8 or float32 in [0, 255] (a new array when converted;
    the input is never modified).

    Raises:
        ValueError: refused dtype (named), non-finite pixels or float values outside
            [0, 255].
    """
    dt = img.dtype
    if dt == np.uint8:
        return img
    if dt == np.uint16:
        return ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if dt == np.float32:
        finite = np.isfinite(img)
        if not finite.all():
            n_nan = int(np.isnan(img).sum())
            n_inf = int(img.size - finite.sum() - n_nan)
            raise ValueError(
                f'LogoCapResize: image {name} has non-finite pixels ({n_nan} NaN, {n_inf} '
                'inf); replace them (e.g. np.nan_to_num) before inference')
        low, top = (float(img.min()), float(img.max())) if img.size else (0., 0.)
        bad = pixel_range_error(name, low, top)
        if bad:
            raise ValueError(f'LogoCapResize: {bad}')
        if 0. < top <= 1.:
            warnings.warn(
                f'LogoCapResize: float image {name} has values in [0, {top:g}]; taking it '
                'as a [0, 1] image and scaling by 255 (pass [0, 255] values to silence this)',
                UserWarning, stacklevel=3)
            return img * np.float32(255.)
        return img
    raise ValueError(
        f'LogoCapResize: image {name} has dtype {dt}; accepted: {", ".join(ACCEPTED)} '
        '(uint16 is scaled to 8 bits; floats are pixel values in [0, 255]). Convert it, '
        'e.g. img.astype(np.uint8) for 0..255 integers or img.astype(np.float32)')
