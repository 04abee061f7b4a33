"""Reading the reference checkpoint and writing the converted one (paths checked, atomic)."""
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Callable, Optional

import numpy as np
import torch

from logocap_rt.outputs import InputSet, check_output, same_file
from logocap_rt.outputs import atomic_write as shared_atomic_write

from .keys import ConversionError, convert_state_dict, unwrap_state_dict

__all__ = ['refusal_reason', 'load_reference_state_dict', 'check_paths', 'atomic_write',
           'check_weights', 'coco_dataset_meta', 'convert_checkpoint']

UNSAFE_WARNING = ('--unsafe-load (torch.load(weights_only=False)) runs whatever code the file '
                  'contains: use it only for a file from a source you trust')


# ----------------------------------------------------------------------------- reading
def refusal_reason(exc: BaseException, path: Optional[str] = None) -> str:
    """What ``torch.load(weights_only=True)`` refused, from its error (and the file, if given).

    Names the refused global(s) (``GLOBAL os.system``) or logocap_mm's own refusal (e.g. an
    object dtype) instead of torch's generic first line.
    """
    msg = str(exc)
    names = []
    if path is not None:
        try:
            from ..safe_load import checkpoint_safe_globals
            with checkpoint_safe_globals():
                names = list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception:  # noqa: BLE001 (legacy / unreadable format: use the message)
            names = []
    found = re.findall(r'GLOBAL (\S+) (?:was not an allowed global|whose module)', msg)
    names += [n for n in found if n not in names]
    ours = re.search(r'logocap_mm refused [^\n]*', msg)
    parts = []
    if names:
        parts.append('it asks for globals that are not allowed in a weights-only load: '
                     + ', '.join(names))
    if ours:
        parts.append(ours.group(0).rstrip('.'))
    if not parts:
        m = re.search(r'WeightsUnpickler error:\s*(.+)', msg)
        detail = m.group(1) if m else next((ln for ln in reversed(msg.splitlines())
                                            if ln.strip()), '')
        parts.append(f'{type(exc).__name__}: {detail.strip()}' if detail.strip()
                     else type(exc).__name__)
    return '; '.join(parts)


def _is_weights_only_refusal(exc: BaseException) -> bool:
    text = str(exc).lower()
    return 'weights only' in text or 'weights_only' in text or 'logocap_mm refused' in text


def load_reference_state_dict(src: str, unsafe_load: bool = False):
    """``torch.load`` a reference checkpoint (``weights_only=True``, with logocap_mm's
    checkpoint-scoped allow-list, unless ``unsafe_load``) and :func:`unwrap_state_dict` it.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        ValueError: ``src`` is a directory or empty, torch refused it (the message names what
            was refused) or could not read it, or it is not a reference state dict.
    """
    _check_source(src, 'checkpoint')
    try:
        if unsafe_load:
            obj = torch.load(src, map_location='cpu', weights_only=False)
        else:
            from ..safe_load import checkpoint_safe_globals
            with checkpoint_safe_globals():
                obj = torch.load(src, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 (re-raised with what went wrong)
        if not unsafe_load and _is_weights_only_refusal(e):
            raise ValueError(
                f'{src}: torch.load(weights_only=True) refused it: {refusal_reason(e, src)}. '
                f'{UNSAFE_WARNING}.') from e
        raise ValueError(
            f'{src}: cannot read it as a PyTorch checkpoint ({type(e).__name__}: '
            f'{str(e).strip() or "no details"}); the file may be truncated or corrupt '
            '(an interrupted download or copy).') from e
    return unwrap_state_dict(obj, src)


# ----------------------------------------------------------------------------- paths
def _check_source(path: str, what: str) -> None:
    if not osp.exists(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    if osp.isdir(path):
        raise ValueError(f'{what} {path} is a directory, not a file')
    if not osp.isfile(path):
        raise ValueError(f'{what} {path} is not a regular file')
    if osp.getsize(path) == 0:
        raise ValueError(f'{what} {path} is empty (0 bytes): an interrupted download or copy? '
                         'Download or copy it again.')


def _same_file(a: str, b: str) -> bool:
    """Same file: same inode if both exist (symlinks, hard links), else same real path."""
    return same_file(a, b)


def _check_target(path: str, what: str) -> None:
    """The shared output rules (:func:`logocap_rt.outputs.check_output`): not a directory,
    not an existing device / FIFO / socket, inside a folder."""
    check_output(path, None, what)


def check_paths(src: str, dst: str, ref_config: Optional[str] = None,
                out_config: Optional[str] = None, base: Optional[str] = None) -> None:
    """Refuse missing / empty / directory inputs and outputs that would replace an input.

    Outputs (DST, --out-config) must not be the same file as any input (SRC, --ref-config,
    --base) or as each other: same path, a symlink or a hard link to it (``os.path.samefile``).

    Raises:
        FileNotFoundError: an input does not exist.
        ValueError: any other problem, naming both paths.
    """
    _check_source(src, 'checkpoint')
    if ref_config is not None:
        _check_source(ref_config, 'reference config')
    inputs = [('SRC', src), ('--ref-config', ref_config), ('--base', base)]
    outputs = [('DST', dst), ('--out-config', out_config)]
    for name, out in outputs:
        if out is None:
            continue
        _check_target(out, name)
        for iname, inp in inputs:
            if inp is not None and _same_file(out, inp):
                raise ValueError(f'{name} {out} is the same file as {iname} {inp} (same path, '
                                 'a symlink or a hard link): writing it would destroy the '
                                 f'{iname} file. Choose another {name}.')
    if out_config is not None and _same_file(dst, out_config):
        raise ValueError(f'--out-config {out_config} is the same file as DST {dst}: choose two '
                         'different files.')


def atomic_write(path: str, write: Callable, inputs: Optional[InputSet] = None) -> None:
    """Write ``path`` via ``write(binary_file)`` into a temporary file in the same directory
    (created if missing), fsync it, then rename it over ``path`` (the shared rules of
    :func:`logocap_rt.outputs.atomic_write`, checked again against ``inputs``): on any error
    (a full disk) ``path`` keeps its old content and the temporary file is removed."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    shared_atomic_write(path, write, inputs, fsync=True)


# ----------------------------------------------------------------------------- weights
def check_weights(sd: dict) -> None:
    """Every converted tensor must have the model's dtype (float32; int64 for BatchNorm's
    ``num_batches_tracked``) and finite values.

    A checkpoint of int64 / float16 / bool weights or with NaN / inf values would convert
    and then load into a model that returns no poses; it is refused instead.

    Raises:
        ConversionError: naming the keys (up to 8) and what is wrong with them.
    """
    bad = []
    for k, v in sd.items():
        want = torch.int64 if k.endswith('num_batches_tracked') else torch.float32
        if not isinstance(v, torch.Tensor):
            bad.append(f'{k}: a {type(v).__name__}, not a tensor')
        elif v.dtype != want:
            bad.append(f'{k}: dtype {str(v.dtype)[6:]}, the model needs '
                       f'{str(want)[6:]}')
        elif v.is_floating_point() and not bool(torch.isfinite(v).all()):
            n = int((~torch.isfinite(v)).sum())
            bad.append(f'{k}: {n} non-finite value(s) (NaN / inf) of {v.numel()}')
    if bad:
        more = f'; ... (+{len(bad) - 8} more)' if len(bad) > 8 else ''
        raise ConversionError(f'{len(bad)} converted tensor(s) cannot be used: '
                              + '; '.join(bad[:8]) + more)


# ----------------------------------------------------------------------------- metadata
def _plain(obj):
    """numpy -> Python lists/scalars, recursively (checkpoint meta must load with
    ``torch.load(weights_only=True)`` without any allow-list)."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj


def coco_dataset_meta(template: str = 'coco') -> dict:
    """MMPose's dataset metainfo (``configs/_base_/datasets/<template>.py``) as plain Python."""
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    allowed = ('coco', 'crowdpose', 'ochuman')
    if template not in allowed:
        raise ValueError(f'dataset template must be one of {allowed}, got {template!r}')
    import mmpose
    rel = f'configs/_base_/datasets/{template}.py'
    path = osp.join(osp.dirname(mmpose.__file__), '.mim', rel)
    return _plain(parse_pose_metainfo(dict(from_file=path if osp.isfile(path) else rel)))


# ----------------------------------------------------------------------------- top level
def convert_checkpoint(src: str, dst: str, ref_config: Optional[str] = None,
                       out_config: Optional[str] = None, base: Optional[str] = None,
                       unsafe_load: bool = False) -> dict:
    """Convert ``src`` (reference checkpoint) to the mmengine checkpoint ``dst``.

    With ``ref_config`` the architecture comes from that yaml (and must match the weights);
    otherwise it is inferred from the keys. ``out_config`` (needs ``ref_config``) writes the
    MMPose config from :func:`make_override_config`. All paths are checked first
    (:func:`check_paths`), the config text is made before anything is written, and both
    files are written atomically (:func:`atomic_write`). ``meta.converted_from`` and
    ``meta.ref_config`` hold file names only.

    Returns:
        dict(num_keys, extra, head_cfg, dst, out_config).
    """
    from .config_text import make_override_config
    from .refcfg import _get, arch_from_ref_config, load_ref_config
    if out_config and not ref_config:
        raise ValueError('--out-config needs --ref-config (the reference experiment yaml)')
    check_paths(src, dst, ref_config, out_config, base)
    ref_sd = load_reference_state_dict(src, unsafe_load=unsafe_load)
    extra = head_cfg = cfg = None
    template = 'coco'
    if ref_config:
        cfg = load_ref_config(ref_config)
        extra, head_cfg = arch_from_ref_config(cfg)
        template = str(_get(cfg, 'MODEL.TEMPLATE', 'coco')).lower()
    sd, extra, head_cfg = convert_state_dict(ref_sd, extra, head_cfg)
    check_weights(sd)
    text = (make_override_config(cfg, base=base, source=osp.basename(ref_config))
            if out_config else None)
    meta = dict(dataset_meta=coco_dataset_meta(template),
                converted_from=osp.basename(src),
                converter='logocap_mm tools/convert_official_ckpt.py')
    if ref_config:
        meta['ref_config'] = osp.basename(ref_config)
    ckpt = dict(state_dict=OrderedDict((k, v.contiguous()) for k, v in sd.items()), meta=meta)
    inputs = InputSet([src, ref_config, base])
    atomic_write(dst, lambda f: torch.save(ckpt, f), inputs)
    if out_config:
        atomic_write(out_config, lambda f: f.write(text.encode('utf-8')), inputs)
    return dict(num_keys=len(sd), extra=extra, head_cfg=head_cfg, dst=dst,
                out_config=out_config)
