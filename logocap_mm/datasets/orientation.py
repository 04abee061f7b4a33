"""EXIF orientation: one pixel frame for predictions, annotations and drawings.

COCO-style annotations are in the *stored* pixel frame of the JPEG (the reference reads
images with ``IMREAD_IGNORE_ORIENTATION``), so the pipelines of logocap_mm's configs load
images with ``LoadImage(color_type='color_ignore_orientation')``: training targets,
evaluation and inference (``MMPoseInferencer``, ``tools/demo.py``) all work in the stored
frame, also for user photos whose EXIF ``Orientation`` tag asks a viewer to rotate them.

MMPose re-reads image files for drawing (the inferencer's ``visualize`` and
``PoseVisualizationHook``) with the EXIF rotation applied. :class:`LogoCapPoseLocalVisualizer`
(the ``visualizer`` of the configs) swaps such an image for the stored pixels, so that the
keypoints are drawn on the image they were predicted in.
"""
import os.path as osp
from typing import Optional

import mmcv
import numpy as np
from mmpose.registry import VISUALIZERS
from mmpose.visualization import PoseLocalVisualizer

__all__ = ['exif_orientation', 'image_in_prediction_frame', 'LogoCapPoseLocalVisualizer']

_EXIF_ORIENTATION = 0x0112
FRAMES = ('stored', 'exif')


def exif_orientation(path) -> Optional[int]:
    """The EXIF ``Orientation`` tag (1..8) of an image file, None if absent or unreadable
    (only the header is read)."""
    if not isinstance(path, str) or not osp.isfile(path):
        return None
    try:
        from PIL import Image
        with Image.open(path) as im:
            value = im.getexif().get(_EXIF_ORIENTATION)
    except Exception:
        return None
    return int(value) if value is not None else None


def image_in_prediction_frame(image: np.ndarray, metainfo: dict,
                              frame: str = 'stored') -> np.ndarray:
    """The image to draw the predictions of ``metainfo`` on.

    Args:
        image: (H, W, 3) RGB image that MMPose read for drawing (EXIF rotation applied).
        metainfo: the data sample's metainfo (``img_path``; ``ori_shape`` (H_O, W_O), the
            image the pipeline predicted on).
        frame: ``'stored'`` when the test pipeline ignores EXIF orientation (the configs
            of logocap_mm), ``'exif'`` when it applies it (plain ``LoadImage``).

    Returns:
        ``image`` itself, or the file's stored (un-rotated) RGB pixels when the file has an
        EXIF orientation other than 1, ``frame == 'stored'`` and those pixels have the
        predicted image's shape ``ori_shape``.
    """
    if frame not in FRAMES:
        raise ValueError(f'frame must be one of {FRAMES}, got {frame!r}')
    path = metainfo.get('img_path')
    if frame != 'stored' or exif_orientation(path) in (None, 1):
        return image
    # BGR read + explicit conversion: mmcv 2.1's cv2 backend ignores channel_order='rgb'
    # for the *_ignore_orientation flags
    stored = mmcv.imread(path, flag='color_ignore_orientation')
    ori = metainfo.get('ori_shape')
    if stored is None or (ori is not None and tuple(stored.shape[:2]) != tuple(ori)[:2]):
        return image  # the pipeline predicted on another frame: keep MMPose's image
    if not image.any():
        return np.zeros_like(stored)  # black_background
    return mmcv.bgr2rgb(stored)


@VISUALIZERS.register_module()
class LogoCapPoseLocalVisualizer(PoseLocalVisualizer):
    """MMPose's ``PoseLocalVisualizer`` that draws on the image the poses were predicted in.

    Args:
        image_frame (str): ``'stored'`` (default; matches
            ``LoadImage(color_type='color_ignore_orientation')`` in the test pipeline) or
            ``'exif'`` (the test pipeline applies EXIF orientation: draw as MMPose does).
        **kwargs: ``PoseLocalVisualizer`` arguments.
    """

    def __init__(self, name: str = 'visualizer', *args, image_frame: str = 'stored',
                 **kwargs):
        super().__init__(name, *args, **kwargs)
        if image_frame not in FRAMES:
            raise ValueError(f'image_frame must be one of {FRAMES}, got {image_frame!r}')
        self.image_frame = image_frame

    def add_datasample(self, name, image, data_sample, *args, **kwargs):
        image = image_in_prediction_frame(image, data_sample.metainfo, self.image_frame)
        return super().add_datasample(name, image, data_sample, *args, **kwargs)
