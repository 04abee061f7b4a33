"""Checks of the dataset meta a LOGO-CAP model receives (flip pairs, keypoint count).

The model gets its dataset meta from the config (the head's ``metainfo`` file), from
``init_model`` / ``MMPoseInferencer`` (a checkpoint's ``meta.dataset_meta`` or the config),
or from a plain ``model.dataset_meta = ...``; the flip test reads ``flip_indices`` from the
data samples. All of them go through :func:`check_flip_indices` /
:func:`check_dataset_meta`, so a bad entry fails with the field and its source named.
"""
import warnings
from typing import Optional, Sequence

import numpy as np

__all__ = ['check_flip_indices', 'check_dataset_meta', 'config_flip_indices']


def check_flip_indices(flip_indices, num_keypoints: int, source: str = 'flip_indices'):
    """``flip_indices`` as a list of ints; a ValueError unless it is a permutation of
    ``range(num_keypoints)`` (each keypoint's mirror partner, every index exactly once).

    Args:
        flip_indices: sequence of K ints.
        num_keypoints: K of the model.
        source: where the value comes from, for the message.
    """
    try:
        arr = np.asarray(flip_indices)
    except Exception:  # pragma: no cover (ragged input)
        arr = np.asarray([], dtype=object)
    ok_type = arr.ndim == 1 and (arr.dtype.kind in 'iu' or (
        arr.dtype.kind == 'O' and all(isinstance(v, (int, np.integer)) and
                                      not isinstance(v, bool) for v in arr)))
    if not ok_type:
        raise ValueError(f'{source} must be a list of {num_keypoints} ints, got '
                         f'{flip_indices!r}')
    idx = [int(v) for v in arr]
    if len(idx) != num_keypoints:
        raise ValueError(f'{source} has {len(idx)} entries, expected {num_keypoints} '
                         f'(num_keypoints of the model): {idx}')
    if sorted(idx) != list(range(num_keypoints)):
        missing = sorted(set(range(num_keypoints)) - set(idx))
        raise ValueError(f'{source} must be a permutation of range({num_keypoints}) (each '
                         f'keypoint index exactly once), got {idx}; missing {missing}')
    return idx


def check_dataset_meta(meta, num_keypoints: int, config_meta: Optional[dict] = None,
                       source: str = 'dataset_meta'):
    """Validate a dataset meta dict given to the model; returns it unchanged.

    * ``meta['num_keypoints']`` (or the length of ``flip_indices`` / ``keypoint_id2name``)
      must equal the model's K: a ValueError naming both otherwise.
    * ``meta['flip_indices']`` must be a permutation of ``range(K)``.
    * If ``config_meta`` (the config's meta: ``flip_indices``) is known and the flip pairs
      differ, a ``UserWarning`` names both (the given meta is the one used).
    """
    if meta is None:
        return meta
    if not isinstance(meta, dict):
        raise ValueError(f'{source} must be a dict, got {type(meta).__name__}')
    k = meta.get('num_keypoints')
    if k is None and meta.get('keypoint_id2name'):
        k = len(meta['keypoint_id2name'])
    if k is not None and int(k) != num_keypoints:
        raise ValueError(
            f'{source} has num_keypoints={int(k)}, but the model (config) has '
            f'num_keypoints={num_keypoints}: the checkpoint / meta and the config are for '
            'different datasets; use the config that matches the checkpoint')
    if meta.get('flip_indices') is not None and len(meta['flip_indices']):
        fi = check_flip_indices(meta['flip_indices'], num_keypoints,
                                f"{source}['flip_indices']")
        ref = (config_meta or {}).get('flip_indices')
        if ref is not None and list(ref) != fi:
            warnings.warn(
                f"{source}['flip_indices'] = {fi} differs from the config's metainfo "
                f'flip_indices = {list(ref)}; the flip test uses {fi}', UserWarning,
                stacklevel=3)
    return meta


def config_flip_indices(metainfo) -> Optional[Sequence[int]]:
    """``flip_indices`` of a parsed MMPose metainfo dict (None if absent)."""
    if not metainfo:
        return None
    fi = metainfo.get('flip_indices')
    return None if fi is None else [int(v) for v in fi]
