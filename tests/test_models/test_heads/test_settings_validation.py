"""Settings checked when the model is built or given its dataset meta, with the field named:
decoder numbers (NaN / negative), flip_indices (a permutation of range(K), wherever the
model receives it), and a checkpoint meta that disagrees with the config."""
import copy
import os.path as osp
import warnings

import numpy as np
import pytest
from validation_utils import (K, build_model, coco_meta, infer, load_cfg,
                              make_test_pipeline, save_weights)

BAD_FLIPS = {'out_of_range': [17] * 17, 'all_zero': [0] * 17, 'negative': [-1] * 17,
             'short': list(range(16))}


@pytest.fixture(scope='module')
def cfg():
    return load_cfg()


@pytest.mark.parametrize('field,value,match', [
    ('center_thr', float('nan'), r'center_thr must be a finite number, got nan'),
    ('center_thr', float('inf'), r'center_thr must be a finite number'),
    ('nms_num_joints', -1, r'nms_num_joints must be an int >= 0, got -1'),
    ('nms_num_joints', 2.5, r'nms_num_joints must be an int >= 0, got 2.5'),
    ('nms_dist_ratio', -0.05, r'nms_dist_ratio must be a finite number >= 0, got -0.05'),
    ('nms_dist_ratio', float('nan'), r'nms_dist_ratio must be a finite number >= 0'),
    ('window_sigma', float('nan'), r'window_sigma must be a finite number > 0, got nan'),
    ('kem_radius', float('nan'), r'kem_radius must be a finite number > 0, got nan'),
    ('kem_radius', float('inf'), r'kem_radius must be a finite number > 0, got inf'),
])
def test_decoder_settings_are_checked_at_build_time(cfg, field, value, match):
    from mmpose.registry import MODELS
    mcfg = copy.deepcopy(cfg.model)
    mcfg.head.pose_decoder[field] = value
    with pytest.raises(ValueError, match=match):
        MODELS.build(mcfg)


@pytest.mark.parametrize('kind', list(BAD_FLIPS))
def test_bad_flip_indices_in_dataset_meta(cfg, kind):
    """``model.dataset_meta = ...`` (what init_model and the inferencer do) checks them."""
    model = build_model(cfg)
    meta = dict(coco_meta(), flip_indices=BAD_FLIPS[kind])
    match = 'has 16 entries, expected 17' if kind == 'short' else \
        r"dataset_meta\['flip_indices'\] must be a permutation of range\(17\)"
    with pytest.raises(ValueError, match=match):
        model.dataset_meta = meta
    model.dataset_meta = coco_meta()  # a good one is kept as given
    assert model.dataset_meta['flip_indices'][:3] == [0, 2, 1]


@pytest.mark.parametrize('kind', ['out_of_range', 'all_zero', 'negative'])
def test_bad_flip_indices_in_data_samples_before_the_flip_test(cfg, kind):
    """The runner path (flip_indices from the dataset's metainfo in each data sample): a
    ValueError before the first flip-tested prediction ([17]*17 crashed in torch, [0]*17
    and [-1]*17 silently changed the results)."""
    model = build_model(cfg, flip_test=True)
    pipe = make_test_pipeline(cfg)
    img = np.random.RandomState(0).randint(0, 256, (64, 80, 3)).astype(np.uint8)
    with pytest.raises(ValueError, match=r'flip_indices \(data sample metainfo\) must be a '
                       r'permutation of range\(17\)'):
        infer(model, pipe, img, flip_indices=BAD_FLIPS[kind])
    assert len(infer(model, pipe, img, flip_indices=coco_meta()['flip_indices']).keypoints)


def _meta(num_keypoints, flip_indices):
    # plain Python only: checkpoints load with torch.load(weights_only=True)
    return dict(dataset_meta=dict(dataset_name='custom', num_keypoints=num_keypoints,
                                  flip_indices=flip_indices))


def test_checkpoint_meta_with_bad_flip_indices_is_refused(cfg, tmp_path):
    from mmpose.apis import init_model
    path = save_weights(build_model(cfg), str(tmp_path / 'bad_flip.pth'),
                        _meta(K, [0] * K))
    with pytest.raises(ValueError, match=r"dataset_meta\['flip_indices'\] must be a "
                       r'permutation'):
        init_model(cfg, path, device='cpu')


def test_checkpoint_meta_disagreeing_with_the_config(cfg, tmp_path):
    """Keypoint count: a ValueError naming both; other (valid) flip pairs: a warning naming
    both (the checkpoint's pairs are used, as MMPose does)."""
    from mmpose.apis import MMPoseInferencer, init_model
    model = build_model(cfg)
    p14 = save_weights(model, str(tmp_path / 'k14.pth'), _meta(14, list(range(14))))
    with pytest.raises(ValueError, match=r'dataset_meta has num_keypoints=14, but the model '
                       r'\(config\) has num_keypoints=17'):
        init_model(cfg, p14, device='cpu')
    pid = save_weights(model, str(tmp_path / 'identity.pth'), _meta(K, list(range(K))))
    coco_pairs = coco_meta()['flip_indices']
    with pytest.warns(UserWarning, match=rf"flip_indices'\] = \[0, 1, 2, .*differs from the "
                      rf"config's metainfo flip_indices = \[0, 2, 1, 4, 3"):
        m = init_model(cfg, pid, device='cpu')
    assert m.dataset_meta['flip_indices'] == list(range(K))
    with pytest.warns(UserWarning, match='differs from the config'):
        MMPoseInferencer(pose2d=cfg, pose2d_weights=pid, device='cpu', show_progress=False)
    # a checkpoint whose meta matches the config: no warning
    pok = save_weights(model, str(tmp_path / 'ok.pth'), _meta(K, coco_pairs))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter('always')
        init_model(cfg, pok, device='cpu')
    assert not [w for w in rec if 'flip_indices' in str(w.message)]


def test_config_metainfo_flip_pairs_are_checked(cfg):
    """A head metainfo (the config) whose flip pairs are not a permutation fails at build."""
    import mmpose
    from mmengine.config import Config
    from mmpose.registry import MODELS
    info = Config.fromfile(osp.join(osp.dirname(mmpose.__file__), '.mim', 'configs', '_base_',
                                    'datasets', 'coco.py')).dataset_info.to_dict()
    for kp in info['keypoint_info'].values():  # every keypoint "swaps" with the nose
        kp['swap'] = 'nose'
    mcfg = copy.deepcopy(cfg.model)
    mcfg.head.metainfo = info
    with pytest.raises(ValueError, match=r'flip_indices of the head metainfo .* must be a '
                       r'permutation of range\(17\)'):
        MODELS.build(mcfg)
