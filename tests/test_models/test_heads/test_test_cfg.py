"""Each test-time option has one home, ``model.test_cfg``: a contradicting or misspelt
setting elsewhere raises at build time instead of being silently overridden."""
import copy
import os.path as osp

import pytest
import torch

import logocap_mm  # noqa: F401
from logocap_mm.testing import REPO_ROOT, TEST_TINY_CONFIG, tiny_config, tiny_data_samples
from mmengine.config import Config
from mmpose.registry import MODELS

W32 = osp.join(REPO_ROOT, 'configs', 'logocap', 'w32_coco.py')


@pytest.fixture(scope='module')
def cfg():
    return tiny_config(TEST_TINY_CONFIG, data_root=None)


def _build(mcfg):
    torch.manual_seed(0)
    mcfg = copy.deepcopy(mcfg)
    mcfg.backbone.pop('init_cfg', None)
    return MODELS.build(mcfg)


def test_shipped_configs_set_adaptation_in_test_cfg_only():
    c = Config.fromfile(W32)
    assert c.model.test_cfg.adaptation == 'full'
    assert 'adaptation' not in c.model.head.pose_decoder


def test_decoder_adaptation_contradicting_test_cfg_raises(cfg):
    c = copy.deepcopy(cfg)
    c.merge_from_dict({'model.head.pose_decoder.adaptation': 'none',
                       'model.test_cfg.adaptation': 'full'})
    with pytest.raises(ValueError, match=r"pose_decoder.adaptation='none' conflicts with "
                                         r"model.test_cfg.adaptation='full'.*"
                                         r"model.test_cfg.adaptation=none"):
        _build(c.model)


def test_decoder_adaptation_takes_effect_without_test_cfg_key(cfg):
    c = copy.deepcopy(cfg)
    c.model.test_cfg.pop('adaptation', None)
    c.merge_from_dict({'model.head.pose_decoder.adaptation': 'partial'})
    model = _build(c.model)
    assert model.head.resolve_test_cfg(model.test_cfg) == 'partial'


@pytest.mark.parametrize('level', ['full', 'partial', 'none'])
def test_test_cfg_adaptation_reaches_the_decoder(cfg, level):
    c = copy.deepcopy(cfg)
    c.merge_from_dict({'model.test_cfg.adaptation': level})
    model = _build(c.model).eval()
    with torch.no_grad(), model.head.pose_decoder.tracing() as traces:
        model.predict(*tiny_data_samples(1, (128, 128)))
    assert [t['level'] for t in traces] == [level]
    assert ('kams' in traces[0]) == (level != 'none')


def test_unknown_test_cfg_key_raises(cfg):
    c = copy.deepcopy(cfg)
    c.model.test_cfg['adaption'] = 'none'
    with pytest.raises(ValueError, match=r"unknown model.test_cfg option\(s\) \['adaption'\]"):
        _build(c.model)


def test_head_metainfo_path_resolves_without_warning(cfg, recwarn):
    c = copy.deepcopy(cfg)
    c.model.head.metainfo = 'configs/_base_/datasets/coco.py'
    c.model.head.pop('sigmas', None)
    model = _build(c.model)
    assert abs(model.head.sigmas[0] - 0.026) < 1e-9 and len(model.head.sigmas) == 17
    assert not [w for w in recwarn if 'metainfo config file' in str(w.message)]


def test_multiscale_test_is_refused_by_name(cfg):
    """``multiscale_test=True`` was a known key that failed with a bare AssertionError
    inside MMPose: a ValueError naming it, at build time and (set later) at predict."""
    c = copy.deepcopy(cfg)
    c.model.test_cfg['multiscale_test'] = True
    match = r'test_cfg.multiscale_test=True is not supported: LOGO-CAP tests at a single scale'
    with pytest.raises(ValueError, match=match):
        _build(c.model)
    model = _build(cfg.model).eval()
    old = dict(model.test_cfg)
    model.test_cfg = dict(old, multiscale_test=True)
    with torch.no_grad(), pytest.raises(ValueError, match=match):
        model.predict(*tiny_data_samples(1, (128, 128)))
    model.test_cfg = dict(old, multiscale_test=False)  # False (the default) is fine
    with torch.no_grad():
        assert len(model.predict(*tiny_data_samples(1, (128, 128)))) == 1
