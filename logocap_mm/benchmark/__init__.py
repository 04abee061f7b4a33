"""Inference speed, FLOP and memory benchmark of LOGO-CAP (``tools/benchmark.py``).

Modules by concept: :mod:`.scene` (a synthetic N-person head output), :mod:`.timing`
(per-stage timer, CUDA synchronised), :mod:`.stages` (the timed stages), :mod:`.flops`
(FLOP counting), :mod:`.memory` (peak-memory probes in fresh processes), :mod:`.models`
(config loading, model building, the dataset's flip pairs), :mod:`.dekr` (MMPose's DEKR
baseline), :mod:`.options` (the settings), :mod:`.run` (a whole run), :mod:`.report`
(markdown), :mod:`.peak` (the machine's peak: the best of several kernels),
:mod:`.fractions` (the network stage in every runtime against it,
``tools/benchmark_peak.py``), :mod:`.peers_onnx` (CID and RTMO on ONNX Runtime,
``tools/deploy/bench_onnx.py --peers``).
"""
from .options import BenchmarkOptions
from .report import markdown
from .run import benchmark
from .scene import synthetic_scene
from .stages import STAGES, run_backbone, run_decoder_stages
from .timing import StageTimer

__all__ = ['BenchmarkOptions', 'benchmark', 'markdown', 'synthetic_scene', 'STAGES',
           'run_backbone', 'run_decoder_stages', 'StageTimer']
