"""FLOP counting with ``torch.utils.flop_counter.FlopCounterMode``.

Counts the matmul and convolution FLOPs of what actually runs; element-wise ops,
interpolation and indexing are not counted.
"""
from typing import Callable, Dict, Optional

from .stages import STAGES, run_decoder_stages

__all__ = ['count_flops', 'decoder_stage_flops']


def count_flops(fn: Callable[[], object]) -> float:
    """GFLOP counted for one call of ``fn``."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops() / 1e9


class _Marks:
    """A ``lap(name)`` timer stand-in that records the running FLOP total per stage."""

    def __init__(self, counter):
        self.counter = counter
        self.marks: Dict[str, int] = {}

    def lap(self, name: str):
        self.marks[name] = self.counter.get_total_flops()


def decoder_stage_flops(head, hm, off, emb, canvas,
                        fast: Optional[bool] = None) -> Dict[str, float]:
    """GFLOP of each decoder stage (``STAGES[1:]``) of one 'full' decode.

    Args: as :func:`~logocap_mm.benchmark.stages.run_decoder_stages`.
    """
    from torch.utils.flop_counter import FlopCounterMode
    fc = FlopCounterMode(display=False)
    marks = _Marks(fc)
    with fc:
        run_decoder_stages(head, hm, off, emb, canvas, timer=marks, fast=fast)
    out, prev = {}, 0
    for s in STAGES[1:]:
        out[s] = (marks.marks[s] - prev) / 1e9
        prev = marks.marks[s]
    return out
