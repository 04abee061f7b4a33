"""How the learned convolution parts run: memory format and autocast precision.

Two ``model.test_cfg`` options select it:

* ``memory_format``: ``'auto'`` (default), ``'channels_last'`` or ``'contiguous'``.
  ``'auto'`` keeps today's numbers: contiguous on every device for now. Channels_last is
  faster on this project's CPU (backbone+neck 0.62-0.80x) but changes the kernels' summation
  order (differences ~1e-6 on the maps), which flips exact near-ties of the decoder (a
  rank-16 centre of a parity fixture image, one keypoint by 0.3 px against the exported
  graph), so it is opt-in (``'channels_last'``) until those checks allow it.
* ``precision``: ``'fp32'`` (default), ``'bf16'`` or ``'fp16'``: ``torch.autocast`` over
  the network (backbone, neck, the head's branches and the CMP). The decoder geometry
  (upsampling, centre NMS, offsets to coordinates, global adaptation, scores, NMS) always
  runs in fp32 on contiguous tensors: :meth:`NetworkPlan.output` casts back.
* ``compile``: ``False`` (default) or ``True``: the backbone and neck run through
  ``torch.compile`` (inductor), compiled at the first ``predict`` and again for each new input
  shape, layout or precision (minutes on a small CPU); opt-in.

The estimator resolves one :class:`NetworkPlan` per ``predict`` call (from ``test_cfg`` and
the input's device) and makes it current with :func:`use_plan`; the parts that run network
layers read it with :func:`current_plan`. Without a current plan (training, export, direct
calls) everything runs as written: fp32 autocast state of the caller, layout of the input.
"""
import contextlib
import contextvars
import warnings
from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

PRECISIONS = ('fp32', 'bf16', 'fp16')
MEMORY_FORMATS = ('auto', 'channels_last', 'contiguous')
DTYPES = dict(fp32=None, bf16=torch.bfloat16, fp16=torch.float16)
# devices on which 'auto' picks channels_last: none for now (see the module docstring)
AUTO_CHANNELS_LAST = ()


def check_network_options(test_cfg: dict) -> None:
    """Check ``test_cfg.memory_format`` / ``test_cfg.precision`` values (device-independent)."""
    fmt = test_cfg.get('memory_format', 'auto')
    if fmt not in MEMORY_FORMATS:
        raise ValueError(f'test_cfg.memory_format must be one of {MEMORY_FORMATS}, '
                         f'got {fmt!r}')
    prec = test_cfg.get('precision', 'fp32')
    if prec not in PRECISIONS:
        raise ValueError(f'test_cfg.precision must be one of {PRECISIONS}, got {prec!r}')
    if not isinstance(test_cfg.get('compile', False), bool):
        raise ValueError(f"test_cfg.compile must be True or False, got "
                         f"{test_cfg.get('compile')!r}")


def _check_device_precision(device: torch.device, precision: str) -> None:
    """Raise a ``ValueError`` if autocast cannot run ``precision`` on ``device``."""
    dtype = DTYPES[precision]
    if dtype is None:
        return
    kind = device.type
    hint = "use test_cfg.precision='fp32'"
    if not torch.amp.is_autocast_available(kind):
        raise ValueError(f'test_cfg.precision={precision!r}: torch.autocast is not available '
                         f'on device {kind!r}; {hint}')
    if kind == 'cuda' and dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
        name = torch.cuda.get_device_name(device)
        raise ValueError(f"test_cfg.precision='bf16': CUDA device {name!r} does not support "
                         f"bfloat16; use 'fp16' or 'fp32'")
    # autocast itself warns and disables when a device does not take a dtype
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        ctx = torch.autocast(kind, dtype=dtype)
    if not getattr(ctx, '_enabled', True) or any(
            'not supported' in str(w.message) for w in caught):
        msg = '; '.join(str(w.message) for w in caught) or 'autocast disabled itself'
        raise ValueError(f'test_cfg.precision={precision!r} cannot run on device {kind!r} '
                         f'({msg}); {hint}')


class NetworkPlan(NamedTuple):
    """Memory format and autocast dtype for the network layers on one device.

    Attributes:
        device_type (str): ``'cpu'``, ``'cuda'``, ...
        dtype (torch.dtype | None): autocast dtype; None runs as the caller does (fp32).
        channels_last (bool | None): modules and 4-D inputs in ``torch.channels_last``
            (True) or contiguous (False); None leaves both as they are.
        compile (bool): run the backbone and neck through ``torch.compile``.
    """
    device_type: str = 'cpu'
    dtype: Optional[torch.dtype] = None
    channels_last: Optional[bool] = None
    compile: bool = False

    @property
    def identity(self) -> bool:
        """True if the plan changes nothing (no autocast, layouts left alone)."""
        return self.dtype is None and self.channels_last is None and not self.compile

    def autocast(self):
        """``torch.autocast(device_type, dtype)``, or a no-op context for fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def input(self, x: Tensor) -> Tensor:
        """A 4-D network input in the plan's layout (other tensors unchanged)."""
        if self.channels_last is None or not isinstance(x, Tensor) or x.dim() != 4:
            return x
        return x.contiguous(memory_format=self._format())

    def _format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def output(self, x):
        """Network outputs (a tensor or a nested tuple/list) as fp32 contiguous tensors."""
        if isinstance(x, Tensor):
            if x.is_floating_point() and x.dtype != torch.float32:
                x = x.float()
            return x.contiguous()
        if isinstance(x, (tuple, list)):
            return type(x)(self.output(t) for t in x)
        return x

    def run(self, module: nn.Module, x, *args, **kwargs):
        """``module(x, ...)`` with the module and ``x`` in the plan's layout, under its
        autocast; the outputs come back fp32 contiguous (the identity plan: a plain call)."""
        if self.identity:
            return module(x, *args, **kwargs)
        prepare_module(module, self.channels_last)
        with self.autocast():
            return self.output(module(self.input(x), *args, **kwargs))


FP32 = NetworkPlan()  # as written: no autocast, layouts left alone


def resolve_plan(test_cfg: dict, device: torch.device) -> NetworkPlan:
    """The :class:`NetworkPlan` that ``test_cfg`` selects on ``device``.

    Raises:
        ValueError: an unknown option value, or a precision the device cannot run.
    """
    test_cfg = test_cfg or {}
    check_network_options(test_cfg)
    device = torch.device(device)
    precision = test_cfg.get('precision', 'fp32')
    _check_device_precision(device, precision)
    fmt = test_cfg.get('memory_format', 'auto')
    if fmt == 'auto':
        channels_last = device.type in AUTO_CHANNELS_LAST
    else:
        channels_last = fmt == 'channels_last'
    return NetworkPlan(device.type, DTYPES[precision], channels_last,
                       bool(test_cfg.get('compile', False)))


def prepare_module(module: nn.Module, channels_last: Optional[bool]) -> nn.Module:
    """Put the module's 4-D parameters/buffers in channels_last (or back), once per change
    (None: leave the module as it is).

    The current layout is remembered on the module, so repeated calls cost nothing. The
    parameters stay the same objects (optimizers and checkpoints are unaffected; a
    checkpoint loaded later is copied into the current layout).
    """
    if channels_last is not None and \
            module.__dict__.get('_logocap_channels_last', False) != channels_last:
        module.to(memory_format=torch.channels_last if channels_last
                  else torch.contiguous_format)
        module.__dict__['_logocap_channels_last'] = channels_last
    return module


_CURRENT: contextvars.ContextVar = contextvars.ContextVar('logocap_network_plan', default=FP32)


def current_plan() -> NetworkPlan:
    """The plan of the ``predict`` call in progress (:data:`FP32` outside of one)."""
    return _CURRENT.get()


@contextlib.contextmanager
def use_plan(plan: NetworkPlan):
    """Make ``plan`` current for the network parts called inside the block."""
    token = _CURRENT.set(plan)
    try:
        yield plan
    finally:
        _CURRENT.reset(token)
