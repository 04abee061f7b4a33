# Copyright (c) logocap_mm contributors.
"""Tiny models and inputs for the test suite, built one way everywhere.

The paths point into the source checkout this package is imported from (the test suite
runs on a checkout: its configs and bundled data live beside the package).
"""
import copy
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from logocap_mm.utils.config import strip_pretrained

__all__ = ['REPO_ROOT', 'TINY_CONFIG', 'TEST_TINY_CONFIG', 'COCO_DATA', 'tiny_config',
           'build_tiny_model', 'build_tiny_head', 'tiny_data_samples']

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# input 256, HRNet with one block per branch (demo / tools size)
TINY_CONFIG = osp.join(REPO_ROOT, 'configs', 'logocap', 'tiny_coco_demo.py')
# input 128, narrower still (about a second per CPU iteration)
TEST_TINY_CONFIG = osp.join(REPO_ROOT, 'tests', 'configs', 'tiny_coco.py')
COCO_DATA = osp.join(REPO_ROOT, 'tests', 'data', 'coco')


def tiny_config(path: str = TINY_CONFIG, data_root: Optional[str] = COCO_DATA):
    """A config with the default scope set to mmpose and no Pretrained init.

    Args:
        path: config file (default: the tiny demo config).
        data_root: folder set as ``data_root`` of the config and of every dataloader's
            dataset it has (default: the bundled COCO samples); None keeps the file's.
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    import logocap_mm  # noqa: F401  (registers the plugin)
    init_default_scope('mmpose')
    c = Config.fromfile(path)
    strip_pretrained(c.model)
    if data_root is not None:
        c.data_root = data_root.rstrip('/') + '/'
        for dl in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            if c.get(dl):
                c[dl].dataset.data_root = c.data_root
    return c


def build_tiny_model(cfg=None, seed: int = 0, **test_cfg):
    """The config's model with seeded random weights (``init_weights``), in training mode
    as built; ``test_cfg`` entries update ``model.test_cfg``.

    Args:
        cfg: a Config (default: :func:`tiny_config`); seed: ``torch.manual_seed`` first.
    """
    from mmpose.registry import MODELS
    cfg = tiny_config() if cfg is None else cfg
    torch.manual_seed(seed)
    mcfg = copy.deepcopy(cfg.model)
    if test_cfg:
        mcfg.setdefault('test_cfg', {})
        mcfg.test_cfg.update(test_cfg)
    model = MODELS.build(mcfg)
    model.init_weights()
    return model


def build_tiny_head(cfg=None, seed: int = 0, **overrides):
    """The config's ``LogoCapHead`` alone (seeded PyTorch default init); ``overrides``
    update the head config (e.g. ``num_keypoints=14, metainfo=...``)."""
    from mmpose.registry import MODELS
    cfg = tiny_config() if cfg is None else cfg
    torch.manual_seed(seed)
    hcfg = copy.deepcopy(cfg.model.head)
    hcfg.update(overrides)
    return MODELS.build(hcfg)


def tiny_data_samples(batch: int = 1, size: Tuple[int, int] = (64, 64),
                      flip_indices: Optional[Sequence[int]] = None,
                      num_keypoints: int = 17) -> Tuple[torch.Tensor, List]:
    """Zero images and test-time ``PoseDataSample`` s for ``model.predict``.

    The canvas is the whole image (input centre = image centre, scale = size), so
    predictions in I equal those in O.

    Args:
        batch: B; size: (W, H) of the input canvas; flip_indices: the samples' flip pairs
            (default: identity of ``num_keypoints``).

    Returns:
        inputs (B, 3, H, W) zeros and B data samples.
    """
    from mmpose.structures import PoseDataSample
    w, h = int(size[0]), int(size[1])
    fi = list(range(num_keypoints)) if flip_indices is None else list(flip_indices)
    samples = [PoseDataSample(metainfo=dict(
        img_shape=(h, w), ori_shape=(h, w), input_size=(w, h),
        input_center=np.array([w / 2., h / 2.]), input_scale=np.array([float(w), float(h)]),
        flip_indices=fi, img_id=i, id=i)) for i in range(batch)]
    return torch.zeros(batch, 3, h, w), samples


def fixed_train_pipeline(codec, size: int) -> list:
    """A training pipeline without augmentation (one fixed sample per image): load, fit the
    short side to ``size``, targets with ``codec``, heatmap mask, pack."""
    return [
        dict(type='LoadImage'),
        dict(type='BottomupRandomAffine', input_size=(size, size), shift_factor=0.,
             scale_factor=(1., 1.), rotate_factor=0., scale_type='short'),
        dict(type='GenerateTarget', encoder=codec),
        dict(type='BottomupGetHeatmapMask'),
        dict(type='PackPoseInputs'),
    ]


def fixed_train_batch(cfg, data_root: str = COCO_DATA, size: int = 128) -> dict:
    """Every image of ``cfg``'s training set under ``data_root``, through
    :func:`fixed_train_pipeline`, collated as one batch (``pseudo_collate``)."""
    from mmengine.dataset import pseudo_collate
    from mmpose.registry import DATASETS
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg.data_root = data_root.rstrip('/') + '/'
    ds_cfg.pipeline = fixed_train_pipeline(cfg.codec, size)
    ds = DATASETS.build(ds_cfg)
    return pseudo_collate([ds[i] for i in range(len(ds))])
