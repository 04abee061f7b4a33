"""The machine's convolution peak, measured in the same run as the stages it is compared to.

A large 3x3 convolution in channels_last (the layout every fast convolution kernel of CPU and
CUDA libraries prefers) is timed in fp32 and in the low-precision dtypes the device runs
(bf16 on CPU and CUDA, fp16 on CUDA). A stage's achieved GFLOP/s divided by the peak of its
precision is the fraction of what this machine's convolutions reach (``fraction_of_peak``).
"""
import statistics
import time
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F

# 3x3, 128 -> 128 channels, 128 x 128, batch 4: 19.3 GFLOP, large enough to be compute-bound
# on a CPU and to fill a GPU for a few milliseconds
DEFAULT_SHAPE = dict(batch=4, channels=128, size=128, kernel=3)


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


def measure_peak(device, precisions: Optional[Sequence[str]] = None, **shape) -> Dict:
    """Convolution peak per precision on ``device``: ``{'fp32': {...}, 'bf16': {...}}`` plus
    the shape used. ``shape`` overrides :data:`DEFAULT_SHAPE` (and ``repeats``, ...)."""
    precisions = precisions or ('fp32', ) + tuple(low_precisions(device))
    kw = dict(DEFAULT_SHAPE, **shape)
    out = {p: conv_gflops(device, DTYPES[p], **kw) for p in precisions}
    out['shape'] = {k: kw[k] for k in DEFAULT_SHAPE}
    out['layout'] = 'channels_last'
    out['device'] = str(device)
    return out


def fraction_of_peak(gflops_per_s: Dict[str, float], peak: Dict, precision: str = 'fp32'
                     ) -> Dict[str, float]:
    """Each stage's achieved GFLOP/s as a fraction of the measured peak of ``precision``."""
    ref = peak[precision]['gflops']
    return {k: (v / ref if ref > 0 else 0.) for k, v in gflops_per_s.items()}
