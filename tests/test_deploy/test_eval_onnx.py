"""tools/deploy/eval_onnx.py scores every pose of an image (known answer: the ground truth
itself scores AP 1), on the split ``mim test`` scores."""
import json
import os.path as osp

import numpy as np
import pytest

from logocap_mm.testing import REPO_ROOT as ROOT
from logocap_mm.testing import load_tool

DATA = osp.join(ROOT, 'tests/data/coco/')


def _cfg():
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'configs/logocap/tiny_coco_demo.py'))
    cfg.test_dataloader.dataset.data_root = DATA
    cfg.test_evaluator.ann_file = DATA + 'test_coco.json'
    return cfg


def _ground_truth():
    coco = json.load(open(DATA + 'test_coco.json'))
    names = {im['id']: im['file_name'] for im in coco['images']}
    per = {}
    for a in coco['annotations']:
        if a.get('iscrowd') or not a.get('num_keypoints'):
            continue
        k = np.asarray(a['keypoints'], np.float64).reshape(17, 3)
        per.setdefault(osp.join(DATA, names[a['image_id']]), []).append(
            dict(keypoints=k[:, :2].tolist(), keypoint_scores=(k[:, 2] > 0).astype(float).tolist(),
                 bbox_score=1.0))
    return per


def test_every_pose_of_an_image_is_scored():
    tool = load_tool('tools/deploy/eval_onnx.py', 'eval_onnx_cli')
    gt = _ground_truth()
    assert max(len(v) for v in gt.values()) >= 4  # images with several people
    res, _, n = tool.score_dataset(_cfg(), lambda path: gt.get(path, []))
    assert n == 4
    assert res['coco/AP'] == pytest.approx(1.0) and res['coco/AR'] == pytest.approx(1.0)
    # one person per image found: recall 12 / 12 no longer
    res1, _, _ = tool.score_dataset(_cfg(), lambda path: gt.get(path, [])[:1])
    assert res1['coco/AR'] < 0.5


def test_limit_and_missing_evaluator():
    tool = load_tool('tools/deploy/eval_onnx.py', 'eval_onnx_cli')
    gt = _ground_truth()
    _, _, n = tool.score_dataset(_cfg(), lambda path: gt.get(path, []), limit=2)
    assert n == 2
    cfg = _cfg()
    cfg.test_evaluator = None
    cfg.val_evaluator = None
    with pytest.raises(ValueError, match='test_dataloader/test_evaluator'):
        tool.score_dataset(cfg, lambda path: [])
