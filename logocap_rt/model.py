"""LOGO-CAP inference from an exported ONNX file with ONNX Runtime or OpenVINO (numpy,
OpenCV and the engine only: no torch, mmcv, mmengine or mmpose).

Per image: the reference test canvas (:func:`logocap_rt.geometry.resize_to_canvas`,
the same code as ``LogoCapResize``), normalisation, one engine run (:mod:`.backends`;
network, flip test, decoder: padded ``(T, K, 2)`` keypoints in I; a batch-N file runs N
canvases of one size at once), pose NMS and people cap
(:mod:`.postprocess`), and the mapping to the original image as MMPose's bottom-up
estimator does it.
"""
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from .backends import make_backend
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
    ``predict(images)``: the same for a list of images; a file exported with
    ``--batch-size N`` runs N canvases of one size per run (a group with fewer is filled up
    with copies of its last canvas, whose results are dropped); ``predict(images,
    workers=W)`` keeps W runs in flight at once (threads).

    Args:
        path: the ``.onnx`` file written by ``tools/deploy/export_onnx.py`` (fp32 or INT8).
        providers: ONNX Runtime execution providers (default: CPU).
        num_threads: intra-op threads (None: the engine's default).
        backend: 'onnxruntime' (default) or 'openvino' (:mod:`.backends`; OpenVINO reads
            the same file).

    Raises:
        ValueError: the file is not a logocap_mm export (no or incomplete metadata, or
            inputs / outputs of another model), or the backend is unknown or not installed.
    """

    def __init__(self, path: str, providers=('CPUExecutionProvider',),
                 num_threads: Optional[int] = None, backend: str = 'onnxruntime'):
        self.engine = make_backend(path, backend, num_threads, providers)
        self.backend, self.num_threads = backend, num_threads
        self.session = getattr(self.engine, 'session', None)  # the ORT session, if any
        self.meta = decode(self.engine.metadata, path)
        self.batch_size = int(self.meta.get('batch_size', 1))
        self._check_signature(path)
        self.path = path

    def _check_signature(self, path: str) -> None:
        eng = self.engine
        ins, outs = eng.input_names, eng.output_names
        K, T = self.meta['num_keypoints'], self.meta['topk']
        if len(ins) != 1 or ins[0] != INPUT_NAME or eng.input_ranks[0] != 4 or \
                tuple(outs) != OUTPUT_NAMES:
            raise ValueError(
                f'{path}: inputs {ins} / outputs {outs} are not those of a '
                f'logocap_mm export ({INPUT_NAME!r} -> {list(OUTPUT_NAMES)})')
        shp = eng.output_shapes[0]
        N = self.batch_size
        want = [N, T, K, 2] if N > 1 else [T, K, 2]
        # a dimension the graph leaves symbolic (None) is checked on the outputs at run time
        if len(shp) != len(want) or any(d is not None and d != w for d, w in zip(shp, want)):
            raise ValueError(f'{path}: output keypoints has shape {shp}, the metadata says '
                             f'{tuple(want)}')

    # ------------------------------------------------------------------ steps
    def preprocess(self, img: np.ndarray, name: str = '<array>'):
        """BGR image -> ((1, 3, H_I, W_I) float32 network input, canvas meta)."""
        return preprocess(img, self.meta, name)

    def run(self, x: np.ndarray) -> Dict[str, np.ndarray]:
        """(B, 3, H, W) float32 canvases of one size -> the padded outputs with a leading
        B axis (keypoints (B, T, K, 2) I, keypoint_scores (B, T, K), scores (B, T), valid
        (B, T)), in runs of the file's batch size N (the last one filled up)."""
        if x.ndim != 4 or x.shape[1] != 3 or len(x) < 1:
            raise ValueError(f'network input must be (B, 3, H, W), B >= 1, got {x.shape}')
        N, B = self.batch_size, len(x)
        outs = []
        for i in range(0, B, N):
            xi = x[i:i + N]
            if len(xi) < N:
                xi = np.concatenate([xi, np.repeat(xi[-1:], N - len(xi), 0)])
            o = self.engine.run(np.ascontiguousarray(xi))
            T, K = self.meta['topk'], self.meta['num_keypoints']
            if tuple(o[0].shape[-3:]) != (T, K, 2):
                raise ValueError(f'{self.path}: the graph returned keypoints of shape '
                                 f'{o[0].shape}, the metadata says (..., {T}, {K}, 2)')
            outs.append([v[None] if N == 1 else v for v in o])
        return {k: np.concatenate([o[j] for o in outs])[:B]
                for j, k in enumerate(OUTPUT_NAMES)}

    def _load(self, image, index: int = 0):
        if isinstance(image, (str, os.PathLike)):
            name = str(image)
            image = read_image(name)
        elif isinstance(image, np.ndarray):
            name = f'<array {index}>'
        else:
            raise ValueError(f'image must be a path or a numpy array, got '
                             f'{type(image).__name__}')
        if image.ndim not in (2, 3):
            raise ValueError(f'image {name} must be (H, W[, C]), got shape {image.shape}')
        return image, name

    def _finish(self, out: Dict[str, np.ndarray], cmeta: Dict) -> List[Dict]:
        det = finalize(out['keypoints'], out['keypoint_scores'], out['scores'],
                       out['valid'], self.meta)
        return to_instances(det, cmeta)

    def __call__(self, image: Union[str, np.ndarray]) -> List[Dict]:
        image, name = self._load(image)
        x, cmeta = self.preprocess(image, name)
        out = self.run(x)
        return self._finish({k: v[0] for k, v in out.items()}, cmeta)

    def predict(self, images: Sequence[Union[str, np.ndarray]],
                batch_size: Optional[int] = None, workers: int = 1) -> List[List[Dict]]:
        """Instances of each image (input order), as single calls give them.

        Images whose canvases have the same size are run together, ``batch_size`` at a time
        (default: the file's batch size N; runs hold N canvases). ``workers`` > 1 keeps that
        many runs in flight at once, in threads (the engines release the GIL while they
        run; each run uses the engine's ``num_threads``, so give the model
        ``num_threads = cores // workers``). Images are read and preprocessed in the
        calling thread, at most ``2 * workers`` runs ahead of the results.
        """
        batch_size = self.batch_size if batch_size is None else batch_size
        for name, v in (('batch_size', batch_size), ('workers', workers)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f'{name} must be a positive int, got {v!r}')
        results: List[Optional[List[Dict]]] = [None] * len(images)
        groups: Dict[tuple, list] = {}
        pool = ThreadPoolExecutor(workers) if workers > 1 else None
        pending: deque = deque()

        def work(items):
            out = self.run(np.concatenate([it[1] for it in items]))
            return [(i, self._finish({k: v[j] for k, v in out.items()}, cmeta))
                    for j, (i, _, cmeta) in enumerate(items)]

        def collect(done):
            for i, inst in done:
                results[i] = inst

        def flush(key):
            items = groups.pop(key)
            if pool is None:
                return collect(work(items))
            pending.append(pool.submit(work, items))
            while len(pending) > 2 * workers:
                collect(pending.popleft().result())

        try:
            for i, image in enumerate(images):
                image, name = self._load(image, i)
                x, cmeta = self.preprocess(image, name)
                key = x.shape[2:]
                groups.setdefault(key, []).append((i, x, cmeta))
                if len(groups[key]) >= batch_size:
                    flush(key)
            for key in list(groups):
                flush(key)
            while pending:
                collect(pending.popleft().result())
        finally:
            if pool is not None:
                for f in pending:
                    f.cancel()
                pool.shutdown(wait=True)
        return results
