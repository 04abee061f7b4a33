"""The network stage's throughput in every runtime against the machine's peak, in one run.

Timed in interleaved rounds (every entry once per round, the same threads): the peak
candidates (:func:`logocap_mm.benchmark.peak.peak_kernels` in PyTorch, plus the same GEMM
and 3x3 convolution as ONNX Runtime graphs, so that neither library's kernels are left out)
and the flip-pair network stage (backbone, neck, heads, flip merge) in PyTorch's layouts and
on ONNX Runtime (fp32, and any further ONNX files given, e.g. an INT8 one). The peak is the
best GFLOP/s any candidate reaches in any round; every stage's GFLOP/s is its counted FLOPs
over its best round.
"""
import copy
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from .flops import count_flops
from .peak import _kernel, conv_flops, gemm_flops, kernel_name, peak_kernels, time_rounds
from .stages import run_backbone
from .variants import plan_for

STAGE_VARIANTS = ('fp32-contiguous', 'fp32-channels_last', 'fp32-channels_last-fused')


class FlipNetwork(nn.Module):
    """(1, 3, H, W) -> the flip-merged heatmaps, offsets and embedding (F grid)."""

    def __init__(self, model: nn.Module, flip_indices: Sequence[int]):
        super().__init__()
        self.model, self.flip_indices = model, list(flip_indices)

    def forward(self, x):
        return run_backbone(self.model, x, True, self.flip_indices)


def ort_session(path: str, threads: int):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = int(threads), 1
    return ort.InferenceSession(path, so, providers=['CPUExecutionProvider'])


def _ort_kernels(tmpdir: str, threads: int) -> Dict[str, tuple]:
    """The GEMM and 3x3 convolution of the candidates as ONNX Runtime sessions:
    ``{name: (callable, FLOPs)}``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.RandomState(0)
    ks = peak_kernels('cpu')
    g = [s for s in ks if s['kind'] == 'gemm'][0]
    c = [s for s in ks if s['kind'] == 'conv'][0]   # the first (3x3) convolution
    out = {}
    m, n, k = g['m'], g['n'], g['k']
    b = numpy_helper.from_array((rng.randn(k, n) / k ** .5).astype(np.float32), 'B')
    graphs = {
        'gemm': (helper.make_graph(
            [helper.make_node('MatMul', ['A', 'B'], ['Y'])], 'gemm',
            [helper.make_tensor_value_info('A', TensorProto.FLOAT, [m, k])],
            [helper.make_tensor_value_info('Y', TensorProto.FLOAT, [m, n])], [b]),
            rng.randn(m, k).astype(np.float32), gemm_flops(m, n, k)),
    }
    B, C, S, kk = c['batch'], c['channels'], c['size'], c['kernel']
    w = numpy_helper.from_array((rng.randn(C, C, kk, kk) / (C * kk)).astype(np.float32), 'W')
    graphs['conv'] = (helper.make_graph(
        [helper.make_node('Conv', ['X', 'W'], ['Y'], pads=[kk // 2] * 4)], 'conv',
        [helper.make_tensor_value_info('X', TensorProto.FLOAT, [B, C, S, S])],
        [helper.make_tensor_value_info('Y', TensorProto.FLOAT, [B, C, S, S])], [w]),
        rng.randn(B, C, S, S).astype(np.float32), conv_flops(B, C, S, kk))
    for kind, (graph, x, fl) in graphs.items():
        path = osp.join(tmpdir, f'peak_{kind}.onnx')
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)])
        model.ir_version = 9   # readable by every ONNX Runtime that has opset 18
        onnx.save(model, path)
        sess = ort_session(path, threads)
        name = sess.get_inputs()[0].name
        spec = g if kind == 'gemm' else c
        out['onnxruntime ' + kernel_name(spec)] = (
            lambda sess=sess, name=name, x=x: sess.run(None, {name: x}), fl)
    return out


def export_network(model: nn.Module, flip_indices, size: int, path: str) -> None:
    """The flip-pair network (contiguous fp32) as an ONNX graph of a fixed S x S input."""
    with torch.no_grad():
        prog = torch.onnx.export(FlipNetwork(model, flip_indices).eval(),
                                 (torch.zeros(1, 3, size, size), ), None, dynamo=True,
                                 opset_version=18, input_names=['input'], optimize=True,
                                 verbose=False)
    prog.save(path)


def quantize_network(fp32_path: str, out: str, size: int, count: int = 4) -> None:
    """Static INT8 of a network graph for speed measurements: ONNX Runtime's
    ``quantize_static`` (QDQ, per-channel int8 weights, uint8 activations, MinMax) calibrated
    on ``count`` random inputs (the values only set the scales; the speed does not depend on
    them, the accuracy would)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                          QuantFormat, QuantType, quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.RandomState(0)
            self.items = iter([{'input': rng.randn(1, 3, size, size).astype(np.float32)}
                               for _ in range(count)])

        def get_next(self):
            return next(self.items, None)

    quantize_static(fp32_path, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)


def measure_fractions(model: nn.Module, flip_indices, size: int, threads: int, tmpdir: str,
                      repeats: int = 5, extra_onnx: Optional[Dict[str, str]] = None,
                      int8: bool = False, min_time: float = 0.5) -> Dict:
    """Time the peak candidates and the network stage (PyTorch variants, ONNX Runtime fp32,
    with ``int8`` its :func:`quantize_network` copy, and ``extra_onnx`` {label: network .onnx
    with input 'input' (1, 3, S, S)}) in interleaved rounds; returns dict(peak, stages
    {name: ms, gflops_per_s, fraction}, gflop, load). Each kernel sample repeats its kernel
    for ``min_time`` seconds (a stage sample is one call)."""
    from logocap_mm.models.precision import use_plan
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    xn = x.numpy()
    with torch.no_grad():
        gflop = count_flops(lambda: run_backbone(model, x, True, flip_indices))
    fns, kernel_flops = {}, {}
    for spec in peak_kernels('cpu'):
        f, fl = _kernel('cpu', spec, None)
        fns['pytorch ' + kernel_name(spec)], kernel_flops['pytorch ' + kernel_name(spec)] = f, fl
    for k, (f, fl) in _ort_kernels(tmpdir, threads).items():
        fns[k], kernel_flops[k] = f, fl
    path = osp.join(tmpdir, 'network_fp32.onnx')
    export_network(copy.deepcopy(model), flip_indices, size, path)
    onnx_files = {'onnxruntime fp32': path}
    if int8:
        q = osp.join(tmpdir, 'network_int8.onnx')
        quantize_network(path, q, size)
        onnx_files['onnxruntime int8 (QDQ)'] = q
    onnx_files.update(extra_onnx or {})
    stages = {}
    for v in STAGE_VARIANTS:   # one copy each: the layouts are not switched between rounds
        plan, m = plan_for(v, 'cpu'), copy.deepcopy(model)

        def run(plan=plan, m=m):
            with use_plan(plan):
                run_backbone(m, x, True, flip_indices)
        stages['pytorch ' + v] = run
    for label, p in onnx_files.items():
        sess = ort_session(p, threads)
        stages[label] = (lambda sess=sess: sess.run(None, {'input': xn}))
    load = os.getloadavg()
    with torch.no_grad():
        ts = time_rounds({**fns, **stages}, repeats, warmup=1, min_time=min_time)
    by = {k: dict(max_gflops=kernel_flops[k] / min(ts[k]) / 1e9) for k in fns}
    best = max(by, key=lambda k: by[k]['max_gflops'])
    peak = by[best]['max_gflops']
    out_stages = {}
    for k in stages:
        g = gflop / min(ts[k])
        out_stages[k] = dict(ms=1e3 * min(ts[k]), median_ms=1e3 * float(np.median(ts[k])),
                             gflops_per_s=g, fraction=g / peak)
    return dict(peak=dict(gflops=peak, kernel=best, by_kernel=by), stages=out_stages,
                gflop=gflop, threads=threads, repeats=repeats, load_before=load,
                load_after=os.getloadavg())
