"""Checkpoint sanity checks: clear errors instead of silently loading the wrong weights.

mmengine loads ``load_from`` / ``mim test --checkpoint`` / inferencer weights with
``strict=False`` and only *logs* missing, unexpected and shape-mismatched keys, so a
checkpoint of the reference implementation (not converted) or of another model would run
with random weights. :func:`check_state_dict_keys` is called by ``LogoCapPoseEstimator``
before loading and raises a ``ValueError`` saying what is wrong and what to do.
:func:`missing_model_keys` / :func:`check_complete_for_inference` let a partial checkpoint
(e.g. backbone only) be loaded for fine-tuning but not be used for inference.
:func:`install_checkpoint_file_errors` makes unreadable (truncated, corrupt) local checkpoint
files fail with an error that names the file.
"""
from typing import Dict, List, Mapping, Sequence

import torch.nn as nn

__all__ = ['REFERENCE_KEY_PREFIXES', 'check_state_dict_keys', 'install_checkpoint_file_errors',
           'missing_model_keys', 'check_complete_for_inference']

#: top-level module names of the reference implementation's head (cherubicXN/logocap)
REFERENCE_KEY_PREFIXES = ('transition_cls.', 'final_layer_cls.', 'transition_reg.',
                          'final_layer_reg.', 'transition_embedding.', 'joints_mlp.')
CONVERTER = 'python tools/convert_official_ckpt.py REFERENCE.pth.tar CONVERTED.pth'
_SHOW = 6


def _strip(key: str) -> str:
    for p in ('module.', 'model.'):
        if key.startswith(p):
            key = key[len(p):]
    return key


def check_state_dict_keys(module: nn.Module, state_dict: Mapping, prefix: str = '') -> None:
    """Raise ``ValueError`` if ``state_dict`` cannot be the weights of ``module``.

    Rejected (each with the offending keys in the message):

    * reference LOGO-CAP keys (``transition_cls.*``, ``joints_mlp.*``, ...): the checkpoint
      must be converted with ``tools/convert_official_ckpt.py`` first;
    * no key in common with the model: a checkpoint of another model;
    * keys whose shapes differ from the model's (another keypoint count or width).

    A checkpoint holding a subset of the model's keys with the right shapes (e.g. only
    ``backbone.*``) is accepted here, for fine-tuning; ``LogoCapPoseEstimator`` refuses to
    predict with it (:func:`missing_model_keys`, :func:`check_complete_for_inference`).

    Args:
        module: the model that is about to load ``state_dict``.
        state_dict: flat name -> tensor mapping (as given to ``_load_from_state_dict``).
        prefix: the module's prefix inside ``state_dict`` ('' for the top-level model).
    """
    keys = [k[len(prefix):] for k in state_dict if k.startswith(prefix)]
    if not keys:
        return
    ref = sorted(k for k in keys if _strip(k).startswith(REFERENCE_KEY_PREFIXES))
    if ref:
        raise ValueError(
            f'the checkpoint is a LOGO-CAP reference checkpoint (cherubicXN/logocap); it has '
            f'reference keys such as {ref[:_SHOW]} that {type(module).__name__} does not use. '
            f'Convert it first with\n    {CONVERTER}\nand load the converted file.')
    own: Dict[str, tuple] = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    common = [k for k in keys if k in own]
    if not common:
        raise ValueError(
            f'the checkpoint is not a {type(module).__name__} checkpoint: none of its '
            f'{len(keys)} keys (e.g. {sorted(keys)[:_SHOW]}) is a parameter of this model '
            f'(e.g. {sorted(own)[:_SHOW]}). Use a checkpoint trained with this config, or '
            f'convert a reference checkpoint with {CONVERTER}.')
    bad = [k for k in common if tuple(state_dict[prefix + k].shape) != own[k]]
    if bad:
        detail = ', '.join(f'{k}: checkpoint {tuple(state_dict[prefix + k].shape)} vs model '
                           f'{own[k]}' for k in bad[:_SHOW])
        raise ValueError(
            f'the checkpoint does not fit this model: {len(bad)} tensors have other shapes '
            f'({detail}{", ..." if len(bad) > _SHOW else ""}). It was trained with another '
            'architecture (keypoint count, HRNet or head widths): use its own config, or '
            'delete these keys from the checkpoint to fine-tune from the rest.')


def missing_model_keys(module: nn.Module, state_dict: Mapping, prefix: str = '') -> List[str]:
    """Tensors of ``module`` that ``state_dict`` does not hold (sorted).

    ``num_batches_tracked`` counters are not counted: they do not change predictions (and
    torch fills them in for old checkpoints).
    """
    have = {k[len(prefix):] for k in state_dict if k.startswith(prefix)}
    return sorted(k for k in module.state_dict()
                  if k not in have and not k.endswith('num_batches_tracked'))


def check_complete_for_inference(module: nn.Module, missing: Sequence[str]) -> None:
    """Raise ``ValueError`` naming ``missing`` (tensors the last loaded checkpoint lacked).

    Called before predicting: these tensors still hold their initial (random) values, so the
    predictions would silently differ from the checkpoint's model.
    """
    if not missing:
        return
    shown = ', '.join(missing[:_SHOW]) + (', ...' if len(missing) > _SHOW else '')
    raise ValueError(
        f'{type(module).__name__}: the loaded checkpoint lacks {len(missing)} tensors of this '
        f'model ({shown}); predicting would use their random initial values. Load a complete '
        f'checkpoint (trained with this config, or converted with {CONVERTER}). A partial '
        'checkpoint (e.g. backbone only) is only for fine-tuning: load_from in a training run.')


def install_checkpoint_file_errors() -> None:
    """Wrap mmengine's local-file checkpoint loader so read errors name the file.

    ``torch.load`` on a truncated or corrupt file raises e.g. ``RuntimeError:
    PytorchStreamReader failed reading zip archive`` or ``EOFError`` without the path. The
    wrapper re-raises the same exception type with the path and a hint prepended.
    Idempotent; other schemes (http, s3, ...) are untouched.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    loader = CheckpointLoader._schemes.get('')
    if loader is None or getattr(loader, '_logocap_wrapped', False):
        return

    def load_local_checkpoint(filename, map_location=None):
        try:
            return loader(filename, map_location)
        except FileNotFoundError:
            raise
        except Exception as e:  # noqa: BLE001 (re-raised with context)
            if 'weights only' in str(e).lower() or 'weights-only' in str(e).lower():
                hint = ('torch.load(weights_only=True) refused an object in it; load only '
                        'checkpoints you trust, see the message above.')
            else:
                hint = ('The file is truncated or corrupt (an interrupted download or copy, '
                        'or a run killed while saving), or not a PyTorch checkpoint: download '
                        'it again or use an earlier checkpoint.')
            msg = f'cannot read checkpoint file {filename!r}: {type(e).__name__}: {e}\n{hint}'
            try:
                err = type(e)(msg)
            except Exception:  # noqa: BLE001 (exception types with other signatures)
                err = RuntimeError(msg)
            raise err from e

    load_local_checkpoint._logocap_wrapped = True
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)
