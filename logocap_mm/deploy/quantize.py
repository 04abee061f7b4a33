"""Static INT8 quantisation of an exported LOGO-CAP graph (the network only).

:func:`quantize_int8` turns an fp32 export (:mod:`.export`) into an INT8 one with
``onnxruntime.quantization.quantize_static`` (QDQ format, per-channel int8 weights, uint8
activations, min-max calibration): the network (backbone, neck, the head's heatmap /
offset / embedding layers; by default the CMP's first convolution, ``cmp``) is quantised; the decoder
(upsampling, centre NMS and top-k, offsets, KEM sampling, windows, the KAM convolution with
runtime weights, top-2, scores) stays float32. The calibration images go through the
runtime's own preprocessing (:func:`logocap_rt.preprocess`: ``LogoCapResize`` canvas and
normalisation). The metadata of the fp32 file is kept, with ``precision`` = ``'int8'``.

The nodes are told apart by the module scope the exporter records on each node
(``pkg.torch.onnx.name_scopes``): needs onnx and onnxruntime, not torch.
"""
import ast
import os
import os.path as osp
import tempfile
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np

__all__ = ['network_nodes', 'calibration_images', 'quantize_int8', 'DECODER_SCOPES']

# module scopes (below the exported module's ``model.``) that belong to the decoder
DECODER_SCOPES = ('model.head.global_adaptation', 'model.head.local_adaptation',
                  'model.head.pose_decoder')
CMP_SCOPE = 'model.head.local_adaptation.cmp'
IMG_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')


def _scopes(node) -> List[str]:
    for p in node.metadata_props:
        if p.key == 'pkg.torch.onnx.name_scopes':
            try:
                return [s for s in ast.literal_eval(p.value) if s]
            except (ValueError, SyntaxError):
                return []
    return []


def network_nodes(model, cmp: Union[bool, int] = True) -> List[str]:
    """Names of the nodes to quantise in an exported graph (``onnx.ModelProto``).

    ``cmp=False`` (or 0) keeps the whole CMP (the local KAMs) in float32; an int N quantises
    its first N convolutions (graph order; the largest is the first, K*D -> C1 channels).

    The network: every node inside ``model.backbone``, ``model.neck`` and the head's own
    layers (``model.head.*`` other than the adaptation modules and the decoder), plus the
    ``Conv`` nodes of the CMP (``model.head.local_adaptation.cmp``). Not quantised: the
    network's last layers (those read only by the decoder: the heatmap, offset and
    embedding outputs and the CMP's KAMs stay float32), nodes outside any module (flip
    merge, upsampling, centre NMS, top-k, offsets, scores) and the rest of the adaptation
    modules (KEM sampling, the CMP's normalisation and attention products, windows, the
    KAM convolution, top-2).

    Raises:
        ValueError: the graph has no module scopes (not a logocap_mm export, or one whose
            node metadata was stripped) or no network node.
    """
    with_cmp = cmp
    names, cmp, cmp_all, scoped = [], [], set(), 0
    for node in model.graph.node:
        sc = _scopes(node)
        scoped += bool(sc)
        mods = [s for s in sc if s.startswith('model.')]
        if not mods:
            continue
        if any(m == CMP_SCOPE or m.startswith(CMP_SCOPE + '.') for m in mods):
            cmp_all.add(node.name)
            if node.op_type == 'Conv':
                cmp.append(node.name)
            continue
        if any(m == d or m.startswith(d + '.') for m in mods for d in DECODER_SCOPES):
            continue
        names.append(node.name)
    if not scoped or not names:
        raise ValueError('the graph has no module scopes on its nodes (node metadata '
                         '"pkg.torch.onnx.name_scopes"): quantise a file written by '
                         'tools/deploy/export_onnx.py, before any other tool rewrote it')
    # the network's last layers (read only by the decoder) stay float32: heatmaps, offsets
    # and embedding leave the network unrounded (the offsets span tens of pixels: 8 bits
    # would move every pose by a fraction of a cell)
    net = set(names)
    users: Dict[str, List[str]] = {}
    for node in model.graph.node:
        for t in node.input:
            users.setdefault(t, []).append(node.name)
    graph_outputs = {o.name for o in model.graph.output}
    last = {n.name for n in model.graph.node if n.name in net and
            not any(u in net for t in n.output for u in users.get(t, ())) and
            not any(t in graph_outputs for t in n.output)}
    # likewise the CMP's last convolution (its KAMs are the KAM convolution's weights)
    last |= {n.name for n in model.graph.node if n.name in cmp and
             any(u not in cmp_all for t in n.output for u in users.get(t, ()))}
    cmp = [n for n in cmp if n not in last]
    if isinstance(with_cmp, bool):
        cmp = cmp if with_cmp else []
    else:
        cmp = cmp[:with_cmp]
    return [n for n in names if n not in last] + cmp


def check_cmp_option(cmp) -> Union[bool, int]:
    """``cmp`` of :func:`quantize_int8`: a bool, or an int >= 0 (raises ValueError)."""
    if isinstance(cmp, bool) or (isinstance(cmp, int) and cmp >= 0):
        return cmp
    raise ValueError(f'cmp must be True, False or a count of CMP convolutions >= 0, '
                     f'got {cmp!r}')


def calibration_images(calib_dir: str, count: Optional[int] = None) -> List[str]:
    """The image files of ``calib_dir`` (sorted; ``count`` of them evenly spread)."""
    if not osp.isdir(calib_dir):
        raise ValueError(f'calibration folder {calib_dir} does not exist')
    files = sorted(osp.join(calib_dir, f) for f in os.listdir(calib_dir)
                   if f.lower().endswith(IMG_EXTS) and osp.isfile(osp.join(calib_dir, f)))
    if not files:
        raise ValueError(f'calibration folder {calib_dir} holds no image '
                         f'({", ".join(IMG_EXTS)})')
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f'calib_count must be a positive int, got {count!r}')
        if count < len(files):
            idx = np.linspace(0, len(files) - 1, count).round().astype(int)
            files = [files[i] for i in idx]
    return files


class _Reader:
    """``CalibrationDataReader``: the preprocessed canvases of the images, one per run."""

    def __init__(self, images: Sequence[str], meta: Dict):
        self.images, self.meta = list(images), meta
        self._it: Optional[Iterator] = None

    def _gen(self):
        from logocap_rt import preprocess, read_image
        from logocap_rt.metadata import INPUT_NAME
        for p in self.images:
            x, _ = preprocess(read_image(p), self.meta, p)
            yield {INPUT_NAME: x}

    def get_next(self):
        if self._it is None:
            self._it = self._gen()
        return next(self._it, None)

    def rewind(self):
        self._it = None


def quantize_int8(fp32_path: str, out: str, calib_dir: str,
                  calib_count: Optional[int] = 32, per_channel: bool = True,
                  reduce_range: bool = False, cmp: Union[bool, int] = 1) -> Dict:
    """Quantise the network of the fp32 export ``fp32_path`` into ``out`` (atomically).

    Args:
        fp32_path: a logocap_mm fp32 ``.onnx`` (with its metadata and node scopes).
        out: the INT8 ``.onnx`` to write (not an input).
        calib_dir: folder of calibration images (real images of the target domain).
        calib_count: at most this many of them (evenly spread; None: all).
        per_channel: per-output-channel weight scales.
        reduce_range: 7-bit weights (for CPUs whose u8 x s8 products can saturate).
        cmp: which of the CMP's convolutions are quantised too: an int N, its first N (graph
            order); True, all but the last (whose outputs are the KAMs); False or 0, none.
            Default 1: only the first, the largest (K*D -> C1 channels, ~60% of the W32 CMP's
            multiply-adds). With the `make demo` model (synthetic val AP none / partial /
            full; fp32 4.0 / 10.6 / 22.9): first only 3.6 / 10.3 / 23.1, none 3.6 / 10.3 /
            23.0, first two 3.6 / 8.2 / 22.7, all 3.6 / 3.0 / 21.7. W32, 512, flip, 2 threads,
            30 people: first only 0.46x the fp32 ONNX Runtime time, none 0.57x (min-max
            ranges; onnxruntime's percentile and entropy calibrators cannot take canvases of
            different sizes).

    Returns:
        dict(path, metadata, nodes (quantised node names), calib_images).
    """
    import onnx
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    from logocap_rt.metadata import decode, encode
    from logocap_rt.outputs import InputSet, check_output
    from .export import _save_atomic
    inputs = InputSet([fp32_path])
    check_output(out, inputs, '--out')  # the fp32 file (also through a link)
    images = calibration_images(calib_dir, calib_count)
    inputs.add(*images)
    check_output(out, inputs, '--out')  # a calibration image
    proto = onnx.load(fp32_path)
    meta = decode({p.key: p.value for p in proto.metadata_props}, fp32_path)
    if meta.get('precision', 'fp32') != 'fp32':
        raise ValueError(f'{fp32_path} is already {meta["precision"]}')
    cmp = check_cmp_option(cmp)
    nodes = network_nodes(proto, cmp=cmp)
    n_cmp = len(set(nodes) - set(network_nodes(proto, cmp=False)))
    with tempfile.TemporaryDirectory(prefix='logocap_int8_') as tmp:
        q_path = osp.join(tmp, 'int8.onnx')
        quantize_static(proto, q_path, _Reader(images, meta), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, reduce_range=reduce_range,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_quantize=nodes, calibrate_method=CalibrationMethod.MinMax,
                        extra_options=dict(ActivationSymmetric=False,
                                           WeightSymmetric=True))
        q = onnx.load(q_path)
    meta = dict(meta, precision='int8', calib_images=len(images), int8_cmp=n_cmp > 0,
                int8_cmp_convs=n_cmp)
    del q.metadata_props[:]
    for k, v in encode(meta).items():
        e = q.metadata_props.add()
        e.key, e.value = k, v
    q.doc_string = proto.doc_string + ' (INT8: network quantised, decoder float32)'
    _save_atomic(q, out, inputs)
    return dict(path=out, metadata=meta, nodes=nodes, calib_images=images)
