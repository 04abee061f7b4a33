"""The head checks the feature map's output stride where it first sees it: a backbone at
another stride (ResNet-18 without a neck: stride 32) is a ValueError naming both strides,
at test time (it used to run silently) and at train time (it used to fail deep inside
MMPose's loss)."""
import copy

import pytest
import torch

import logocap_mm  # noqa: F401
from logocap_mm.testing import (TEST_TINY_CONFIG, fixed_train_batch, tiny_config,
                                tiny_data_samples)
from mmpose.registry import MODELS

MATCH = (r'LogoCapHead: the feature map is 4x4 \(h x w\) for a 128x128 input canvas, an '
         r'output stride of 32, but the head works at stride 4')


@pytest.fixture(scope='module')
def cfg():
    return tiny_config(TEST_TINY_CONFIG)


@pytest.fixture(scope='module')
def resnet_model(cfg):
    mcfg = copy.deepcopy(cfg.model)
    mcfg.backbone = dict(type='ResNet', depth=18, out_indices=(3, ))
    mcfg.pop('neck', None)
    mcfg.head.in_channels = 512
    torch.manual_seed(0)
    return MODELS.build(mcfg)


def test_wrong_stride_is_refused_at_test_time(resnet_model):
    model = resnet_model.eval()
    for flip in (True, False):
        model.test_cfg = dict(model.test_cfg, flip_test=flip)
        with torch.no_grad(), pytest.raises(ValueError, match=MATCH):
            model.predict(*tiny_data_samples(1, (128, 128)))


def test_wrong_stride_is_refused_at_train_time(cfg, resnet_model):
    model = resnet_model.train()
    data = model.data_preprocessor(fixed_train_batch(cfg, size=128), True)
    with pytest.raises(ValueError, match=MATCH):
        model(**data, mode='loss')


def test_right_stride_passes(cfg):
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model)).eval()
    x, samples = tiny_data_samples(2, (192, 128))  # a batch of non-square canvases
    with torch.no_grad():
        assert len(model.predict(x, samples)) == 2
    model.head.check_stride(torch.zeros(1, 32, 48, 32), [(192, 128)])  # exact: 4
    with pytest.raises(ValueError, match='output stride of 8'):
        model.head.check_stride(torch.zeros(1, 32, 24, 16), [(192, 128)])
