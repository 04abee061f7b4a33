"""Shared helpers of the input / settings validation tests: the test-only tiny model
(tests/configs/tiny_coco.py, 128 px canvas, random weights) and its test pipeline."""
import copy
import os.path as osp

import numpy as np
import torch

import logocap_mm  # noqa: F401  (first: the mmcv._ext stand-in before mmpose.apis)
from logocap_mm.testing import COCO_DATA as COCO
from logocap_mm.testing import REPO_ROOT as ROOT  # noqa: F401  (used by importers)
from logocap_mm.testing import TEST_TINY_CONFIG as TINY
from logocap_mm.testing import build_tiny_model, tiny_config

K = 17


def load_cfg():
    c = tiny_config(TINY, COCO)
    c.test_evaluator.ann_file = osp.join(COCO, 'test_coco.json')
    c.model.backbone.pop('init_cfg', None)
    return c


def build_model(cfg, **test_cfg):
    model = build_tiny_model(cfg, **test_cfg)
    with torch.no_grad():  # centres above threshold: people are decoded
        model.head.heatmap_final.bias[-1] = 2.
    return model.eval()


def make_test_pipeline(cfg):
    from mmengine.dataset import Compose
    return Compose(copy.deepcopy(cfg.test_dataloader.dataset.pipeline))


def coco_meta():
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    return parse_pose_metainfo(dict(from_file='configs/_base_/datasets/coco.py'))


def infer(model, pipe, img, name='input.png', flip_indices=None):
    """Run one image (array) through the pipeline and ``test_step``; pred_instances (O)."""
    from mmengine.dataset import pseudo_collate
    fi = list(range(K)) if flip_indices is None else flip_indices
    data = pipe(dict(img=img, img_path=name, img_id=0, id=0, flip_indices=fi))
    with torch.no_grad():
        return model.test_step(pseudo_collate([data]))[0].pred_instances


def check_instances(pred, k=K):
    n = len(pred.keypoints)
    assert pred.keypoints.shape == (n, k, 2)
    assert pred.keypoint_scores.shape == (n, k)
    for v in (pred.keypoints, pred.keypoint_scores, pred.bboxes, pred.bbox_scores):
        assert np.isfinite(v).all()
    return n


def save_weights(model, path, meta=None):
    torch.save({'state_dict': model.state_dict(), 'meta': meta or {}}, path)
    return path
