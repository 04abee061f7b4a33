"""Torch-free runtime pieces of logocap_mm (numpy, scipy and OpenCV only).

* :mod:`.tracking`: :class:`PoseTracker`, identities of poses across video frames;
* :mod:`.smoothing`: a vectorised One-Euro filter for keypoint trajectories.
"""
from .smoothing import OneEuroFilter
from .tracking import PoseTracker, TrackerConfig, oks_matrix

__all__ = ['OneEuroFilter', 'PoseTracker', 'TrackerConfig', 'oks_matrix']
