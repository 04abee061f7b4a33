"""How the learned convolution parts run: memory format and autocast precision.

Two ``model.test_cfg`` options select it:

* ``memory_format``: ``'auto'`` (default), ``'channels_last'`` or ``'contiguous'``.
  ``'auto'`` is channels_last on CPU, where it was measured faster (W32, 512, flip, 30
  people, end to end: 0.74x of contiguous on a 2-core AMD EPYC (AVX2), 0.93x on a 2-core
  Xeon with AVX512), and contiguous on CUDA and other devices (not measured there yet). The
  layout changes the kernels' summation order (~1e-6 on the maps): the poses stay the same
  (keypoints within 1e-2 px on the tested images), but an exact tie of the reference (two
  equal centre scores, two equal KAM responses) can resolve the other way, so stage-by-stage
  parity with the reference is checked with ``'contiguous'``. Training has its own option,
  ``model.train_cfg.memory_format`` (``'contiguous'`` by default, or ``'channels_last'``:
  :func:`training_channels_last`), applied by ``LogoCapPoseEstimator.train()``.
* ``precision``: ``'fp32'`` (default), ``'bf16'`` or ``'fp16'``: ``torch.autocast`` over
  the network (backbone, neck, the head's branches and the CMP). The decoder geometry
  (upsampling, centre NMS, offsets to coordinates, global adaptation, scores, NMS) always
  runs in fp32 on contiguous tensors: :meth:`NetworkPlan.output` casts back.
* ``compile``: ``False`` (default) or ``True``: the backbone and neck run through
  ``torch.compile`` (inductor), compiled at the first ``predict`` and again for each new input
  shape, layout or precision (minutes on a small CPU); opt-in.
* ``fuse_conv_bn``: ``'auto'`` (default), ``True`` or ``False``: the backbone and neck, and
  the head's three map branches, run as copies with each BatchNorm folded into the
  convolution before it
  (:mod:`logocap_mm.models.fusion`: rounding-level changes, checked against the source once
  per rebuild; one more copy of their weights in memory). ``'auto'`` folds on every device
  whenever that check passes and otherwise runs the model as written, silently; ``True``
  does the same but warns when the check refuses the copy; ``False`` never folds. Folding
  keeps the poses (keypoints within 1e-2 px of the unfolded model on the tested images) and
  removes one memory-bound pass per convolution (W32, 512, flip, one image, on a quiet
  2-core AMD EPYC: 0.60x of the contiguous unfolded time with folding, 0.75x without, in
  the same stage-benchmark run; a whole ``inference_bottomup`` call with 30 people, where
  preprocessing and decoding do not change: 0.73x, best of 9).

The estimator resolves one :class:`NetworkPlan` per ``predict`` call (from ``test_cfg`` and
the input's device) and makes it current with :func:`use_plan`; the parts that run network
layers read it with :func:`current_plan`. Without a current plan (training, export, direct
calls) everything runs as written: fp32 autocast state of the caller, layout of the input.
"""
import contextlib
import contextvars
import warnings
from typing import NamedTuple, Optional, Union

import torch
from torch import Tensor, nn

PRECISIONS = ('fp32', 'bf16', 'fp16')
MEMORY_FORMATS = ('auto', 'channels_last', 'contiguous')
FUSE_CONV_BN = ('auto', True, False)
DTYPES = dict(fp32=None, bf16=torch.bfloat16, fp16=torch.float16)
# devices on which 'auto' picks channels_last (measured faster; see the module docstring)
AUTO_CHANNELS_LAST = ('cpu',)


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
    fuse = test_cfg.get('fuse_conv_bn', 'auto')
    if not (fuse == 'auto' or isinstance(fuse, bool)):
        raise ValueError(f'test_cfg.fuse_conv_bn must be one of {FUSE_CONV_BN}, got {fuse!r}')


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


_WARNED: set = set()


def _cpu_has_native(precision: str) -> bool:
    """Whether oneDNN runs ``precision`` natively on this CPU (AVX512-BF16/AMX for bf16,
    AVX512-FP16/AMX-FP16 for fp16); True when torch cannot tell."""
    probe = dict(bf16='_is_mkldnn_bf16_supported', fp16='_is_mkldnn_fp16_supported')[precision]
    try:
        return bool(getattr(torch.ops.mkldnn, probe)())
    except (AttributeError, RuntimeError):
        return True


def _warn_if_emulated(device: torch.device, precision: str) -> None:
    """Warn once per process if a CPU runs ``precision`` without native instructions: it
    runs, correctly, but the convolutions are ~10x slower than fp32 (a 2-core AVX2 EPYC:
    14 bf16 / 16 fp16 vs 138 fp32 GFLOP/s on a 3x3 convolution)."""
    if device.type != 'cpu' or DTYPES[precision] is None or precision in _WARNED:
        return
    if not _cpu_has_native(precision):
        _WARNED.add(precision)
        warnings.warn(f"test_cfg.precision={precision!r}: this CPU "
                      f"({torch.backends.cpu.get_cpu_capability()}) has no native {precision} "
                      f"instructions; it runs correctly but about 10x slower than 'fp32'")


class NetworkPlan(NamedTuple):
    """Memory format and autocast dtype for the network layers on one device.

    Attributes:
        device_type (str): ``'cpu'``, ``'cuda'``, ...
        dtype (torch.dtype | None): autocast dtype; None runs as the caller does (fp32).
        channels_last (bool | None): modules and 4-D inputs in ``torch.channels_last``
            (True) or contiguous (False); None leaves both as they are.
        compile (bool): run the backbone and neck through ``torch.compile``.
        fuse_conv_bn (bool | str): run the backbone and neck with BatchNorms folded:
            ``True`` (warn if the self-check refuses the folded copy), ``'auto'`` (fall back
            silently) or ``False``.
    """
    device_type: str = 'cpu'
    dtype: Optional[torch.dtype] = None
    channels_last: Optional[bool] = None
    compile: bool = False
    fuse_conv_bn: Union[bool, str] = False

    @property
    def identity(self) -> bool:
        """True if the plan changes nothing (no autocast, layouts left alone)."""
        return (self.dtype is None and self.channels_last is None and not self.compile
                and not self.fuse_conv_bn)

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
    _warn_if_emulated(device, precision)
    fmt = test_cfg.get('memory_format', 'auto')
    if fmt == 'auto':
        channels_last = device.type in AUTO_CHANNELS_LAST
    else:
        channels_last = fmt == 'channels_last'
    return NetworkPlan(device.type, DTYPES[precision], channels_last,
                       bool(test_cfg.get('compile', False)),
                       test_cfg.get('fuse_conv_bn', 'auto'))


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


def set_layout(module: nn.Module, channels_last: bool) -> None:
    """Put the whole module (every 4-D parameter/buffer) in channels_last or contiguous, and
    record it on every submodule (so later :func:`prepare_module` calls see the truth)."""
    module.to(memory_format=torch.channels_last if channels_last
              else torch.contiguous_format)
    for m in module.modules():
        m.__dict__['_logocap_channels_last'] = bool(channels_last)


TRAIN_MEMORY_FORMATS = ('contiguous', 'channels_last')


def training_channels_last(train_cfg: Optional[dict]) -> bool:
    """Whether training runs in channels_last: ``model.train_cfg.memory_format``,
    ``'contiguous'`` (default) or ``'channels_last'`` (opt-in: a W32 training step at 512,
    batch 2, took 0.72x of the contiguous one on a 2-core CPU, a tiny_synthetic step 0.96x).

    The estimator applies it when built (so that a ``DistributedDataParallel`` wrapper sees
    the final layout; moving the model to a device keeps it) and again at every ``train()``
    (a validation may have converted modules to the test-time layout). Not a default: a
    layout that differs from the one at wrapping time would cost DDP a gradient copy.

    Raises:
        ValueError: another value.
    """
    fmt = (train_cfg or {}).get('memory_format', 'contiguous')
    if fmt not in TRAIN_MEMORY_FORMATS:
        raise ValueError(f'train_cfg.memory_format must be one of {TRAIN_MEMORY_FORMATS}, '
                         f'got {fmt!r}')
    return fmt == 'channels_last'


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
