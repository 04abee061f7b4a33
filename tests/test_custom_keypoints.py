"""configs/examples/custom_keypoints.py: a 7-keypoint set with its own dataset meta builds,
trains two iterations on tiny generated data and tests end to end."""
import json
import math
import os
import os.path as osp

import pytest
import torch

from logocap_mm.testing import REPO_ROOT, load_tool, subset_keypoints

CFG = osp.join(REPO_ROOT, 'configs', 'examples', 'custom_keypoints.py')
# nose, shoulders, elbows, wrists of the 17 COCO keypoints of tools/make_synthetic.py
KEEP = [0, 5, 6, 7, 8, 9, 10]


def test_subset_keypoints_known_answer():
    coco = dict(images=[], annotations=[
        dict(id=1, keypoints=[1, 2, 2, 3, 4, 0, 5, 6, 1], num_keypoints=2)],
        categories=[dict(id=1, keypoints=['a', 'b', 'c'], skeleton=[[1, 2], [2, 3], [1, 3]])])
    out = subset_keypoints(coco, [2, 0])
    assert out['annotations'][0]['keypoints'] == [5, 6, 1, 1, 2, 2]
    assert out['annotations'][0]['num_keypoints'] == 2
    assert out['categories'][0]['keypoints'] == ['c', 'a']
    assert out['categories'][0]['skeleton'] == [[2, 1]]
    assert coco['annotations'][0]['keypoints'][0] == 1  # the input is not changed
    for bad in ([], [0, 0], [3]):
        with pytest.raises(ValueError, match='keep'):
            subset_keypoints(coco, bad)


@pytest.fixture(scope='module')
def upper_body_root(tmp_path_factory):
    """4 train / 2 val synthetic images, annotations reduced to the 7 keypoints."""
    root = str(tmp_path_factory.mktemp('upper_body'))
    make_synthetic = load_tool('tools/make_synthetic.py', 'make_synthetic_custom_kpt')
    assert make_synthetic.main(['--out-dir', root, '--seed', '5', '--num-train', '4',
                                '--num-val', '2']) == 0
    for split in ('train', 'val'):
        with open(osp.join(root, 'annotations', f'person_keypoints_{split}.json')) as f:
            coco = json.load(f)
        with open(osp.join(root, 'annotations', f'{split}.json'), 'w') as f:
            json.dump(subset_keypoints(coco, KEEP), f)
    return root + '/'


def _config(root, work_dir):
    from mmengine.config import Config
    os.environ['CUSTOM_KPT_ROOT'] = root
    try:
        cfg = Config.fromfile(CFG)
    finally:
        del os.environ['CUSTOM_KPT_ROOT']
    cfg.work_dir = work_dir
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=100)
    cfg.train_dataloader.batch_size = 2  # 4 images / 2 = 2 iterations
    for dl in (cfg.train_dataloader, cfg.test_dataloader):
        dl.num_workers = 0
        dl.persistent_workers = False
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, save_best=None)
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    return cfg


def test_meta_reaches_dataset_head_and_metric(upper_body_root, tmp_path):
    from mmengine.registry import init_default_scope
    from mmpose.registry import DATASETS, MODELS
    cfg = _config(upper_body_root, str(tmp_path))
    init_default_scope('mmpose')
    ds = DATASETS.build(cfg.train_dataloader.dataset)
    assert ds.metainfo['num_keypoints'] == 7
    assert ds.metainfo['dataset_name'] == 'upper_body_7'
    assert list(ds.metainfo['flip_indices']) == [0, 2, 1, 4, 3, 6, 5]
    assert ds.metainfo['sigmas'].tolist() == pytest.approx(
        [0.026, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062])
    assert len(ds.metainfo['skeleton_links']) == 7
    sample = ds[0]
    assert sample['data_samples'].gt_instances.keypoints.shape[1:] == (7, 2)
    model = MODELS.build(cfg.model)
    assert model.head.num_keypoints == 7


def test_trains_two_iterations_and_tests(upper_body_root, tmp_path):
    from mmengine.runner import Runner
    cfg = _config(upper_body_root, str(tmp_path))
    runner = Runner.from_cfg(cfg)
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.train()
    assert runner.iter == 2
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert math.isfinite(loss) and loss > 0
    changed = [k for k, v in runner.model.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any(k.startswith('head.') for k in changed)
    assert osp.isfile(osp.join(str(tmp_path), 'epoch_1.pth'))
    # test: the predictions carry 7 keypoints and CocoMetric scores them with the 7 sigmas
    batch = next(iter(runner.test_dataloader))
    runner.model.eval()
    with torch.no_grad():
        preds = runner.model.test_step(batch)
    assert preds and all(p.pred_instances.keypoints.shape[1:] == (7, 2) for p in preds)
    metrics = runner.test()
    assert 0.0 <= metrics['coco/AP'] <= 1.0
