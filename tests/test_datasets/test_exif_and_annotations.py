"""One pixel frame for annotations, predictions and drawings (EXIF orientation ignored
everywhere, the visualizer drawing on the stored pixels), and annotation files refused up
front with the file named (LogoCap* datasets) while COCO / CrowdPose / OCHuman evaluation
keeps working."""
import copy
import glob
import json
import os.path as osp

import numpy as np
import pytest
from validation_utils import (COCO, ROOT, build_model, load_cfg, make_test_pipeline,
                              save_weights)

DATA = osp.join(ROOT, 'tests', 'data')
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'logocap', '*.py')) +
                 glob.glob(osp.join(ROOT, 'tests', 'configs', '*.py')))
IMG = '000000196141.jpg'


def _cfg(path):
    import logocap_mm  # noqa: F401
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmpose')
    return Config.fromfile(path)


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.basename(p) for p in CONFIGS])
def test_every_pipeline_ignores_exif_orientation(path):
    """Annotations are in the stored pixel frame: every LoadImage (train / val / test)
    ignores EXIF orientation, and the visualizer draws on that frame."""
    cfg = _cfg(path)
    loads = []
    for dl in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(dl):
            loads += [t for t in cfg[dl].dataset.pipeline if t['type'] == 'LoadImage']
    assert loads and all(t.get('color_type') == 'color_ignore_orientation' for t in loads)
    assert cfg.visualizer.type == 'LogoCapPoseLocalVisualizer'
    assert cfg.visualizer.image_frame == 'stored'


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    """The same stored pixels written twice as JPEG: plain, and with EXIF Orientation 6
    (a viewer rotates it by 90 degrees)."""
    from PIL import Image
    d = tmp_path_factory.mktemp('exif')
    im = Image.open(osp.join(COCO, IMG)).convert('RGB')
    plain, rotated = str(d / 'plain.jpg'), str(d / 'rotated.jpg')
    im.save(plain, quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(rotated, quality=95, exif=exif.tobytes())
    return plain, rotated, (im.height, im.width)


def test_exif_photo_test_pipeline_in_the_stored_frame(photos):
    import mmcv
    from logocap_mm.datasets import exif_orientation
    plain, rotated, hw = photos
    assert exif_orientation(rotated) == 6 and exif_orientation(plain) is None
    assert mmcv.imread(rotated).shape[:2] == hw[::-1]  # MMPose's default: rotated
    pipe = make_test_pipeline(load_cfg())
    a, b = pipe(dict(img_path=plain)), pipe(dict(img_path=rotated))
    assert b['data_samples'].metainfo['ori_shape'] == hw
    np.testing.assert_array_equal(a['inputs'], b['inputs'])


@pytest.fixture(scope='module')
def inferencer(tmp_path_factory):
    from mmpose.apis import MMPoseInferencer
    cfg = load_cfg()
    cfg.model.test_cfg.flip_test = False
    path = save_weights(build_model(cfg), str(tmp_path_factory.mktemp('w') / 'tiny.pth'))
    return MMPoseInferencer(pose2d=cfg, pose2d_weights=path, device='cpu',
                            show_progress=False)


def test_inferencer_draws_exif_photo_in_the_prediction_frame(inferencer, photos):
    """Predictions and drawing of an EXIF-rotated photo are both in the stored frame: the
    same as for the untagged copy (the drawing used to be on the rotated image)."""
    plain, rotated, hw = photos
    ra = next(inferencer(plain, return_vis=True, draw_bbox=False))
    rb = next(inferencer(rotated, return_vis=True, draw_bbox=False))
    ka = np.array([p['keypoints'] for p in ra['predictions'][0]])
    kb = np.array([p['keypoints'] for p in rb['predictions'][0]])
    assert len(ka) > 0
    np.testing.assert_array_equal(ka, kb)
    va, vb = ra['visualization'][0], rb['visualization'][0]
    assert va.shape[:2] == vb.shape[:2] == hw
    np.testing.assert_array_equal(va, vb)
    # with image_frame='exif' (a pipeline that applies EXIF) MMPose's rotated image is kept
    from logocap_mm.datasets import image_in_prediction_frame
    img = np.zeros(hw[::-1] + (3, ), np.uint8) + 1
    meta = dict(img_path=rotated, ori_shape=hw[::-1])
    assert image_in_prediction_frame(img, meta, 'exif') is img
    assert image_in_prediction_frame(img, meta, 'stored') is img  # ori_shape is rotated


# ----------------------------------------------------------------------------- annotations
def _train_ds_cfg(name, root, ann):
    cfg = _cfg(osp.join(ROOT, 'configs', 'logocap', name))
    ds = copy.deepcopy(cfg.train_dataloader.dataset)
    ds.update(data_root=str(root), ann_file=ann, data_prefix=dict(img=''), pipeline=[])
    return ds


@pytest.mark.parametrize('name', ['w32_coco.py', 'w32_crowdpose.py'])
def test_training_json_without_annotations_names_the_file(name, tmp_path):
    from mmpose.registry import DATASETS
    src = 'crowdpose/test_crowdpose.json' if 'crowd' in name else 'coco/test_coco.json'
    with open(osp.join(DATA, src)) as f:
        data = json.load(f)
    data.pop('annotations')
    (tmp_path / 'images_only.json').write_text(json.dumps(data))
    ds = _train_ds_cfg(name, tmp_path, 'images_only.json')
    with pytest.raises(ValueError, match=r'images_only\.json has no "annotations" list'):
        DATASETS.build(ds)
    # the same file is fine for testing (an image list)
    ds.test_mode = True
    assert len(DATASETS.build(ds)) == len(data['images'])


@pytest.mark.parametrize('name,src,n,k', [
    ('w32_coco.py', 'crowdpose/test_crowdpose.json', 14, 17),
    ('w32_crowdpose.py', 'coco/test_coco.json', 17, 14),
])
def test_keypoint_count_mismatch_names_the_file(name, src, n, k, tmp_path):
    from mmpose.registry import DATASETS
    with open(osp.join(DATA, src)) as f:
        (tmp_path / 'other.json').write_text(f.read())
    for test_mode in (False, True):
        ds = _train_ds_cfg(name, tmp_path, 'other.json')
        ds.test_mode = test_mode
        with pytest.raises(ValueError, match=rf'other\.json: annotation id \d+ \(image \d+\) '
                           rf'has {3 * n} keypoint values \({n} keypoints\), but the dataset '
                           rf'metainfo \(\w+\) has {k} keypoints'):
            DATASETS.build(ds)


@pytest.mark.parametrize('name,sub,ann,k,prefix', [
    ('w32_coco.py', 'coco', 'test_coco.json', 17, 'coco'),
    ('w32_ochuman.py', 'ochuman', 'test_ochuman.json', 17, 'coco'),
    ('w32_crowdpose.py', 'crowdpose', 'test_crowdpose.json', 14, 'crowdpose'),
])
def test_evaluators_work_on_the_checked_datasets(name, sub, ann, k, prefix, tmp_path):
    """Each config's test dataset (LogoCap* type) + its CocoMetric settings: ground truth
    as predictions gives AP 1."""
    from mmpose.registry import DATASETS, METRICS
    cfg = _cfg(osp.join(ROOT, 'configs', 'logocap', name))
    ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    assert ds_cfg.type.startswith('LogoCap')
    ds_cfg.update(data_root=osp.join(DATA, sub), ann_file=ann, data_prefix=dict(img=''),
                  pipeline=[])
    ds = DATASETS.build(ds_cfg)
    ev = copy.deepcopy(cfg.test_evaluator)
    ev.update(ann_file=osp.join(DATA, sub, ann), outfile_prefix=str(tmp_path / 'r'))
    metric = METRICS.build(ev)
    metric.dataset_meta = ds.metainfo
    with open(osp.join(DATA, sub, ann)) as f:
        coco = json.load(f)
    samples = []
    for i in range(len(ds)):
        info = ds[i]
        anns = [a for a in coco['annotations'] if a['image_id'] == info['img_id'] and
                not a.get('iscrowd', 0) and max(a['keypoints'][2::3]) > 0]
        kp = np.asarray([a['keypoints'] for a in anns], np.float32).reshape(-1, k, 3)
        samples.append(dict(id=[a['id'] for a in anns], img_id=info['img_id'],
                            gt_instances=dict(),
                            pred_instances=dict(keypoints=kp[..., :2],
                                                keypoint_scores=np.ones(kp.shape[:2]),
                                                bbox_scores=np.ones(len(kp)))))
    metric.process([], samples)
    res = metric.evaluate(len(samples))
    assert res[f'{prefix}/AP'] == pytest.approx(1.0)
