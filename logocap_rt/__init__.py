"""logocap_rt: the torch-free LOGO-CAP runtime.

Runs a model exported by ``tools/deploy/export_onnx.py`` with numpy, OpenCV and ONNX
Runtime only. Importing it imports none of torch, mmengine, mmcv, mmpose or the
``logocap_mm`` plugin, whether or not they are installed, so a deployment machine needs
only ``pip install logocap-mm[runtime]``.

* :class:`LogoCapONNX`: ``LogoCapONNX(path)(image)`` -> instances in the original image;
* :mod:`.geometry`: the test canvas (shared with the MMPose pipeline's ``LogoCapResize``);
* :mod:`.pixels`: the image-array rules (shared with the MMPose pipeline);
* :mod:`.metadata`: the facts an exported file carries, and their checks;
* :mod:`.postprocess`: pose NMS, people cap, instances; :mod:`.draw`: drawings;
* :mod:`.images`: image reading with a pixel limit checked from the file header;
* :mod:`.outputs`: the rules every tool follows when it writes (names, refusals, atomic
  writes); :mod:`.video`: the shared video loop; :mod:`.deps`: missing-extra messages.
"""
from .draw import draw_instances
from .metadata import decode as read_metadata
from .model import LogoCapONNX, preprocess, read_image
from .postprocess import finalize, pose_nms, to_instances

__version__ = '0.1.0'

__all__ = ['LogoCapONNX', 'read_image', 'preprocess', 'read_metadata', 'pose_nms', 'finalize',
           'to_instances', 'draw_instances', '__version__']
