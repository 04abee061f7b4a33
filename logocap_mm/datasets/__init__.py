"""Dataset-side modules of logocap_mm (registered in MMPose's ``TRANSFORMS`` / ``DATASETS`` /
``VISUALIZERS``)."""
from .checked_datasets import (LogoCapCocoDataset, LogoCapCrowdPoseDataset,
                               LogoCapOCHumanDataset)
from logocap_rt.pixels import to_network_dtype
from .orientation import (LogoCapPoseLocalVisualizer, exif_orientation,
                          image_in_prediction_frame)
from .train_transforms import (LogoCapGetHeatmapMask, LogoCapRandomAffine,
                               reference_affine_draws, segmentation_to_mask)
from .transforms import (LogoCapResize, fit_long_side_params, reference_resize_params,
                         reference_warp_matrix)

__all__ = ['LogoCapResize', 'LogoCapGetHeatmapMask', 'LogoCapRandomAffine',
           'reference_affine_draws', 'segmentation_to_mask', 'reference_resize_params',
           'reference_warp_matrix',           'fit_long_side_params', 'to_network_dtype', 'LogoCapCocoDataset',
           'LogoCapCrowdPoseDataset', 'LogoCapOCHumanDataset', 'LogoCapPoseLocalVisualizer',
           'exif_orientation', 'image_in_prediction_frame']
