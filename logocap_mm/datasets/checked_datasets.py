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
  deep inside MMPose's transforms otherwise).
"""
from mmpose.datasets.datasets.body import (CocoDataset, CrowdPoseDataset,
                                           OCHumanDataset)
from mmpose.registry import DATASETS

__all__ = ['LogoCapCocoDataset', 'LogoCapCrowdPoseDataset', 'LogoCapOCHumanDataset']


class _AnnotationChecks:
    """Mixin for ``BaseCocoStyleDataset`` subclasses (see the module docstring)."""

    def _load_annotations(self):
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
        return instance_list, image_list

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
        return super().parse_data_info(raw_data_info)


@DATASETS.register_module()
class LogoCapCocoDataset(_AnnotationChecks, CocoDataset):
    """MMPose ``CocoDataset`` with the annotation checks of this module."""


@DATASETS.register_module()
class LogoCapCrowdPoseDataset(_AnnotationChecks, CrowdPoseDataset):
    """MMPose ``CrowdPoseDataset`` with the annotation checks of this module."""


@DATASETS.register_module()
class LogoCapOCHumanDataset(_AnnotationChecks, OCHumanDataset):
    """MMPose ``OCHumanDataset`` with the annotation checks of this module."""
