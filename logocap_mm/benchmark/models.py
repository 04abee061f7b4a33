"""Config loading, LOGO-CAP model building and the dataset meta a benchmark needs.

Weights are random (seeded) unless a checkpoint is given: speed, FLOPs and memory do not
depend on the weights, and the decoder stages run on a synthetic scene
(:mod:`logocap_mm.benchmark.scene`) instead of the network's heatmaps.
"""
import copy
import logging
import os.path as osp
from typing import List, Optional, Tuple

import torch

from logocap_mm.utils.config import strip_pretrained

__all__ = ['strip_pretrained', 'load_config', 'quiet_init', 'build_logocap',
           'dataset_flip_indices']


def load_config(path: str, input_size: Optional[int] = None):
    """``(Config, input side)`` of a LOGO-CAP config file, Pretrained inits dropped.

    The input side defaults to the config codec's ``input_size`` (512 if none).
    """
    import logocap_mm  # noqa: F401  (registers the plugin, installs the mmcv-lite shim)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    if not osp.isfile(path):
        raise ValueError(f'config file not found: {path}')
    init_default_scope('mmpose')
    cfg = Config.fromfile(path)
    strip_pretrained(cfg.model)
    if input_size is None:
        codec = cfg.model.head.get('decoder') or {}
        input_size = int(codec.get('input_size', (512, 512))[0])
    return cfg, input_size


def quiet_init(model):
    """``model.init_weights()`` without mmengine's per-parameter INFO log."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


def build_logocap(cfg, device, checkpoint: Optional[str] = None, flip: bool = True,
                  seed: int = 0):
    """The config's model in eval mode on ``device``: seeded random weights, or those of
    ``checkpoint``; ``test_cfg.flip_test`` set to ``flip``."""
    from mmpose.registry import MODELS
    torch.manual_seed(seed)
    mcfg = copy.deepcopy(cfg.model)
    mcfg.setdefault('test_cfg', {})
    mcfg.test_cfg['flip_test'] = flip
    model = MODELS.build(mcfg)
    quiet_init(model)
    if checkpoint:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, checkpoint, map_location='cpu')
    return model.to(device).eval()


def _dataset_cfg(cfg):
    for name in ('test_dataloader', 'val_dataloader', 'train_dataloader'):
        ds = (cfg.get(name) or {}).get('dataset')
        while isinstance(ds, dict) and 'dataset' in ds and 'metainfo' not in ds:
            ds = ds['dataset']   # wrappers (RepeatDataset, ...)
        if isinstance(ds, dict):
            return ds
    return None


def dataset_flip_indices(cfg, head) -> Tuple[List[int], str]:
    """Flip pairs of the model's dataset and where they come from.

    In order: the head's ``metainfo`` (``head.config_flip_indices``), the config dataset's
    ``metainfo``, the dataset class's ``METAINFO`` (MMPose ``parse_pose_metainfo``).

    Returns:
        (flip_indices: K ints, a permutation of range(K); source description).

    Raises:
        ValueError: if none of them gives flip indices, or they do not fit the head's K.
    """
    from logocap_mm.models.heads.logocap_head import _parse_metainfo
    from logocap_mm.models.heads.meta_checks import check_flip_indices
    K = head.num_keypoints
    fi = getattr(head, 'config_flip_indices', None)
    if fi:
        return check_flip_indices(fi, K, 'flip_indices of the head metainfo'), 'head metainfo'
    ds = _dataset_cfg(cfg)
    if ds is not None:
        meta, src = ds.get('metainfo'), 'config dataset metainfo'
        if meta is None and ds.get('type'):
            from mmpose.registry import DATASETS
            try:
                cls = DATASETS.get(ds['type'])
            except KeyError:
                cls = None
            meta, src = getattr(cls, 'METAINFO', None), f"{ds['type']}.METAINFO"
        if meta:
            meta = meta.to_dict() if hasattr(meta, 'to_dict') else dict(meta)
            if set(meta) == {'from_file'}:
                meta = meta['from_file']   # a shipped MMPose file: found without a warning
            parsed = _parse_metainfo(meta)
            if parsed.get('flip_indices') is not None:
                return check_flip_indices(parsed['flip_indices'], K,
                                          f'flip_indices of the {src}'), src
    raise ValueError('the flip test needs flip_indices: give the head a metainfo file '
                     '(model.head.metainfo) or the config a dataset with metainfo, or turn '
                     'the flip test off')
