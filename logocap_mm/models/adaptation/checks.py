"""Argument and input checks of the decode pipeline (clear ValueErrors).

The settings the ONNX runtime also reads (stride, top-k, NMS, people cap, adaptation
level) follow the one rule set of :mod:`logocap_rt.checks`.
"""
import math

import torch
from torch import Tensor

from logocap_rt.checks import ADAPTATION_LEVELS, check_value

__all__ = ['ADAPTATION_LEVELS', 'check_adaptation', 'check_finite_outputs', 'finite',
           'odd_positive', 'check_value']


def check_adaptation(adaptation):
    return check_value('adaptation', adaptation)


def odd_positive(name, value):
    if not isinstance(value, int) or value < 1 or value % 2 == 0:
        raise ValueError(f'{name} must be a positive odd int, got {value!r}')


def finite(name, value, low=None, strict=False):
    """``value`` as a float; a ValueError naming ``name`` unless it is a finite real number
    (``> low`` when ``strict``, ``>= low`` otherwise)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)
    if ok and low is not None:
        ok = value > low if strict else value >= low
    if not ok:
        bound = '' if low is None else f' {">" if strict else ">="} {low:g}'
        raise ValueError(f'{name} must be a finite number{bound}, got {value!r}')
    return float(value)


def check_finite_outputs(**maps: Tensor) -> None:
    """Refuse NaN / inf head outputs with a clear error (instead of an index error deep in
    the sampler). ``maps``: name -> tensor of any shape."""
    maps = {n: t for n, t in maps.items() if t is not None and t.numel()}
    if not maps:
        return
    ok = torch.stack([torch.isfinite(t).all() for t in maps.values()])
    if not bool(ok.all()):  # one host sync per batch
        bad = [n for n, good in zip(maps, ok.tolist()) if not good]
        raise ValueError(
            f'LogoCapDecoder: the head produced non-finite (NaN / inf) {", ".join(bad)}; '
            'the model weights or the input image contain NaN / inf (check the checkpoint '
            'and the input array)')
