"""Training-side transforms that follow the LOGO-CAP reference recipe.

* :class:`LogoCapGetHeatmapMask`: MMPose's ``BottomupGetHeatmapMask`` rasterises only polygon
  segmentations, so the RLE dicts of COCO crowd regions (``iscrowd=1``) are skipped and those
  regions are trained as background. This subclass rasterises polygons, uncompressed RLE
  (``counts`` a list of run lengths) and compressed RLE (``counts`` a string) alike. The
  masked (ignored) regions are MMPose's ``invalid_segs``: crowd regions and people without
  labelled keypoints, which is the reference's rule (MMPose also ignores people with an empty
  box, which COCO does not have).
* :class:`LogoCapRandomAffine`: the reference's augmentation draws. Scale factor, rotation and
  shift are uniform; the shift is an integer number of O pixels in
  ``[trunc(-f * side), trunc(f * side))`` per axis, where ``side`` is the side of the
  (square) crop after the random scale. MMPose's ``BottomupRandomAffine`` with
  ``distribution='uniform'`` matches the scale and rotation but shifts by a continuous
  ``U(-f, f)`` times the image width / height, not tied to the crop.

Frames: **O** original image pixels, **I** network input canvas, **F** heatmap grid.
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import xtcocotools.mask as cocomask
from mmpose.datasets.transforms import BottomupGetHeatmapMask, BottomupRandomAffine
from mmpose.registry import TRANSFORMS

from .annotation_checks import check_segmentation

__all__ = ['LogoCapGetHeatmapMask', 'LogoCapRandomAffine', 'segmentation_to_mask',
           'reference_affine_draws']


def segmentation_to_mask(seg, img_shape: Tuple[int, int]) -> np.ndarray:
    """Rasterise one COCO segmentation: ``(H, W)`` uint8, 1 inside.

    Args:
        seg: polygons (a list of ``[x0, y0, x1, y1, ...]`` lists, O pixels), or an RLE dict
            with ``size = [H, W]`` and ``counts`` (a list: uncompressed; a string: compressed).
        img_shape: ``(H, W)`` of the O image.

    Raises:
        ValueError: a segmentation that :func:`~.annotation_checks.check_segmentation`
            refuses (checked before any of it reaches the COCO mask code).
    """
    h, w = int(img_shape[0]), int(img_shape[1])
    check_segmentation(seg, (h, w))
    if isinstance(seg, dict):
        counts = seg['counts']
        if isinstance(counts, str):
            counts = counts.encode('ascii')
        if isinstance(counts, bytes):
            rle = dict(size=[h, w], counts=counts)
        else:  # uncompressed run lengths (checked: integers >= 0 adding up to h * w)
            rle = cocomask.frPyObjects(
                dict(size=[h, w], counts=np.asarray(counts, np.int64).tolist()), h, w)
        return cocomask.decode(rle).astype(np.uint8)
    polys = [np.asarray(p, np.float64).tolist() for p in seg if len(p) >= 6]
    if not polys:
        return np.zeros((h, w), np.uint8)
    rles = cocomask.frPyObjects(polys, h, w)
    return cocomask.decode(cocomask.merge(rles)).astype(np.uint8)


@TRANSFORMS.register_module()
class LogoCapGetHeatmapMask(BottomupGetHeatmapMask):
    """``BottomupGetHeatmapMask`` that also masks RLE segmentations (crowd regions).

    Reads ``invalid_segs`` (one segmentation per ignored instance, O frame) and ``img_shape``;
    writes ``heatmap_mask`` ``(H_F, W_F)`` bool, True where the heatmap loss counts. The warp,
    flip, resize and 0.5 threshold are MMPose's. Every segmentation is checked before it
    reaches the COCO mask code (:func:`~.annotation_checks.check_segmentation`); a bad one
    raises a ``ValueError`` naming the image and the segmentation's index.
    """

    def _segs_to_mask(self, segs: list, img_shape: Tuple[int, int]) -> np.ndarray:
        mask = np.zeros((int(img_shape[0]), int(img_shape[1])), np.uint8)
        for i, seg in enumerate(segs):
            if seg is None:
                continue
            try:
                mask |= segmentation_to_mask(seg, img_shape)
            except ValueError as e:
                raise ValueError(f'invalid_segs[{i}]: {e}') from e
        return mask

    def transform(self, results: Dict) -> Optional[dict]:
        try:
            return super().transform(results)
        except ValueError as e:
            raise ValueError(f'{type(self).__name__}: image {results.get("img_id")} '
                             f'({results.get("img_path")}): {e}') from e


def reference_affine_draws(short_side: float, scale_factor: Tuple[float, float],
                           rotate_factor: float, shift_factor: float):
    """One draw of the reference's augmentation from ``np.random`` (the global stream).

    Order and formulas of the reference: ``s = U(min, max)``; ``rot = U(-1, 1) * rotate_factor``
    (degrees); then, with the crop side ``side = short_side * s`` O px, ``dx`` and ``dy``
    (in that order) integers drawn uniformly from ``[trunc(-f * side), trunc(f * side))``
    (0 without a draw when that range is empty).

    Returns:
        tuple: ``(s, rot, (dx, dy))``, floats and an int pair (O pixels).
    """
    lo_s, hi_s = scale_factor
    s = np.random.random() * (hi_s - lo_s) + lo_s
    rot = (np.random.random() * 2 - 1) * rotate_factor
    # the reference's limit: (f * 200) px per 200-px unit of the crop side
    lim = (shift_factor * 200.) * (short_side / 200. * s)
    lo, hi = int(-lim), int(lim)
    if hi > lo:
        dx = int(np.random.randint(lo, hi))
        dy = int(np.random.randint(lo, hi))
    else:
        dx = dy = 0
    return float(s), float(rot), (dx, dy)


@TRANSFORMS.register_module()
class LogoCapRandomAffine(BottomupRandomAffine):
    """``BottomupRandomAffine`` with the reference's draws (see :func:`reference_affine_draws`).

    Args (the others are ``BottomupRandomAffine``'s; ``transform_mode`` must be ``'affine'``,
    the probabilities 1):
        input_size: ``(w, h)`` of the I canvas; must be square (the reference crops squares).
        shift_factor: shift limit as a fraction of the crop side (0.2 in the reference).
        scale_factor: ``(min, max)`` crop scale relative to the short side (0.75, 1.5).
        rotate_factor: rotation limit in degrees (30).
        scale_type: ``'short'`` (the reference's training setting).

    Adds ``warp_mat`` (2, 3) O -> I and ``input_size``, as MMPose does; the crop centre is the
    image centre ``(w / 2, h / 2)`` plus the integer shift.
    """

    def __init__(self,
                 input_size: Tuple[int, int],
                 shift_factor: float = 0.2,
                 scale_factor: Tuple[float, float] = (0.75, 1.5),
                 rotate_factor: float = 30.,
                 scale_type: str = 'short',
                 **kwargs) -> None:
        for key in ('shift_prob', 'scale_prob', 'rotate_prob'):
            if kwargs.get(key, 1.) != 1.:
                raise ValueError(f'LogoCapRandomAffine always applies every draw (as the '
                                 f'reference); {key} must be 1, got {kwargs[key]}')
        if kwargs.get('transform_mode', 'affine') != 'affine':
            raise ValueError("LogoCapRandomAffine supports transform_mode='affine' only, got "
                             f"{kwargs['transform_mode']!r}")
        if kwargs.get('distribution', 'uniform') != 'uniform':
            raise ValueError("LogoCapRandomAffine draws uniformly (distribution='uniform'), "
                             f"got {kwargs['distribution']!r}")
        if scale_type != 'short':
            raise ValueError(f"LogoCapRandomAffine needs scale_type='short' (the reference's "
                             f'training crop), got {scale_type!r}')
        w, h = (int(v) for v in input_size)
        if w != h:
            raise ValueError(f'LogoCapRandomAffine needs a square input_size, got {(w, h)}')
        lo, hi = (float(v) for v in scale_factor)
        if not 0 < lo <= hi:
            raise ValueError(f'scale_factor must be 0 < min <= max, got {scale_factor}')
        if shift_factor < 0 or rotate_factor < 0:
            raise ValueError(f'shift_factor and rotate_factor must be >= 0, got '
                             f'{shift_factor}, {rotate_factor}')
        kwargs.update(distribution='uniform', transform_mode='affine')
        super().__init__(input_size=(w, h), shift_factor=shift_factor,
                         scale_factor=(lo, hi), rotate_factor=rotate_factor,
                         scale_type=scale_type, **kwargs)
        self._img_wh: Optional[Tuple[int, int]] = None

    def _get_transform_params(self) -> Tuple:
        """``(offset_rate (2,), scale_rate (1,), rotate, shear (2,))`` as MMPose expects:
        ``offset_rate * (img_w, img_h)`` is the integer O-px shift."""
        img_w, img_h = self._img_wh
        s, rot, (dx, dy) = reference_affine_draws(min(img_w, img_h), self.scale_factor,
                                                  self.rotate_factor, self.shift_factor)
        offset = np.array([dx / img_w, dy / img_h], dtype=np.float64)
        return offset, np.array([s]), rot, np.zeros(2, np.float32)

    def transform(self, results: Dict) -> Optional[dict]:
        img_h, img_w = results['img_shape'][:2]
        self._img_wh = (int(img_w), int(img_h))
        try:
            return super().transform(results)
        finally:
            self._img_wh = None
