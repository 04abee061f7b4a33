"""Every shipped config: loads with mmengine, builds its model (no pretrained download) and
runs a forward, builds each pipeline step, and runs its datasets + pipelines on the bundled
samples. Also: the paper recipe values, and clear errors for a missing data root or an
annotation file of the wrong format."""
import copy
import glob
import json
import os.path as osp

import numpy as np
import pytest
import torch

from logocap_mm.testing import REPO_ROOT as ROOT
CFG_DIR = osp.join(ROOT, 'configs', 'logocap')
DATA = osp.join(ROOT, 'tests', 'data')
SHIPPED = sorted(osp.basename(p) for p in glob.glob(osp.join(CFG_DIR, '*.py')))
EXPECTED = {'w32_coco.py', 'w48_coco.py', 'w32_ochuman.py', 'w32_ochuman_val.py',
            'w48_ochuman.py', 'w48_ochuman_val.py', 'w32_crowdpose.py', 'res50_coco.py',
            'tiny_coco_demo.py'}

# the bundled sample standing in for each config's dataset: (root, ann_file)
BUNDLED = {'CocoDataset': (osp.join(DATA, 'coco'), 'test_coco.json'),
           'OCHumanDataset': (osp.join(DATA, 'ochuman'), 'test_ochuman.json'),
           'CrowdPoseDataset': (osp.join(DATA, 'crowdpose'), 'test_crowdpose.json')}
# the configs use the LogoCap* subclasses (MMPose's datasets + annotation checks)
BUNDLED.update({'LogoCap' + k: v for k, v in list(BUNDLED.items())})


_BUILT_MODELS = set()


def _load(name):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(osp.join(CFG_DIR, name))  # custom_imports -> import logocap_mm
    init_default_scope(cfg.get('default_scope', 'mmpose'))
    return cfg


def _no_pretrained(model_cfg):
    model_cfg = copy.deepcopy(model_cfg)
    for part in ('backbone', 'neck', 'head'):
        if part in model_cfg and model_cfg[part] is not None:
            model_cfg[part].pop('init_cfg', None)
    return model_cfg


def _bundled_dataset(ds_cfg, test_mode):
    from mmpose.registry import DATASETS
    ds_cfg = copy.deepcopy(ds_cfg)
    root, ann = BUNDLED[ds_cfg['type']]
    ds_cfg.update(data_root=root, ann_file=ann, data_prefix=dict(img=''),
                  test_mode=test_mode)
    return DATASETS.build(ds_cfg)


def test_every_config_is_covered():
    # every config in configs/logocap is parametrised below; these must be among them
    assert EXPECTED <= set(SHIPPED), EXPECTED - set(SHIPPED)


@pytest.mark.parametrize('name', SHIPPED)
def test_config_builds_model_and_pipelines(name):
    from mmpose.registry import MODELS, TRANSFORMS
    cfg = _load(name)
    assert cfg.custom_imports['imports'] == ['logocap_mm']
    K = cfg.model.head.num_keypoints
    assert cfg.model.type == 'LogoCapPoseEstimator' and cfg.model.head.type == 'LogoCapHead'

    # model, without any pretrained loading; a forward checks the channel bookkeeping
    # (configs that only change the data, e.g. the OCHuman ones, share a model: built once)
    key = repr(_no_pretrained(cfg.model).to_dict())
    if key not in _BUILT_MODELS:
        torch.manual_seed(0)
        model = MODELS.build(_no_pretrained(cfg.model)).eval()
        with torch.no_grad():
            hm, off, emb = model._forward(torch.randn(1, 3, 128, 192))
        assert hm.shape == (1, K + 1, 32, 48)
        assert off.shape == (1, 2 * K, 32, 48)
        assert emb.shape == (1, cfg.model.head.embed_channels, 32, 48)
        _BUILT_MODELS.add(key)

    # every pipeline step builds
    loaders = {'train': cfg.train_dataloader, 'val': cfg.get('val_dataloader'),
               'test': cfg.test_dataloader}
    # a config may switch off validation during training (val_dataloader = None)
    assert (loaders['val'] is None) == (cfg.get('val_cfg') is None) == \
        (cfg.get('val_evaluator') is None), 'val_dataloader/val_cfg/val_evaluator disagree'
    loaders = {k: v for k, v in loaders.items() if v is not None}
    for split, loader in loaders.items():
        steps = [TRANSFORMS.build(s) for s in loader.dataset.pipeline]
        for step, c in zip(steps, loader.dataset.pipeline):  # the class its type names
            t = c['type']
            assert isinstance(step, TRANSFORMS.get(t) if isinstance(t, str) else t), (split, t)
        assert type(steps[-1]).__name__ == 'PackPoseInputs'

    # the datasets and pipelines of the config, run on the bundled sample of the same kind
    input_size = cfg.codec['input_size'][0]
    test_ds = _bundled_dataset(cfg.test_dataloader.dataset, test_mode=True)
    sample = test_ds[0]
    h, w = sample['inputs'].shape[-2:]
    assert min(h, w) == input_size and max(h, w) % 64 == 0, (h, w)
    assert sample['data_samples'].metainfo['flip_indices'] is not None
    assert len(sample['data_samples'].metainfo['flip_indices']) == K
    train_ds = _bundled_dataset(cfg.train_dataloader.dataset, test_mode=False)
    sample = train_ds[0]
    assert tuple(sample['inputs'].shape[-2:]) == (input_size, input_size)
    hs = cfg.codec['heatmap_size'][0]
    assert tuple(sample['data_samples'].gt_fields.heatmaps.shape) == (K + 1, hs, hs)


def test_paper_recipe_w32_w48():
    for name, size, hm_size, width in (('w32_coco.py', 512, 128, 32),
                                       ('w48_coco.py', 640, 160, 48)):
        cfg = _load(name)
        assert cfg.codec['input_size'] == (size, size)
        assert cfg.codec['heatmap_size'] == (hm_size, hm_size)
        assert cfg.model.backbone.extra.stage4.num_channels == (width, 2 * width, 4 * width,
                                                                8 * width)
        assert cfg.model.backbone.extra.stage4.multiscale_output is True
        assert cfg.model.neck == dict(type='FeatureMapProcessor', concat=True)
        assert cfg.model.head.in_channels == 15 * width
        assert cfg.model.backbone.init_cfg.type == 'Pretrained'
        assert f'hrnet_w{width}' in cfg.model.backbone.init_cfg.checkpoint
        assert cfg.optim_wrapper.optimizer == dict(type='Adam', lr=1e-3, weight_decay=0.)
        assert cfg.param_scheduler == [dict(type='MultiStepLR', begin=0, end=140,
                                            milestones=[90, 120], gamma=0.1, by_epoch=True)]
        assert cfg.train_cfg.max_epochs == 140
        assert cfg.randomness.seed == 0
        assert cfg.train_dataloader.batch_size == 12
        assert cfg.model.test_cfg.flip_test is True
        assert cfg.test_evaluator.type == 'CocoMetric'
        assert cfg.test_evaluator.score_mode == 'keypoint'
        assert cfg.test_evaluator.nms_mode == 'none'
        assert cfg.data_root == 'data/coco/'
        resize = cfg.test_dataloader.dataset.pipeline[1]
        assert resize == dict(type='LogoCapResize', input_size=size, size_factor=64,
                              round_mode='reference')


def test_ochuman_and_crowdpose_settings():
    for name, split in (('w32_ochuman.py', 'test'), ('w48_ochuman.py', 'test'),
                        ('w32_ochuman_val.py', 'val'), ('w48_ochuman_val.py', 'val')):
        cfg = _load(name)
        ann = f'annotations/ochuman_coco_format_{split}_range_0.00_1.00.json'
        assert cfg.test_dataloader.dataset.type == 'LogoCapOCHumanDataset'
        assert cfg.test_dataloader.dataset.ann_file == ann
        assert cfg.test_evaluator.ann_file == 'data/ochuman/' + ann
        assert cfg.train_dataloader.dataset.type == 'LogoCapCocoDataset'  # COCO-trained
    cfg = _load('w32_crowdpose.py')
    assert cfg.model.head.num_keypoints == 14
    assert cfg.test_evaluator.iou_type == 'keypoints_crowd'
    assert cfg.test_evaluator.use_area is False
    assert cfg.test_evaluator.prefix == 'crowdpose'
    assert cfg.default_hooks.checkpoint.save_best == 'crowdpose/AP'
    assert cfg.train_dataloader.dataset.type == 'LogoCapCrowdPoseDataset'
    cfg = _load('res50_coco.py')
    assert cfg.model.backbone.type == 'ResNet' and cfg.model.neck.type == 'FPN'


def test_missing_data_root_names_the_path(tmp_path):
    """MMPose's own error already names the missing file: assert on it."""
    from mmpose.registry import DATASETS
    cfg = _load('w32_coco.py')
    ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    ds_cfg.data_root = str(tmp_path / 'no_such_coco')
    with pytest.raises(AssertionError, match=r'no_such_coco/annotations/'
                       r'person_keypoints_val2017.json`\s*does not exist'):
        DATASETS.build(ds_cfg)


@pytest.mark.parametrize('content,err,msg', [
    ([{'image_id': 1}], AssertionError, "annotation file format <class 'list'> not supported"),
    ('not json {', json.JSONDecodeError, 'Expecting value'),
], ids=['json_list', 'not_json'])
def test_wrong_annotation_format(tmp_path, content, err, msg):
    from mmpose.registry import DATASETS
    cfg = _load('w32_coco.py')
    ann = tmp_path / 'ann.json'
    ann.write_text(content if isinstance(content, str) else json.dumps(content))
    ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    ds_cfg.update(data_root=str(tmp_path), ann_file='ann.json')
    with pytest.raises(err, match=msg.replace('(', r'\(').replace(')', r'\)')):
        DATASETS.build(ds_cfg)


def test_bundled_keypoint_counts():
    """Sanity of the bundled samples the runner tests use (17 / 17 / 14 keypoints)."""
    for kind, k in (('CocoDataset', 17), ('OCHumanDataset', 17), ('CrowdPoseDataset', 14)):
        root, ann = BUNDLED[kind]
        with open(osp.join(root, ann)) as f:
            data = json.load(f)
        lens = {len(a['keypoints']) for a in data['annotations'] if 'keypoints' in a}
        assert lens == {3 * k}, (kind, lens)
        assert np.all([osp.isfile(osp.join(root, i['file_name'])) for i in data['images']])
