"""Deployment of LOGO-CAP models as one ONNX graph.

* :mod:`.export` (needs torch and MMPose): ``export_onnx`` writes the whole test-time model
  (network, flip test, decoder up to padded poses) with its facts in the metadata;
* :class:`LogoCapONNX` (numpy, OpenCV and onnxruntime only): inference from such a file.

Importing this package imports nothing heavy: the runtime works where torch, mmcv, mmengine
and mmpose are not installed.
"""
from .draw import draw_instances
from .metadata import decode as read_metadata
from .postprocess import finalize, pose_nms, to_instances
from .runtime import LogoCapONNX, preprocess, read_image

__all__ = ['LogoCapONNX', 'read_image', 'preprocess', 'read_metadata', 'pose_nms', 'finalize',
           'to_instances', 'draw_instances']
