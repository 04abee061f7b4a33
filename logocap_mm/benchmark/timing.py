"""Per-stage wall-clock and process-CPU timer (CUDA synchronised inside the timer)."""
import statistics
import time
from typing import Dict, Sequence

import torch

__all__ = ['StageTimer', 'median_min']


class StageTimer:
    """Wall-clock and process CPU time per named stage.

    ``start()`` opens a lap, ``lap(name)`` closes it and adds its time to ``name``
    (milliseconds; repeated names accumulate). On CUDA both synchronise the device before
    reading the clock, so a lap covers the kernels it launched.

    Args:
        device: the device the timed work runs on (``torch.device`` or str).
    """

    def __init__(self, device):
        dev = torch.device(device)
        self.cuda = dev.type == 'cuda'
        self.device = dev
        self.times: Dict[str, float] = {}
        self.cpu_times: Dict[str, float] = {}  # process CPU (all threads): robust to load
        self._t = None
        self._c = None

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def start(self):
        self.sync()
        self._t = time.perf_counter()
        self._c = time.process_time()

    def lap(self, name: str):
        if self._t is None:
            raise ValueError('StageTimer.lap() called before start()')
        self.sync()
        t, c = time.perf_counter(), time.process_time()
        self.times[name] = self.times.get(name, 0.) + (t - self._t) * 1e3
        self.cpu_times[name] = self.cpu_times.get(name, 0.) + (c - self._c) * 1e3
        self._t, self._c = t, c

    def clear(self):
        self.times.clear()
        self.cpu_times.clear()


def median_min(xs: Sequence[float]) -> dict:
    """``dict(median=..., min=...)`` of a non-empty sequence of times."""
    return dict(median=float(statistics.median(xs)), min=float(min(xs)))
