"""Small helpers of the decode pipeline: padding the valid-slot prefix of a local
stage back to T slots, and whether a caller's autocast is active."""
from typing import Optional

import torch
from torch import Tensor


def autocast_on(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (False for types without autocast)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:  # a device type without autocast ('meta')
        return False


def pad_slots(x: Tensor, T: int, fill: Optional[Tensor] = None) -> Tensor:
    """(B, n, ...) -> (B, T, ...): the slots n.. from ``fill`` (same shape as the result)
    or zeros."""
    n = x.shape[1]
    rest = x.new_zeros(x.shape[0], T - n, *x.shape[2:]) if fill is None else fill[:, n:]
    return torch.cat([x, rest], 1)


def padded_local(local: Optional[dict], n, T: int) -> Optional[dict]:
    """The local stage's KAMs of n slots padded to T (zero KAMs); as is when n is None."""
    if local is None or n is None:
        return local
    return dict(local, kams=pad_slots(local['kams'], T))
