"""tools/make_synthetic.py: determinism, COCO validity (MMPose CocoDataset bottom-up and
CocoMetric on the ground truth -> AP 1.0), annotation semantics and the tiny config."""
import filecmp
import json
import os
import os.path as osp

import numpy as np
import pytest

from logocap_mm.testing import REPO_ROOT as ROOT
from logocap_mm.testing import load_tool

ms = load_tool('tools/make_synthetic.py')


@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('syn') / 'a')
    assert ms.main(['--out-dir', out, '--seed', '3', '--num-train', '12', '--num-val', '6']) == 0
    return out


def _json(path):
    with open(path) as f:
        return json.load(f)


def test_determinism_and_cache(synth, tmp_path, capsys):
    out2 = str(tmp_path / 'b')
    ms.main(['--out-dir', out2, '--seed', '3', '--num-train', '12', '--num-val', '6'])
    for split, n in (('train', 12), ('val', 6)):
        a = osp.join(synth, 'annotations', f'person_keypoints_{split}.json')
        b = osp.join(out2, 'annotations', f'person_keypoints_{split}.json')
        assert filecmp.cmp(a, b, shallow=False)
        names = sorted(os.listdir(osp.join(synth, split)))
        assert len(names) == n
        for name in names:
            assert filecmp.cmp(osp.join(synth, split, name), osp.join(out2, split, name),
                               shallow=False)
    # another seed gives other data
    out3 = str(tmp_path / 'c')
    ms.main(['--out-dir', out3, '--seed', '4', '--num-train', '2', '--num-val', '0'])
    assert not filecmp.cmp(osp.join(synth, 'train', '000000.jpg'),
                           osp.join(out3, 'train', '000000.jpg'), shallow=False)
    # cached: a second run with the same arguments does nothing
    capsys.readouterr()
    ms.main(['--out-dir', out2, '--seed', '3', '--num-train', '12', '--num-val', '6'])
    assert 'up to date' in capsys.readouterr().out
    with pytest.raises(ValueError, match='num-train'):
        ms.main(['--out-dir', str(tmp_path / 'd'), '--num-train', '-1'])


def test_annotation_semantics(synth):
    from pycocotools import mask as cocomask
    coco = _json(osp.join(synth, 'annotations', 'person_keypoints_train.json'))
    assert coco['categories'][0]['keypoints'] == ms.KEYPOINT_NAMES
    imgs = {im['id']: im for im in coco['images']}
    anns = coco['annotations']
    assert len({a['id'] for a in anns}) == len(anns)
    people = [a for a in anns if not a['iscrowd']]
    assert len(people) >= 1.5 * len(imgs)  # multi-person
    vis_counts = np.zeros(3, int)
    for a in anns:
        im = imgs[a['image_id']]
        h, w = im['height'], im['width']
        kp = np.asarray(a['keypoints'], float).reshape(17, 3)
        if a['iscrowd']:
            assert a['num_keypoints'] == 0 and not kp.any()
            m = cocomask.decode(cocomask.frPyObjects(a['segmentation'], h, w))
            assert m.sum() == a['area'] > 0
            continue
        v = kp[:, 2].astype(int)
        assert set(v) <= {0, 1, 2}
        vis_counts += np.bincount(v, minlength=3)
        assert a['num_keypoints'] == int((v > 0).sum())
        assert (kp[v == 0, :2] == 0).all()
        lab = kp[v > 0, :2]
        assert ((lab >= 0) & (lab < [w, h])).all()
        # polygons rasterise to about the visible area; the bbox holds them
        seg = a['segmentation']
        rles = cocomask.frPyObjects(seg, h, w)
        m = cocomask.decode(cocomask.merge(rles) if isinstance(rles, list) else rles)
        assert abs(int(m.sum()) - a['area']) <= 0.35 * a['area'] + 40
        x, y, bw, bh = a['bbox']
        assert bw > 0 and bh > 0 and x >= 0 and y >= 0 and x + bw <= w and y + bh <= h
    # the three visibility states all occur (cut-off, occluded, visible)
    assert (vis_counts > 0).all(), vis_counts
    assert vis_counts[2] > vis_counts[1]
    assert any(a['iscrowd'] for a in anns)


def test_rle_round_trip():
    from pycocotools import mask as cocomask
    rng = np.random.default_rng(0)
    m = (rng.random((7, 5)) > 0.5).astype(np.uint8)
    m[0, 0] = 1
    r = ms.rle_encode(m)
    assert r['counts'][0] == 0
    np.testing.assert_array_equal(cocomask.decode(cocomask.frPyObjects(r, 7, 5)), m)


def test_mmpose_dataset_and_metric_ap_one(synth, tmp_path):
    from mmengine.registry import init_default_scope
    from mmpose.datasets import CocoDataset
    from mmpose.evaluation import CocoMetric
    init_default_scope('mmpose')
    ann = 'annotations/person_keypoints_val.json'
    ds = CocoDataset(data_root=synth, ann_file=ann, data_mode='bottomup',
                     data_prefix=dict(img='val/'), test_mode=True, pipeline=[])
    assert len(ds) == 6
    info = ds[0]
    assert osp.exists(info['img_path'])
    assert info['keypoints'].shape[1:] == (17, 2)
    coco = _json(osp.join(synth, ann))
    metric = CocoMetric(ann_file=osp.join(synth, ann), score_mode='keypoint',
                        nms_mode='none', outfile_prefix=str(tmp_path / 'gt'))
    metric.dataset_meta = ds.metainfo
    samples = []
    for im in coco['images']:
        anns = [a for a in coco['annotations'] if a['image_id'] == im['id']
                and not a['iscrowd'] and a['num_keypoints'] > 0]
        kp = np.asarray([a['keypoints'] for a in anns], np.float32).reshape(-1, 17, 3)
        # bottom-up samples carry the list of annotation ids as 'id' (as CocoDataset does)
        samples.append(dict(id=[a['id'] for a in anns], img_id=im['id'], gt_instances=dict(),
                            pred_instances=dict(keypoints=kp[..., :2],
                                                keypoint_scores=np.ones(kp.shape[:2]),
                                                bbox_scores=np.ones(len(kp)))))
    metric.process([], samples)
    res = metric.evaluate(len(samples))
    assert res['coco/AP'] == pytest.approx(1.0)
    assert res['coco/AR'] == pytest.approx(1.0)


def test_tiny_config_points_at_the_generator_layout(synth, monkeypatch):
    from mmengine.config import Config
    monkeypatch.setenv('SYNTHETIC_ROOT', synth + '/')
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'logocap', 'tiny_synthetic.py'))
    for dl in (cfg.train_dataloader, cfg.test_dataloader):
        d = dl.dataset
        assert osp.exists(osp.join(d.data_root, d.ann_file))
        assert osp.isdir(osp.join(d.data_root, d.data_prefix['img']))
    assert osp.exists(cfg.test_evaluator.ann_file)
    assert cfg.model.type == 'LogoCapPoseEstimator'
    assert cfg.codec.input_size == (128, 128) and cfg.codec.heatmap_size == (32, 32)


def test_demo_script_and_make_target():
    import subprocess
    script = osp.join(ROOT, 'tools', 'synthetic_demo.sh')
    subprocess.run(['bash', '-n', script], check=True)
    with open(osp.join(ROOT, 'Makefile')) as f:
        mk = f.read()
    demo = mk.split('\ndemo:', 1)[1].split('\n\n', 1)[0]
    assert '$(STAMP)' in demo.splitlines()[0] and 'tools/synthetic_demo.sh' in demo
    with open(script) as f:
        text = f.read()
    # creates / reuses the environment like the Makefile's stamp rule
    assert 'tools/install_env.sh' in text and '.logocap_env_$MMCV' in text
