"""tools/make_synthetic.py: determinism, COCO validity (MMPose CocoDataset bottom-up and
CocoMetric on the ground truth -> AP 1.0), annotation semantics and the tiny config."""
import filecmp
import sys
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


def _overlap_neighbours(people, min_iou=0.1):
    """Mean number of other people in the same image whose visible box overlaps a person's
    box with IoU > ``min_iou``."""
    by_img = {}
    for a in people:
        by_img.setdefault(a['image_id'], []).append(a['bbox'])
    hit = total = 0
    for boxes in by_img.values():
        b = np.array(boxes)
        x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
        iw = (np.minimum(x1[:, None], x1[None]) - np.maximum(x0[:, None], x0[None])).clip(0)
        ih = (np.minimum(y1[:, None], y1[None]) - np.maximum(y0[:, None], y0[None])).clip(0)
        inter = iw * ih
        area = b[:, 2] * b[:, 3]
        iou = inter / (area[:, None] + area[None] - inter)
        np.fill_diagonal(iou, 0)
        hit += int((iou > min_iou).sum())
        total += len(boxes)
    return hit / max(total, 1)


def test_crowded_split(synth, tmp_path):
    """--crowded: 3-6 drawn people per image (fully hidden ones get no annotation), most of
    them overlapping; its own images (not the normal split's), deterministic, own cache stamp."""
    out = str(tmp_path / 'crowded')
    args = ['--out-dir', out, '--seed', '3', '--num-train', '0', '--num-val', '12', '--crowded']
    assert ms.main(args) == 0
    coco = _json(osp.join(out, 'annotations', 'person_keypoints_val.json'))
    people = [a for a in coco['annotations'] if not a['iscrowd']]
    per_img = np.bincount([a['image_id'] for a in people], minlength=13)[1:]
    assert per_img.max() <= 6 and per_img.mean() >= 3.5, per_img
    normal = _json(osp.join(synth, 'annotations', 'person_keypoints_train.json'))
    n_normal = [a for a in normal['annotations'] if not a['iscrowd']]
    assert len(people) / 12 > 1.5 * len(n_normal) / 12
    crowded, normal_n = _overlap_neighbours(people), _overlap_neighbours(n_normal)
    assert crowded > 1.5 * normal_n, (crowded, normal_n)
    assert not filecmp.cmp(osp.join(out, 'val', '000000.jpg'),
                           osp.join(synth, 'val', '000000.jpg'), shallow=False)
    with open(osp.join(out, 'meta.json')) as f:
        assert json.load(f)['crowded'] is True
    out2 = str(tmp_path / 'crowded2')
    ms.main(['--out-dir', out2] + args[2:])
    assert filecmp.cmp(osp.join(out, 'annotations', 'person_keypoints_val.json'),
                       osp.join(out2, 'annotations', 'person_keypoints_val.json'),
                       shallow=False)


def test_demo_schedules_standard_default_short_one_variable_away(tmp_path):
    """`make demo` trains the 8-epoch tiny_synthetic.py; DEMO_SCHEDULE=short the 6-epoch
    tiny_synthetic_short.py, which differs in the schedule only."""
    import subprocess
    from mmengine.config import Config
    std = Config.fromfile(osp.join(ROOT, 'configs', 'logocap', 'tiny_synthetic.py'))
    short = Config.fromfile(osp.join(ROOT, 'configs', 'logocap', 'tiny_synthetic_short.py'))
    for cfg, epochs in ((std, 8), (short, 6)):
        assert cfg.train_cfg.max_epochs == epochs
        step = [s for s in cfg.param_scheduler if s['type'] == 'MultiStepLR'][0]
        assert step['end'] == epochs and step['milestones'] == [epochs - 1]
    for key in ('model', 'train_dataloader', 'optim_wrapper', 'codec', 'randomness'):
        assert std[key] == short[key], key
    with open(osp.join(ROOT, 'tools', 'synthetic_demo.sh')) as f:
        text = f.read()
    assert 'DEMO_SCHEDULE=${DEMO_SCHEDULE:-standard}' in text
    assert 'standard) CFG=configs/logocap/tiny_synthetic.py' in text
    assert 'short) CFG=configs/logocap/tiny_synthetic_short.py' in text
    # no end-of-training validation: step 3's 'full' mim test is the same evaluation
    assert 'train_cfg.val_begin=$(( MAX_EPOCHS + 1 ))' in text
    # an unknown schedule stops before anything is generated or trained
    env = dict(os.environ, DEMO_SCHEDULE='medium', VENV=osp.dirname(osp.dirname(sys.executable)),
               WORK_DIR=str(tmp_path / 'w'), SYNTHETIC_ROOT=str(tmp_path / 'd') + '/')
    p = subprocess.run(['bash', osp.join(ROOT, 'tools', 'synthetic_demo.sh')], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "DEMO_SCHEDULE must be 'standard' or 'short'" in p.stderr
    assert not (tmp_path / 'd').exists() and not (tmp_path / 'w').exists()
