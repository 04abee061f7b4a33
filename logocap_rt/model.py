"""LOGO-CAP inference from an exported ONNX file with ONNX Runtime (numpy, OpenCV and
onnxruntime only: no torch, mmcv, mmengine or mmpose).

Per image: the reference test canvas (:func:`logocap_rt.geometry.resize_to_canvas`,
the same code as ``LogoCapResize``), normalisation, one ONNX Runtime run (network, flip
test, decoder: padded ``(T, K, 2)`` keypoints in I), pose NMS and people cap
(:mod:`.postprocess`), and the mapping to the original image as MMPose's bottom-up
estimator does it.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Union

import numpy as np

from .deps import require
from .geometry import resize_to_canvas
from .images import read_image
from .metadata import INPUT_NAME, OUTPUT_NAMES, decode
from .postprocess import finalize, to_instances

__all__ = ['LogoCapONNX', 'read_image', 'preprocess']


def preprocess(img: np.ndarray, meta: Dict, name: str = '<array>'):
    """The test pipeline of the exported model on one image, in numpy.

    ``LogoCapResize`` (the shared :func:`resize_to_canvas`), then MMPose's data
    preprocessor: channel swap (``bgr_to_rgb``), float32, ``(x - mean) / std``.

    Args:
        img: (H, W[, C]) image, OpenCV channel order; meta: the model facts.

    Returns:
        ((1, 3, H_I, W_I) float32, canvas meta of :func:`resize_to_canvas`).
    """
    canvas, cmeta, _ = resize_to_canvas(img, meta['input_size'], meta['size_factor'],
                                        meta['round_mode'], meta['max_long_side'],
                                        meta['min_side'], meta['pad_val'], name)
    x = canvas[..., ::-1] if meta['bgr_to_rgb'] else canvas
    mean = np.array(meta['mean'], np.float32).reshape(1, 1, 3)
    std = np.array(meta['std'], np.float32).reshape(1, 1, 3)
    x = (x.astype(np.float32) - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), cmeta


class LogoCapONNX:
    """An exported LOGO-CAP model.

    ``LogoCapONNX(path)(image)`` -> list of instances (``keypoints`` K x [x, y] in the
    original image, ``keypoint_scores``, ``bbox`` [[x1, y1, x2, y2]], ``bbox_score``), the
    format of MMPoseInferencer's ``pred_out_dir`` JSON. ``image``: a file path or an
    (H, W[, C]) array in OpenCV's BGR order (uint8, uint16 or float32 in [0, 255]).

    Args:
        path: the ``.onnx`` file written by ``tools/deploy/export_onnx.py``.
        providers: ONNX Runtime execution providers (default: CPU).
        num_threads: intra-op threads (None: ONNX Runtime's default).

    Raises:
        ValueError: the file is not a logocap_mm export (no or incomplete metadata, or
            inputs / outputs of another model).
    """

    def __init__(self, path: str, providers=('CPUExecutionProvider',),
                 num_threads: Optional[int] = None):
        ort = require('onnxruntime', 'runtime', 'to run an exported .onnx file')
        if not osp.isfile(path):
            raise ValueError(f'ONNX file {path} does not exist')
        so = ort.SessionOptions()
        if num_threads:
            so.intra_op_num_threads = int(num_threads)
        try:
            self.session = ort.InferenceSession(path, so, providers=list(providers))
        except Exception as e:  # noqa: BLE001  (ORT raises its own exception types)
            raise ValueError(f'{path}: ONNX Runtime cannot load it: {e}') from None
        props = self.session.get_modelmeta().custom_metadata_map
        self.meta = decode(props, path)
        self._check_signature(path)
        self.path = path

    def _check_signature(self, path: str) -> None:
        ins = self.session.get_inputs()
        outs = [o.name for o in self.session.get_outputs()]
        K, T = self.meta['num_keypoints'], self.meta['topk']
        if len(ins) != 1 or ins[0].name != INPUT_NAME or len(ins[0].shape) != 4 or \
                tuple(outs) != OUTPUT_NAMES:
            raise ValueError(
                f'{path}: inputs {[i.name for i in ins]} / outputs {outs} are not those of a '
                f'logocap_mm export ({INPUT_NAME!r} -> {list(OUTPUT_NAMES)})')
        shp = self.session.get_outputs()[0].shape
        if list(shp) != [T, K, 2]:
            raise ValueError(f'{path}: output keypoints has shape {shp}, the metadata says '
                             f'({T}, {K}, 2)')

    # ------------------------------------------------------------------ steps
    def preprocess(self, img: np.ndarray, name: str = '<array>'):
        """BGR image -> ((1, 3, H_I, W_I) float32 network input, canvas meta)."""
        return preprocess(img, self.meta, name)

    def run(self, x: np.ndarray) -> Dict[str, np.ndarray]:
        """(1, 3, H, W) float32 -> the padded outputs (keypoints (T, K, 2) I, ...)."""
        return dict(zip(OUTPUT_NAMES, self.session.run(None, {INPUT_NAME: x})))

    def __call__(self, image: Union[str, np.ndarray]) -> List[Dict]:
        if isinstance(image, (str, os.PathLike)):
            name = str(image)
            image = read_image(name)
        elif isinstance(image, np.ndarray):
            name = '<array>'
        else:
            raise ValueError(f'image must be a path or a numpy array, got '
                             f'{type(image).__name__}')
        if image.ndim not in (2, 3):
            raise ValueError(f'image {name} must be (H, W[, C]), got shape {image.shape}')
        x, cmeta = self.preprocess(image, name)
        out = self.run(x)
        det = finalize(out['keypoints'], out['keypoint_scores'], out['scores'],
                       out['valid'], self.meta)
        return to_instances(det, cmeta)
