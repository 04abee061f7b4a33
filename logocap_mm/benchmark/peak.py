"""The machine's peak throughput, measured in the same run as the stages it is compared to.

Several compute-bound kernels (:data:`PEAK_KERNELS`: 3x3 and 1x1 convolutions of different
widths in channels_last, the layout every fast convolution kernel of CPU and CUDA libraries
prefers, and a square GEMM) are timed in fp32 and in the low-precision dtypes the device runs
(bf16 on CPU and CUDA, fp16 on CUDA), in interleaved rounds, with the process's thread
count. The peak of a precision is the best GFLOP/s any of them reaches in any sample. A
stage's achieved GFLOP/s divided by it is the fraction of what this machine's kernels reach
(``fraction_of_peak``).
"""
import statistics
import time
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F

# 3x3, 128 -> 128 channels, 128 x 128, batch 4: 19.3 GFLOP, large enough to be compute-bound
# on a CPU and to fill a GPU for a few milliseconds
DEFAULT_SHAPE = dict(batch=4, channels=128, size=128, kernel=3)
# the candidates of the peak (CPU sizes, 2.1-4.8 GFLOP each; x4 work on CUDA, see
# :func:`peak_kernels`): 3x3 convolutions of HRNet-like widths, a 1x1 one and a GEMM
PEAK_KERNELS = (
    dict(kind='conv', batch=1, channels=128, size=128, kernel=3),
    dict(kind='conv', batch=1, channels=256, size=64, kernel=3),
    dict(kind='conv', batch=4, channels=64, size=128, kernel=3),
    dict(kind='conv', batch=4, channels=512, size=32, kernel=1),
    dict(kind='gemm', m=1024, n=1024, k=1024),
)


def peak_kernels(device) -> list:
    """:data:`PEAK_KERNELS` for ``device`` (on CUDA: batch x4 and a 4096 GEMM, to fill it)."""
    if torch.device(device).type != 'cuda':
        return [dict(k) for k in PEAK_KERNELS]
    return [dict(k, m=4096, n=4096, k=4096) if k['kind'] == 'gemm'
            else dict(k, batch=4 * k['batch']) for k in PEAK_KERNELS]

def conv_flops(batch: int, channels: int, size: int, kernel: int = 3) -> float:
    """FLOPs (multiply and add counted separately) of a same-padded square convolution with
    ``channels`` in and out: 2 * B * C * C * k * k * H * W."""
    return 2. * batch * channels * channels * kernel * kernel * size * size


def _sync(device: torch.device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def conv_gflops(device, dtype: Optional[torch.dtype] = None, batch: int = 4,
                channels: int = 128, size: int = 128, kernel: int = 3, repeats: int = 5,
                warmup: int = 2, min_time: float = 0.05) -> Dict[str, float]:
    """GFLOP/s of one convolution, channels_last, under ``torch.autocast(dtype)`` (None: fp32).

    Each timed sample runs the convolution enough times to last ``min_time`` seconds; the
    result is the median sample (and the best, ``max_gflops``).
    """
    device = torch.device(device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, size, size, generator=g).to(device)
    w = (torch.randn(channels, channels, kernel, kernel, generator=g) / (channels * kernel)
         ).to(device)
    x = x.contiguous(memory_format=torch.channels_last)
    w = w.contiguous(memory_format=torch.channels_last)
    ctx = (torch.autocast(device.type, dtype=dtype) if dtype is not None
           else torch.autocast(device.type, enabled=False))
    pad = kernel // 2
    with torch.no_grad(), ctx:
        for _ in range(warmup):
            F.conv2d(x, w, padding=pad)
        _sync(device)
        t = time.perf_counter()
        F.conv2d(x, w, padding=pad)
        _sync(device)
        one = max(time.perf_counter() - t, 1e-6)
        n = max(1, int(min_time / one))
        samples = []
        for _ in range(repeats):
            _sync(device)
            t = time.perf_counter()
            for _ in range(n):
                F.conv2d(x, w, padding=pad)
            _sync(device)
            samples.append((time.perf_counter() - t) / n)
    fl = conv_flops(batch, channels, size, kernel)
    return dict(gflops=fl / statistics.median(samples) / 1e9,
                max_gflops=fl / min(samples) / 1e9, gflop=fl / 1e9,
                ms=statistics.median(samples) * 1e3, calls_per_sample=n)


def low_precisions(device) -> Sequence[str]:
    """The autocast precisions worth measuring on ``device``."""
    device = torch.device(device)
    if device.type == 'cuda':
        return ('bf16', 'fp16') if torch.cuda.is_bf16_supported() else ('fp16', )
    return ('bf16', )


DTYPES = dict(fp32=None, bf16=torch.bfloat16, fp16=torch.float16)


def gemm_flops(m: int, n: int, k: int) -> float:
    """FLOPs of an (m, k) @ (k, n) matrix product: 2 * m * n * k."""
    return 2. * m * n * k


def _kernel(device, spec: dict, dtype):
    """(callable, FLOPs) of one peak candidate."""
    g = torch.Generator().manual_seed(0)
    dt = dtype or torch.float32
    if spec['kind'] == 'gemm':
        m, n, k = spec['m'], spec['n'], spec['k']
        a = torch.randn(m, k, generator=g).to(device, dt)
        b = (torch.randn(k, n, generator=g) / k ** .5).to(device, dt)
        return (lambda: torch.mm(a, b)), gemm_flops(m, n, k)
    B, C, S, kk = spec['batch'], spec['channels'], spec['size'], spec['kernel']
    x = torch.randn(B, C, S, S, generator=g).to(device, dt)
    w = (torch.randn(C, C, kk, kk, generator=g) / (C * kk)).to(device, dt)
    x = x.contiguous(memory_format=torch.channels_last)
    w = w.contiguous(memory_format=torch.channels_last)
    return (lambda: F.conv2d(x, w, padding=kk // 2)), conv_flops(B, C, S, kk)


def kernel_name(spec: dict) -> str:
    if spec['kind'] == 'gemm':
        return f"gemm {spec['m']}x{spec['k']} @ {spec['k']}x{spec['n']}"
    return (f"conv {spec['kernel']}x{spec['kernel']} {spec['channels']}ch "
            f"{spec['size']}x{spec['size']} b{spec['batch']}")


def time_rounds(fns: Dict[str, object], rounds: int = 5, warmup: int = 1,
                min_time: float = 0.05, sync=lambda: None) -> Dict[str, list]:
    """Seconds per call of every callable, ``rounds`` samples each, interleaved (each sample
    repeats its callable to last ``min_time``): ``{name: [s, ...]}``."""
    calls = {}
    for k, f in fns.items():
        for _ in range(warmup):
            f()
        sync()
        t = time.perf_counter()
        f()
        sync()
        calls[k] = max(1, int(min_time / max(time.perf_counter() - t, 1e-6)))
    out = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            sync()
            t = time.perf_counter()
            for _ in range(calls[k]):
                f()
            sync()
            out[k].append((time.perf_counter() - t) / calls[k])
    return out


def measure_peak(device, precisions: Optional[Sequence[str]] = None,
                 kernels: Optional[Sequence[dict]] = None, repeats: int = 5, warmup: int = 2,
                 min_time: float = 0.05, **shape) -> Dict:
    """Peak GFLOP/s per precision on ``device``: the best sample of the best of ``kernels``
    (default :func:`peak_kernels`; a ``shape`` of conv sizes, as :data:`DEFAULT_SHAPE`,
    replaces the convolutions by that one), timed in ``repeats`` interleaved rounds.

    Returns ``{'fp32': {...}, 'bf16': {...}, 'kernels': [...], 'layout', 'device'}``; per
    precision ``gflops`` (the peak), ``kernel`` (which reached it), ``gflop`` and ``ms`` of
    its best sample and ``by_kernel`` (each candidate's best and median GFLOP/s).
    """
    device = torch.device(device)
    precisions = precisions or ('fp32', ) + tuple(low_precisions(device))
    if kernels is None:
        kernels = peak_kernels(device)
        if shape:
            kernels = [dict(DEFAULT_SHAPE, kind='conv', **shape), kernels[-1]]
    kernels = [dict(k) for k in kernels]
    sync = (lambda: _sync(device))
    out = {}
    for p in precisions:
        fns, fl = {}, {}
        ctx = torch.autocast(device.type, enabled=False)
        for spec in kernels:
            fns[kernel_name(spec)], fl[kernel_name(spec)] = _kernel(device, spec, DTYPES[p])
        with torch.no_grad(), ctx:
            ts = time_rounds(fns, repeats, warmup, min_time, sync)
        by = {k: dict(max_gflops=fl[k] / min(v) / 1e9,
                      median_gflops=fl[k] / statistics.median(v) / 1e9)
              for k, v in ts.items()}
        best = max(by, key=lambda k: by[k]['max_gflops'])
        out[p] = dict(gflops=by[best]['max_gflops'], max_gflops=by[best]['max_gflops'],
                      kernel=best, gflop=fl[best] / 1e9, ms=min(ts[best]) * 1e3,
                      by_kernel=by)
    out['kernels'] = kernels
    out['layout'] = 'channels_last'
    out['device'] = str(device)
    return out


def fraction_of_peak(gflops_per_s: Dict[str, float], peak: Dict, precision: str = 'fp32'
                     ) -> Dict[str, float]:
    """Each stage's achieved GFLOP/s as a fraction of the measured peak of ``precision``."""
    ref = peak[precision]['gflops']
    return {k: (v / ref if ref > 0 else 0.) for k, v in gflops_per_s.items()}
