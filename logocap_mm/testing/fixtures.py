# Copyright (c) logocap_mm contributors.
"""Discovery of a reference parity fixture folder for the test suite.

A fixture folder (format: its README.md) holds one ``.npz`` per image and test size, two
training-forward files and the reference weights / configs. Nothing here assumes file names
or counts: a per-image file is any ``.npz`` holding ``file_name`` and ``input_size_hw``, and
its test size is the short side of its input canvas (I frame). Stages whose keys or files a
folder lacks are reported by :func:`missing_keys` / :func:`missing_file` so that a test can
skip them with a reason naming what is missing.
"""
import glob
import os
import os.path as osp
from functools import lru_cache
from typing import FrozenSet, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ['npz_keys', 'image_files', 'missing_keys', 'missing_file', 'skip_reasons',
           'TRAIN_FILES', 'converted_fixture_model']

# training-forward files of the format (README section 6)
TRAIN_FILES = ('train_forward.npz', 'train_forward_injected.npz')
IMAGE_KEYS = ('file_name', 'input_size_hw')


@lru_cache(maxsize=None)
def _keys(path: str, mtime: float) -> FrozenSet[str]:
    with np.load(path) as z:
        return frozenset(z.files)


def npz_keys(path: str) -> FrozenSet[str]:
    """Names of the arrays stored in ``path`` (reads only the archive's directory)."""
    return _keys(osp.abspath(path), os.stat(path).st_mtime)


@lru_cache(maxsize=None)
def _images(folder: str, stamp: Tuple) -> Tuple[Tuple[str, int], ...]:
    out = []
    for p in glob.glob(osp.join(folder, '*.npz')):
        if not all(k in npz_keys(p) for k in IMAGE_KEYS):
            continue
        with np.load(p) as z:
            size = int(np.asarray(z['input_size_hw']).min())
        out.append((p, size))
    return tuple(sorted(out, key=lambda t: (t[1], osp.basename(t[0]))))


def image_files(folder: str) -> List[Tuple[str, int]]:
    """``[(path, test size S)]`` of every per-image inference file in ``folder``.

    S is ``min(input_size_hw)``: the canvas' short side equals the test size
    (DATASET.INPUT_SIZE). Sorted by size, then file name. Empty if there are none.
    """
    folder = osp.abspath(folder)
    names = sorted(glob.glob(osp.join(folder, '*.npz')))
    stamp = tuple((n, os.stat(n).st_mtime) for n in names)
    return list(_images(folder, stamp))


def missing_keys(path: str, keys: Sequence[str], stage: str) -> Optional[str]:
    """Skip reason naming the keys of ``keys`` that ``path`` lacks, or None if it has all."""
    have = npz_keys(path)
    miss = [k for k in keys if k not in have]
    if not miss:
        return None
    return f'{osp.basename(path)} has no key(s) {", ".join(map(repr, miss))}: {stage} skipped'


def missing_file(folder: str, name: str, stage: str) -> Optional[str]:
    """Skip reason naming ``name`` if the folder lacks that file, else None."""
    if osp.isfile(osp.join(folder, name)):
        return None
    return f'fixture folder {folder} has no {name}: {stage} skipped'


def skip_reasons(folder: str, requirements: Sequence[Tuple[str, Sequence[str]]]) -> List[str]:
    """For every ``(stage, keys)`` and per-image file: the reasons that stage is skipped.

    A stage is skipped for a file when the file lacks any of its keys (see
    :func:`missing_keys`); a folder without per-image files gives one reason naming it.
    """
    files = image_files(folder)
    if not files:
        return [f'fixture folder {folder} has no per-image .npz file']
    out = []
    for stage, keys in requirements:
        for path, _ in files:
            r = missing_keys(path, keys, stage)
            if r:
                out.append(r)
    return out


def converted_fixture_model(fixture_dir: str, out_dir: str) -> dict:
    """The folder's reference weights (``ref_model.pth``) and config
    (``ref_config_full.yaml``) converted by the converter into ``out_dir`` (``ckpt.pth``,
    ``cfg.py``), built strictly from them on CPU in eval mode with the dataset meta set.

    Returns:
        dict(model, cfg (the mmengine Config), meta (dataset meta), ckpt, cfg_path (the
        converted files), info (the converter's report)).
    """
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS

    import logocap_mm  # noqa: F401  (registers the LogoCap* modules)
    from logocap_mm.convert import convert_checkpoint
    init_default_scope('mmpose')
    ckpt, cfg_path = osp.join(out_dir, 'ckpt.pth'), osp.join(out_dir, 'cfg.py')
    info = convert_checkpoint(osp.join(fixture_dir, 'ref_model.pth'), ckpt,
                              ref_config=osp.join(fixture_dir, 'ref_config_full.yaml'),
                              out_config=cfg_path)
    cfg = Config.fromfile(cfg_path)
    model = MODELS.build(cfg.model)
    ck = torch.load(ckpt, map_location='cpu', weights_only=True)
    model.load_state_dict(ck['state_dict'], strict=True)
    model.eval()
    meta = ck['meta']['dataset_meta']
    model.dataset_meta = meta
    return dict(model=model, cfg=cfg, meta=meta, ckpt=ckpt, cfg_path=cfg_path, info=info)
