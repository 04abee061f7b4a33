"""The value rules of LOGO-CAP's test-time settings, one declaration per setting.

Both runtimes check their settings here: the PyTorch side (``LogoCapResize``,
``LogoCapDecoder``, the estimator's data preprocessor) when a model or pipeline is built,
and the ONNX runtime (:func:`logocap_rt.metadata.check`) when an exported file is loaded.
So a value that one refuses, the other refuses too, with a ``ValueError`` that names the
setting. Standard library only (no numpy, no torch).

Size bounds (memory): a canvas side is at most :data:`MAX_CANVAS_SIDE` = 8192 px, so
``input_size`` and ``max_long_side`` are at most 8192. The largest canvas is then
8192 x 8192: 0.8 GB as the float32 network input alone (1.6 GB with the flip test), and
an HRNet-W32's activations at that size take tens of GB, so larger values are refused
instead of attempting the allocation. The shipped configs use 512 / 640 and 4096.
"""
import math
from typing import Any, NamedTuple, Optional, Tuple

__all__ = ['Rule', 'RULES', 'MAX_CANVAS_SIDE', 'ADAPTATION_LEVELS', 'ROUND_MODES',
           'check_value', 'check_canvas', 'pixel_range_error', 'PIXEL_RANGE']

MAX_CANVAS_SIDE = 8192
ADAPTATION_LEVELS = ('full', 'partial', 'none')
ROUND_MODES = ('reference', 'ceil')
#: the value range of float pixel arrays (8-bit intensities)
PIXEL_RANGE = (0., 255.)


class Rule(NamedTuple):
    """How one setting is checked.

    Attributes:
        kind: ``'int'`` (an int, not a bool), ``'number'`` (a finite int or float, not a
            bool), ``'bool'``, ``'choice'`` (one of ``choices``) or ``'numbers'`` (a list /
            tuple of ``length`` finite numbers, each within the bounds).
        low / high: inclusive bounds (None: unbounded); ``low_open``: ``> low`` instead.
        choices: the allowed values of a ``'choice'``.
        length: the entry count of ``'numbers'``.
        odd: an ``'int'`` must be odd.
        what: what the setting is, for messages.
    """
    kind: str
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    choices: Tuple = ()
    length: Optional[int] = None
    odd: bool = False
    what: str = ''


RULES = {
    # canvas geometry (LogoCapResize; ONNX metadata)
    'input_size': Rule('int', 1, MAX_CANVAS_SIDE, what='canvas short side S'),
    'size_factor': Rule('int', 1, MAX_CANVAS_SIDE, what='canvas sides are multiples of it'),
    'max_long_side': Rule('int', 1, MAX_CANVAS_SIDE, what='largest canvas side'),
    'min_side': Rule('int', 1, MAX_CANVAS_SIDE, what='smallest canvas side'),
    'round_mode': Rule('choice', choices=ROUND_MODES, what='long-side rounding'),
    'pad_val': Rule('numbers', *PIXEL_RANGE, length=3, what='border value of the warp'),
    # normalisation (the data preprocessor; ONNX metadata)
    'mean': Rule('numbers', length=3, what='per-channel mean'),
    'std': Rule('numbers', 0, None, low_open=True, length=3, what='per-channel std'),
    # decoder (LogoCapDecoder; ONNX metadata)
    'stride': Rule('int', 1, 64, what='network output stride'),
    'topk': Rule('int', 1, None, what='centre slots T'),
    'num_keypoints': Rule('int', 1, 1000, what='keypoint count K'),
    'sigmas': Rule('numbers', 0, None, low_open=True, what='OKS sigmas'),
    'adaptation': Rule('choice', choices=ADAPTATION_LEVELS, what='adaptation level'),
    'center_thr': Rule('number', what='centre score threshold'),
    'nms_dist_ratio': Rule('number', 0, None, what='pose NMS distance ratio'),
    'nms_num_joints': Rule('int', 0, None, what='pose NMS joint count'),
    'max_people': Rule('int', 1, None, what='people cap per image'),
    'pose_nms': Rule('bool', what='apply the pose NMS'),
}


def _is_int(v) -> bool:
    # numpy integers have __index__; bools are refused (True is not a size)
    return not isinstance(v, bool) and hasattr(v, '__index__') and \
        type(v).__name__ not in ('ndarray', 'Tensor')


def _is_number(v) -> bool:
    if isinstance(v, bool) or not (_is_int(v) or isinstance(v, float) or
                                   type(v).__name__.startswith('float')):
        return False
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _bounds(rule: Rule) -> str:
    parts = []
    if rule.low is not None:
        parts.append(f'{">" if rule.low_open else ">="} {rule.low:g}')
    if rule.high is not None:
        parts.append(f'<= {rule.high:g}')
    return (' ' + ' and '.join(parts)) if parts else ''


def _int_text(rule: Rule) -> str:
    """'a positive int', 'a positive odd int <= 8192', 'an int >= 0', ..."""
    odd = 'odd ' if rule.odd else ''
    if rule.low == 1 and not rule.low_open:
        text = f'a positive {odd}int'
        return text + (f' <= {rule.high:g}' if rule.high is not None else '')
    return f'an {odd}int{_bounds(rule)}'


def _in_bounds(v: float, rule: Rule) -> bool:
    if rule.low is not None and (v <= rule.low if rule.low_open else v < rule.low):
        return False
    return rule.high is None or v <= rule.high


def check_value(name: str, value: Any, label: Optional[str] = None,
                rule: Optional[Rule] = None) -> Any:
    """Check one setting against its rule and return it as a plain Python value (an int,
    a float, a bool, the choice, or a list of floats).

    Args:
        name: the setting's key in :data:`RULES`.
        value: the value to check.
        label: how the message names the setting (default ``name``), e.g.
            ``'m.onnx: metadata logocap_mm.std'`` or ``'LogoCapResize: input_size'``.
        rule: a rule to use instead of ``RULES[name]``.

    Raises:
        ValueError: naming ``label`` and the rule: a wrong kind, NaN / inf, a value out of
            bounds, an unknown choice or a wrong entry count.
    """
    rule = rule or RULES[name]
    label = label or name
    kind = rule.kind
    if kind == 'bool':
        if not isinstance(value, bool):
            raise ValueError(f'{label} must be True or False, got {value!r}')
        return value
    if kind == 'choice':
        if not isinstance(value, str) or value not in rule.choices:
            raise ValueError(f'{label} must be one of {rule.choices}, got {value!r}')
        return value
    if kind == 'int':
        ok = _is_int(value) and _in_bounds(int(value), rule) and \
            (not rule.odd or int(value) % 2 == 1)
        if not ok:
            raise ValueError(f'{label} must be {_int_text(rule)}, got {value!r}')
        return int(value)
    if kind == 'number':
        if not (_is_number(value) and _in_bounds(float(value), rule)):
            raise ValueError(f'{label} must be a finite number{_bounds(rule)}, got {value!r}')
        return float(value)
    if kind == 'numbers':
        seq = list(value) if isinstance(value, (list, tuple)) else None
        ok = seq is not None and (rule.length is None or len(seq) == rule.length) and \
            all(_is_number(v) and _in_bounds(float(v), rule) for v in seq)
        if not ok:
            n = f'{rule.length} ' if rule.length is not None else ''
            raise ValueError(f'{label} must be a list of {n}finite numbers{_bounds(rule)}, '
                             f'got {value!r}')
        return [float(v) for v in seq]
    raise ValueError(f'unknown rule kind {kind!r} for {name}')  # pragma: no cover


def check_canvas(input_size: int, size_factor: int, max_long_side: int, min_side: int,
                 prefix: str = '') -> None:
    """The relations between the canvas settings (each checked first with
    :func:`check_value`): ``max_long_side`` must hold at least one ``size_factor`` step,
    ``min_side`` and the short side ``input_size``.

    Raises:
        ValueError: naming the settings and their values.
    """
    if max_long_side < size_factor or max_long_side < min_side:
        raise ValueError(f'{prefix}max_long_side ({max_long_side}) must be >= size_factor '
                         f'({size_factor}) and min_side ({min_side})')
    if input_size > max_long_side:
        raise ValueError(f'{prefix}input_size ({input_size}) must be <= max_long_side '
                         f'({max_long_side}): the short side cannot exceed the long side')


def pixel_range_error(name: str, low: float, high: float) -> Optional[str]:
    """The message for a float image whose values ``[low, high]`` leave
    :data:`PIXEL_RANGE` (None when they stay within it)."""
    lo, hi = PIXEL_RANGE
    if low >= lo and high <= hi:
        return None
    return (f'image {name} has float pixel values in [{low:g}, {high:g}], outside '
            f'[{lo:g}, {hi:g}]; float images must hold 8-bit intensities (0..255, or 0..1 '
            'which is scaled by 255): rescale or clip it (e.g. np.clip(img, 0, 255))')

