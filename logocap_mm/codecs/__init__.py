# Copyright (c) logocap_mm contributors.
"""LOGO-CAP codec (``LogoCapCodec`` in MMPose's KEYPOINT_CODECS) and torch decode helpers."""
from .decode_utils import (centre_offset_poses, find_centers, sample_heatmaps_at_poses,
                           upsample_heatmaps)
from .logocap_codec import LogoCapCodec

__all__ = ['LogoCapCodec', 'upsample_heatmaps', 'find_centers', 'centre_offset_poses',
           'sample_heatmaps_at_poses']
