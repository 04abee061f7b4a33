# Copyright (c) logocap_mm contributors.
"""The LOGO-CAP reference bilinear sampler, corner-aligned (pixel ``i`` sits at coordinate
``i``), in two pieces shared by every sampling site (codec decode, KEM latents, windows).

Border behaviour of the reference: left/top are clamped to the border; on the right/bottom
``x == W-1`` gives 0, ``x`` in ``(W-1, W)`` ramps linearly from 0 to the border value and
``x >= W`` gives the border value (as in the reference).
"""
from typing import Callable, Tuple

from torch import Tensor

__all__ = ['axis_weights', 'bilinear_combine']


def axis_weights(p: Tensor, size: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-axis taps of the reference sampler.

    Args:
        p: coordinates along one axis (any shape, floating), in map pixels.
        size: map length along that axis.

    Returns:
        ``(i0, i1, w0, w1)`` shaped like ``p``: long indices in ``[0, size-1]`` and weights
        so that the 1-D sample is ``w0 * m[i0] + w1 * m[i1]``.
    """
    p0 = p.floor().clamp(0, size - 1)
    p1 = (p0 + 1).clamp(0, size - 1)
    w0 = (p1 - p).clamp(0, 1)
    w1 = (p - p0).clamp(0, 1)
    return p0.long(), p1.long(), w0, w1


def bilinear_combine(gather: Callable[[Tensor, Tensor], Tensor], ytaps, xtaps) -> Tensor:
    """The reference's four-corner sum ``sum f(y, x) * wy * wx`` (in that multiplication
    order, as the reference).

    Args:
        gather: ``gather(iy, ix)`` returns the map values at the row / column indices.
        ytaps, xtaps: ``(i0, i1, w0, w1)`` of :func:`axis_weights` along y and x; the
            weights must broadcast against ``gather``'s output (the caller shapes them).

    Returns:
        The samples, shaped like ``gather``'s output.
    """
    y0, y1, wy0, wy1 = ytaps
    x0, x1, wx0, wx1 = xtaps
    return (gather(y0, x0) * wy0 * wx0 + gather(y0, x1) * wy0 * wx1 +
            gather(y1, x0) * wy1 * wx0 + gather(y1, x1) * wy1 * wx1)
