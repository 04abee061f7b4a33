"""MMPose's COCO-style datasets with up-front checks of the annotation file.

``LogoCapCocoDataset``, ``LogoCapCrowdPoseDataset`` and ``LogoCapOCHumanDataset`` are
MMPose's ``CocoDataset`` / ``CrowdPoseDataset`` / ``OCHumanDataset`` (same metainfo, so
``CocoMetric`` and its COCO / CrowdPose / OCHuman settings work unchanged) that refuse, with
the annotation file named:

* a training annotation file without an ``annotations`` list, or with no person
  annotation at all (MMPose / mmengine fail with "need at least one array to
  concatenate"); test-mode files without annotations (image lists) are accepted;
* an annotation whose ``keypoints`` list is not ``3 * K`` long for the dataset's K
  (e.g. 14-keypoint CrowdPose annotations under a 17-keypoint COCO config, an IndexError
  deep inside MMPose's transforms otherwise);
* an annotation with NaN / infinite ``keypoints``, ``bbox`` or ``area`` (a ``bbox`` must be
  4 numbers), naming the file, image id, annotation id and field;
* in training mode, a ``segmentation`` that the COCO mask code cannot rasterise safely
  (:func:`~.annotation_checks.check_segmentation`: RLE runs that are negative, not integers
  or do not add up to ``H * W``, an unreadable compressed string, a polygon with an odd
  number of coordinates, NaN / inf or far-away points), naming the file, image id and
  annotation id;
* in training mode, an image with more than ``max_people_per_image`` person annotations
  (default 500; ``None``: no limit), naming the image id and the count: every person of a
  training image becomes a slot of the per-image target and matching tensors.

Annotations that MMPose trains in a way that may not be intended give one warning per
dataset with their count (training mode) and are kept as they are:

* ``num_keypoints: 0`` on a person with labelled keypoints: the region of such a person is
  masked out of the heatmap loss (MMPose's and the reference's rule, which read
  ``num_keypoints``) while its keypoints are still drawn as targets;
* a labelled, non-crowd person whose box has zero width or height (after MMPose clips it to
  the image): MMPose masks its segmentation as well.
"""
import warnings
from collections import Counter

import numpy as np
from mmpose.datasets.datasets.body import (CocoDataset, CrowdPoseDataset,
                                           OCHumanDataset)
from mmpose.registry import DATASETS

from .annotation_checks import check_segmentation

__all__ = ['LogoCapCocoDataset', 'LogoCapCrowdPoseDataset', 'LogoCapOCHumanDataset']


class _AnnotationChecks:
    """Mixin for ``BaseCocoStyleDataset`` subclasses (see the module docstring).

    Args:
        max_people_per_image (int | None): training images with more person annotations
            (entries with ``bbox`` and ``keypoints``, crowd regions included) are refused.
            Defaults to 500. ``None`` switches the check off.
    """

    def __init__(self, *args, max_people_per_image=500, **kwargs):
        if max_people_per_image is not None and (
                isinstance(max_people_per_image, bool) or
                not isinstance(max_people_per_image, (int, np.integer)) or
                max_people_per_image < 1):
            raise ValueError(f'{type(self).__name__}: max_people_per_image must be a positive '
                             f'int or None, got {max_people_per_image!r}')
        self.max_people_per_image = max_people_per_image
        super().__init__(*args, **kwargs)

    def _load_annotations(self):
        self._odd = Counter()
        instance_list, image_list = super()._load_annotations()
        if not self.test_mode:
            raw = getattr(self, 'coco', None)
            keys = sorted(raw.dataset) if raw is not None else []
            if raw is not None and 'annotations' not in raw.dataset:
                raise ValueError(
                    f'{type(self).__name__}: annotation file {self.ann_file} has no '
                    f'"annotations" list (top-level keys: {keys}); a training set needs '
                    'COCO-style person annotations with "keypoints"')
            if not instance_list:
                raise ValueError(
                    f'{type(self).__name__}: annotation file {self.ann_file} has no usable '
                    'person annotation (each needs "bbox" and "keypoints"); nothing to '
                    'train on')
            self._check_people_per_image(instance_list)
            self._warn_odd()
        return instance_list, image_list

    def _check_people_per_image(self, instance_list):
        cap = self.max_people_per_image
        if cap is None:
            return
        counts = Counter(d['img_id'] for d in instance_list)
        img_id, n = max(counts.items(), key=lambda kv: kv[1])
        if n > cap:
            over = sum(1 for v in counts.values() if v > cap)
            raise ValueError(
                f'{type(self).__name__}: annotation file {self.ann_file}: image {img_id} has '
                f'{n} person annotations, more than max_people_per_image={cap} '
                f'({over} image(s) above it). Every person of a training image is a slot of '
                'the per-image target and matching tensors; remove or merge such '
                'annotations (e.g. into one iscrowd region), or raise max_people_per_image '
                'in the dataset config')

    def _warn_odd(self):
        odd = self._odd
        if odd['num_keypoints']:
            warnings.warn(
                f'{type(self).__name__}: annotation file {self.ann_file}: '
                f'{odd["num_keypoints"]} annotation(s) have "num_keypoints": 0 but labelled '
                f'keypoints (e.g. annotation id {odd["num_keypoints_id"]}); as in MMPose and '
                'the reference, their region is masked out of the heatmap loss while their '
                'keypoints are still drawn as targets. Set num_keypoints to the number of '
                'labelled keypoints to train them normally.', UserWarning, stacklevel=2)
        if odd['empty_box']:
            warnings.warn(
                f'{type(self).__name__}: annotation file {self.ann_file}: '
                f'{odd["empty_box"]} labelled person(s) have a box of zero width or height '
                f'inside the image (e.g. annotation id {odd["empty_box_id"]}); MMPose masks '
                'their segmentation out of the heatmap loss while their keypoints are still '
                'drawn as targets.', UserWarning, stacklevel=2)

    def _where(self, ann):
        return (f'{type(self).__name__}: annotation file {self.ann_file}: annotation id '
                f'{ann.get("id")} (image {ann.get("image_id")})')

    def _check_values(self, ann, img):
        """NaN / inf keypoints, bbox, area; the segmentation (training mode)."""
        for field in ('keypoints', 'bbox', 'area'):
            if field not in ann:
                continue
            try:
                v = np.asarray(ann[field], dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(f'{self._where(ann)}: "{field}" must hold numbers only')
            if field == 'bbox' and v.shape != (4, ):
                raise ValueError(f'{self._where(ann)}: "bbox" must be [x, y, w, h], got '
                                 f'{ann[field]!r}')
            if not np.isfinite(v).all():
                raise ValueError(f'{self._where(ann)}: "{field}" has NaN or infinite values')
        if self.test_mode:
            return
        try:
            check_segmentation(ann.get('segmentation'), (img['height'], img['width']))
        except ValueError as e:
            raise ValueError(f'{self._where(ann)}: bad "segmentation": {e}') from e

    def _count_odd(self, info):
        """Counts for the warnings of :meth:`_warn_odd` (training mode)."""
        if self.test_mode or info.get('iscrowd', 0):
            return
        if not np.max(info['keypoints_visible'], initial=0) > 0:
            return
        aid = info.get('id')
        if info.get('num_keypoints', 1) == 0:
            self._odd['num_keypoints'] += 1
            self._odd.setdefault('num_keypoints_id', aid)
        w, h = info['bbox'][0, 2:4] - info['bbox'][0, :2]
        if w <= 0 or h <= 0:
            self._odd['empty_box'] += 1
            self._odd.setdefault('empty_box_id', aid)

    def parse_data_info(self, raw_data_info):
        ann = raw_data_info['raw_ann_info']
        if 'keypoints' in ann and 'bbox' in ann:
            k = int(self._metainfo['num_keypoints'])
            n = len(ann['keypoints'])
            if n != 3 * k:
                name = self._metainfo.get('dataset_name', type(self).__name__)
                raise ValueError(
                    f'{type(self).__name__}: annotation file {self.ann_file}: annotation id '
                    f'{ann.get("id")} (image {ann.get("image_id")}) has {n} keypoint values '
                    f'({n / 3:g} keypoints), but the dataset metainfo ({name}) has {k} '
                    f'keypoints ({3 * k} values). Use a config for this dataset (e.g. '
                    'configs/logocap/w32_crowdpose.py for 14-keypoint CrowdPose)')
            self._check_values(ann, raw_data_info['raw_img_info'])
        info = super().parse_data_info(raw_data_info)
        if info:
            self._count_odd(info)
        return info


@DATASETS.register_module()
class LogoCapCocoDataset(_AnnotationChecks, CocoDataset):
    """MMPose ``CocoDataset`` with the annotation checks of this module."""


@DATASETS.register_module()
class LogoCapCrowdPoseDataset(_AnnotationChecks, CrowdPoseDataset):
    """MMPose ``CrowdPoseDataset`` with the annotation checks of this module."""


@DATASETS.register_module()
class LogoCapOCHumanDataset(_AnnotationChecks, OCHumanDataset):
    """MMPose ``OCHumanDataset`` with the annotation checks of this module."""
