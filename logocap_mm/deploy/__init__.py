"""Export of LOGO-CAP models as one ONNX graph (torch and MMPose side).

* :mod:`.export`: ``export_onnx`` writes the whole test-time model (network, flip test,
  decoder up to padded poses) with its facts in the metadata.

Inference from such a file lives in the torch-free runtime package :mod:`logocap_rt`
(numpy, OpenCV and ONNX Runtime / OpenVINO only). The names below are re-exported from it
for older imports; new code should import :mod:`logocap_rt` directly, which does not
register the MMPose plugin (importing anything under ``logocap_mm`` does).
"""
from logocap_rt import (LogoCapONNX, draw_instances, finalize, pose_nms, preprocess,
                        read_image, read_metadata, to_instances)

__all__ = ['LogoCapONNX', 'read_image', 'preprocess', 'read_metadata', 'pose_nms', 'finalize',
           'to_instances', 'draw_instances']
