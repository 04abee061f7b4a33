"""Inference engines behind :class:`logocap_rt.LogoCapONNX`: one small interface.

A backend loads an exported ``.onnx`` file and offers

* ``metadata``: the file's ``metadata_props`` as ``{key: str}``;
* ``input_names`` / ``input_ranks``, ``output_names`` / ``output_shapes`` (ints, or None
  for a dynamic size): the graph's signature;
* ``run(x)``: ``(B, 3, H, W)`` float32 -> the outputs as numpy arrays, in graph order.
  Both engines' ``run`` may be called from several threads at once (ONNX Runtime's
  ``InferenceSession.run`` is thread-safe; OpenVINO gets one infer request per thread).

``'onnxruntime'`` (:class:`OrtBackend`) and ``'openvino'`` (:class:`OpenVINOBackend`, which
reads the same ``.onnx`` through OpenVINO's ONNX frontend) are imported only when chosen,
so each needs only its own engine installed.
"""
import os.path as osp
import threading
from typing import Dict, List, Optional, Sequence

import numpy as np

from .deps import require

__all__ = ['BACKENDS', 'make_backend', 'OrtBackend', 'OpenVINOBackend']

BACKENDS = ('onnxruntime', 'openvino')


def make_backend(path: str, backend: str = 'onnxruntime', num_threads: Optional[int] = None,
                 providers: Sequence[str] = ('CPUExecutionProvider',)):
    """Load ``path`` with the engine ``backend`` ('onnxruntime' | 'openvino').

    Raises:
        ValueError: unknown backend, engine not installed, missing file or a file the
            engine cannot load.
    """
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
    if num_threads is not None and (isinstance(num_threads, bool) or
                                    not isinstance(num_threads, int) or num_threads < 1):
        raise ValueError(f'num_threads must be a positive int or None, got {num_threads!r}')
    if not osp.isfile(path):
        raise ValueError(f'ONNX file {path} does not exist')
    if backend == 'openvino':
        return OpenVINOBackend(path, num_threads)
    return OrtBackend(path, num_threads, providers)


class OrtBackend:
    """ONNX Runtime ``InferenceSession`` (intra-op threads ``num_threads``)."""
    name = 'onnxruntime'

    def __init__(self, path: str, num_threads: Optional[int] = None,
                 providers: Sequence[str] = ('CPUExecutionProvider',)):
        ort = require('onnxruntime', 'runtime', 'to run an exported .onnx file')
        so = ort.SessionOptions()
        if num_threads:
            so.intra_op_num_threads = int(num_threads)
        try:
            self.session = ort.InferenceSession(path, so, providers=list(providers))
        except Exception as e:  # noqa: BLE001  (ORT raises its own exception types)
            raise ValueError(f'{path}: ONNX Runtime cannot load it: {e}') from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        ins, outs = self.session.get_inputs(), self.session.get_outputs()
        self.input_names = [i.name for i in ins]
        self.input_ranks = [len(i.shape) for i in ins]
        self.output_names = [o.name for o in outs]
        self.output_shapes = [[d if isinstance(d, int) else None for d in o.shape]
                              for o in outs]

    def run(self, x: np.ndarray) -> List[np.ndarray]:
        return self.session.run(None, {self.input_names[0]: x})


class OpenVINOBackend:
    """OpenVINO's CPU plugin on the same ``.onnx``, float32 inference precision
    (``INFERENCE_NUM_THREADS`` = ``num_threads``)."""
    name = 'openvino'

    def __init__(self, path: str, num_threads: Optional[int] = None, device: str = 'CPU'):
        ov = require('openvino', 'openvino', "for backend='openvino'")
        core = ov.Core()
        try:
            model = core.read_model(path)
            # f32: the CPU plugin would otherwise run in bf16 where the CPU has it
            cfg = {'INFERENCE_PRECISION_HINT': 'f32'}
            if num_threads:
                cfg['INFERENCE_NUM_THREADS'] = int(num_threads)
            self.compiled = core.compile_model(model, device, cfg)
        except Exception as e:  # noqa: BLE001  (OpenVINO raises RuntimeError subclasses)
            raise ValueError(f'{path}: OpenVINO cannot load it: {e}') from None
        self.metadata = self._metadata(model)
        self.input_names = [i.get_any_name() for i in model.inputs]
        self.input_ranks = [i.get_partial_shape().rank.get_length() for i in model.inputs]
        self.output_names = [o.get_any_name() for o in model.outputs]
        self.output_shapes = [[d.get_length() if d.is_static else None
                               for d in o.get_partial_shape()] for o in model.outputs]
        self._local = threading.local()  # one infer request per calling thread

    @staticmethod
    def _metadata(model) -> Dict[str, str]:
        """ONNX ``metadata_props``: OpenVINO keeps them under rt_info['framework']."""
        if not model.has_rt_info(['framework']):
            return {}
        fw = model.get_rt_info(['framework']).astype(dict)
        return {k: v.astype(str) for k, v in fw.items()}

    @property
    def request(self):
        """The calling thread's infer request (a request runs one inference at a time)."""
        req = getattr(self._local, 'request', None)
        if req is None:
            req = self._local.request = self.compiled.create_infer_request()
        return req

    def run(self, x: np.ndarray) -> List[np.ndarray]:
        res = self.request.infer({0: x})
        # copies: the request's output tensors are reused by the next run
        return [np.array(res[o]) for o in self.compiled.outputs]
