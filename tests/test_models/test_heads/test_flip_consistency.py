"""Training and test flips agree: a model whose outputs equal its training targets, flip
tested with the config's ``flip_mode``, puts every peak where the unflipped half does.

The "perfect model" outputs, for an image, the codec's targets of that image as the training
pipeline builds them: the keypoints in I (for the flipped image, MMPose's horizontal flip
``x -> W_I - 1 - x`` with the left/right indices swapped) encoded with the config's codec,
``flip=True`` for the flipped image. The head's flip merge then combines both halves.
"""
import glob
import os.path as osp

import numpy as np
import pytest
import torch

from logocap_mm.testing import REPO_ROOT as ROOT
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'logocap', '*.py')))
ABLATION = osp.join(ROOT, 'configs', 'synthetic_ablation')


def _load(path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmpose'))
    return cfg


def _train_codec(cfg):
    (step, ) = [s for s in cfg.train_dataloader.dataset.pipeline
                if s['type'] == 'GenerateTarget']
    return step['encoder']


def _head(cfg, codec_cfg):
    """A small LogoCapHead with the config's keypoint count, stride and metainfo."""
    from mmpose.registry import MODELS
    h = cfg.model.head
    return MODELS.build(dict(type='LogoCapHead', in_channels=8,
                             num_keypoints=h.num_keypoints, heatmap_channels=8,
                             offset_channels=2 * h.num_keypoints, embed_channels=8,
                             cmp_channels=(8, 8, 8), metainfo=h.metainfo,
                             decoder=codec_cfg))


def _person(codec, K, rng):
    w_i, h_i = codec.input_size
    ctr = np.array([0.45 * w_i, 0.5 * h_i])
    kp = ctr + rng.uniform(-0.18, 0.18, (1, K, 2)) * np.array([w_i, h_i])
    return kp.astype(np.float32)


def _sub_pixel_x(maps):
    """x centroid (F px) of each channel of ``maps`` (C, H, W)."""
    m = maps.clamp(min=0)
    xs = torch.arange(m.shape[-1], dtype=m.dtype)
    return (m.sum(-2) * xs).sum(-1) / m.sum((-2, -1))


def flip_test_misalignment(cfg_path):
    """Largest |x| difference in F px between the flip-merged and the unflipped outputs of a
    model that outputs its training targets: keypoint and centre peaks (centroids) and the x
    offsets at the person's centre cell. Returns ``(peak_err, offset_err, flip_mode)``."""
    from mmpose.registry import KEYPOINT_CODECS
    from mmpose.structures.keypoint import flip_keypoints
    cfg = _load(cfg_path)
    codec_cfg = _train_codec(cfg)
    codec = KEYPOINT_CODECS.build(codec_cfg)
    head = _head(cfg, codec_cfg)
    K = cfg.model.head.num_keypoints
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    flip_indices = parse_pose_metainfo(dict(from_file=cfg.model.head.metainfo))['flip_indices']
    rng = np.random.default_rng(0)
    kp = _person(codec, K, rng)
    vis = np.ones((1, K), np.float32)
    area = np.array([(0.4 * codec.input_size[0])**2])
    kp_f, vis_f = flip_keypoints(kp, vis, codec.input_size, flip_indices, direction='horizontal')
    enc = codec.encode(kp, vis, area=area, flip=False)
    enc_f = codec.encode(kp_f, vis_f, area=area, flip=True, flip_direction='horizontal')
    t = lambda a: torch.from_numpy(a)[None]  # noqa: E731
    emb = torch.zeros(1, 8, *enc['heatmaps'].shape[-2:])
    flip_mode = cfg.model.test_cfg.get('flip_mode', 'reference')
    hm, off, _ = head.flip_merge((t(enc['heatmaps']), t(enc['displacements']), emb),
                                 (t(enc_f['heatmaps']), t(enc_f['displacements'])),
                                 flip_indices, flip_mode)
    peak_err = (_sub_pixel_x(hm[0]) - _sub_pixel_x(t(enc['heatmaps'])[0])).abs().max()
    # x offsets at the (unflipped) centre cell: channels 2k
    cx, cy = (int(v) for v in (kp[0].mean(0) / codec.scale_factor))
    off_err = (off[0, 0::2, cy, cx] - t(enc['displacements'])[0, 0::2, cy, cx]).abs().max()
    return float(peak_err), float(off_err), flip_mode


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.basename(p) for p in CONFIGS])
def test_shipped_configs_flip_consistent(path):
    peak_err, off_err, _ = flip_test_misalignment(path)
    assert peak_err < 0.02, peak_err
    assert off_err < 1e-4, off_err


@pytest.mark.parametrize('name, mode, consistent', [
    ('before.py', 'reference', False),  # exact targets merged without the shift
    ('aligned.py', 'aligned', True),
    ('shifted.py', 'reference', True),  # the reference's recipe exactly
])
def test_ablation_recipes(name, mode, consistent):
    """The check tells the recipes apart: exact targets merged by a plain flip put the
    flipped-back half 1 - 1/stride = 0.75 F px left, so the average is 0.375 F px off; the two
    consistent recipes are not off."""
    peak_err, off_err, flip_mode = flip_test_misalignment(osp.join(ABLATION, name))
    assert flip_mode == mode
    if consistent:
        assert peak_err < 0.02 and off_err < 1e-4, (peak_err, off_err)
    else:
        assert abs(peak_err - 0.375) < 0.02, peak_err
        assert abs(off_err - 0.375) < 1e-4, off_err
