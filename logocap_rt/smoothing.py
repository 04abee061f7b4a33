"""One-Euro smoothing of keypoint trajectories, vectorised over arrays (numpy only).

The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) is a first-order low-pass filter
whose cut-off frequency rises with the signal's speed: slow motion (where jitter shows) is
smoothed hard, fast motion is followed with little lag. The reference implementation
(the ``OneEuroFilter`` package) filters one scalar per Python object; a video frame with 30
people holds 30 x 17 x 2 coordinates, so this module runs the same recurrence on whole
arrays, with a mask for the values missing in a frame and a time stamp per value (a value
that was missing for a few frames gets the right time step when it comes back). The
recurrence is the package's, value for value (tests compare the two).
"""
import math

import numpy as np


def _alpha(dt, cutoff):
    """Smoothing factor of a first-order low-pass filter with cut-off ``cutoff`` (Hz) sampled
    every ``dt`` seconds: ``1 / (1 + tau / dt)`` with ``tau = 1 / (2 pi cutoff)``."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def check_one_euro(min_cutoff, beta, d_cutoff):
    """ValueError naming the parameter unless ``min_cutoff, d_cutoff > 0`` and ``beta >= 0``
    (all finite)."""
    for name, v, lo_ok in (('min_cutoff', min_cutoff, False), ('beta', beta, True),
                           ('d_cutoff', d_cutoff, False)):
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or (
                v == 0 and not lo_ok):
            raise ValueError(f'{name} must be a finite number {">= 0" if lo_ok else "> 0"}, '
                             f'got {v!r}')


def one_euro_step(state, x, t, valid, min_cutoff, beta, d_cutoff):
    """One time step of the One-Euro recurrence on arrays, in place.

    Args:
        state (dict): ``x_hat``, ``dx_hat`` (filtered values and speeds) and ``t_prev`` (time
            of each element's last valid value, NaN before the first), arrays of ``x``'s
            shape; updated where ``valid``.
        x (np.ndarray): the new values (float64).
        t (float): their time stamp, seconds.
        valid (np.ndarray): bool, ``x``'s shape: the values to use.
        min_cutoff, beta, d_cutoff (float): the filter's parameters.

    Returns:
        np.ndarray: the filtered values (``x`` itself where not valid; an element's first
        valid value passes through).
    """
    x_hat, dx_hat, t_prev = state['x_hat'], state['dx_hat'], state['t_prev']
    seen = ~np.isnan(t_prev)
    upd = valid & seen
    out = x.copy()
    if upd.any():
        dt = t - t_prev[upd]
        if np.any(~(dt > 0)):
            raise ValueError(f'One-Euro filter: time stamps must increase (got t={t})')
        dx = (x[upd] - x_hat[upd]) / dt
        a_d = _alpha(dt, d_cutoff)
        dxh = a_d * dx + (1.0 - a_d) * dx_hat[upd]
        a = _alpha(dt, min_cutoff + beta * np.abs(dxh))
        xh = a * x[upd] + (1.0 - a) * x_hat[upd]
        dx_hat[upd], x_hat[upd], out[upd] = dxh, xh, xh
    first = valid & ~seen  # first sample of an element: passes through
    x_hat[first] = x[first]
    dx_hat[first] = 0.0
    t_prev[valid] = t
    return out


def new_state(shape):
    """An empty One-Euro state for values of ``shape`` (see :func:`one_euro_step`)."""
    return dict(x_hat=np.zeros(shape), dx_hat=np.zeros(shape), t_prev=np.full(shape, np.nan))


class OneEuroFilter:
    """One-Euro filter over an array of independent values (e.g. one pose, ``(K, 2)``).

    Args:
        min_cutoff (float): cut-off frequency (Hz) at zero speed; lower = smoother.
        beta (float): how fast the cut-off rises with speed (per unit of the values per
            second, e.g. px/s); higher = less lag on fast motion.
        d_cutoff (float): cut-off frequency (Hz) of the speed estimate.

    Call it with the values of one time step, ``x`` (any shape, fixed across calls), the time
    ``t`` in seconds, and optionally ``valid`` (bool, broadcastable to ``x``): values where
    ``valid`` is False (or not finite) are neither used nor changed (the output there is
    ``x`` itself). The first valid value of an element passes through unchanged.
    """

    def __init__(self, min_cutoff=1.0, beta=0.0, d_cutoff=1.0):
        check_one_euro(min_cutoff, beta, d_cutoff)
        self.params = (float(min_cutoff), float(beta), float(d_cutoff))
        self.state = None

    def __call__(self, x, t, valid=None):
        x = np.asarray(x, np.float64)
        if not math.isfinite(t):
            raise ValueError(f'time stamp must be finite, got {t!r}')
        valid = np.ones(x.shape, bool) if valid is None else np.broadcast_to(
            np.asarray(valid, bool), x.shape)
        valid = valid & np.isfinite(x)
        if self.state is None:
            self.state = new_state(x.shape)
        elif x.shape != self.state['x_hat'].shape:
            raise ValueError(f'OneEuroFilter: values of shape {x.shape}, the filter holds '
                             f'{self.state["x_hat"].shape}')
        return one_euro_step(self.state, x, float(t), valid, *self.params)
