"""``model.train_cfg.memory_format``: the training layout.

* ``'contiguous'`` (default): training runs as written, also after a validation whose
  test-time layout (``'auto'``: channels_last on CPU) converted the modules in place.
* ``'channels_last'``: the model is channels_last from the start (before a DDP wrapper sees
  it) and again after every ``train()``; its losses and gradients equal the contiguous
  model's to rounding.
* Other values are a ``ValueError`` at build time.
"""
import copy
import logging
import os.path as osp

import numpy as np
import pytest
import torch

import logocap_mm  # noqa: F401
from logocap_mm.testing import REPO_ROOT, fixed_train_batch
from mmengine.config import Config
from mmengine.registry import init_default_scope

TINY = osp.join(REPO_ROOT, 'tests', 'configs', 'tiny_coco.py')
DATA = osp.join(REPO_ROOT, 'tests', 'data', 'coco')


def _cfg(**train_cfg):
    c = Config.fromfile(TINY)
    c.model.backbone.pop('init_cfg', None)
    c.model.head.oks_gate = 0.0  # the LOGO-CAP losses are active from the first step
    c.model.train_cfg = train_cfg
    return c


def _is_cl(model):
    return model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def _step(model, data):
    model.zero_grad()
    proc = model.data_preprocessor(copy.deepcopy(data), True)
    loss, parts = model.parse_losses(model(**proc, mode='loss'))
    loss.backward()
    return ({k: float(v) for k, v in parts.items()},
            {n: p.grad.detach().clone() for n, p in model.named_parameters()
             if p.grad is not None})


def _validate(model, memory_format):
    """A test-time predict (as a validation runs) in ``memory_format``."""
    from mmpose.structures import PoseDataSample
    model.eval()
    # fuse_conv_bn=False: the model's own modules must take the test layout (a folded copy
    # would leave them as they are)
    model.test_cfg = dict(model.test_cfg, memory_format=memory_format, flip_test=False,
                          fuse_conv_bn=False)
    ds = PoseDataSample(metainfo=dict(
        input_size=(128, 128), input_center=np.array([64., 64.]),
        input_scale=np.array([128., 128.]), ori_shape=(128, 128), img_shape=(128, 128),
        flip_indices=list(range(17))))
    with torch.no_grad():
        model.predict(torch.zeros(1, 3, 128, 128), [ds])


def test_channels_last_training_equals_contiguous():
    from mmengine.logging import MMLogger
    from mmpose.registry import MODELS
    init_default_scope('mmpose')
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    torch.manual_seed(0)
    ref = MODELS.build(_cfg().model)
    cl = MODELS.build(_cfg(memory_format='channels_last').model)
    cl.load_state_dict(ref.state_dict())
    assert _is_cl(cl) and not _is_cl(ref)  # from the start, before any train()
    data = fixed_train_batch(_cfg(), DATA, 128)
    ref.train(), cl.train()
    assert _is_cl(cl) and not _is_cl(ref)
    l0, g0 = _step(ref, data)
    l1, g1 = _step(cl, data)
    assert set(l0) == set(l1) and l0['loss_oks'] > 0 and l0['loss_refine'] > 0
    for k in l0:
        assert abs(l1[k] - l0[k]) <= 1e-4 * abs(l0[k]) + 1e-9, (k, l1[k], l0[k])
    assert set(g0) == set(g1)
    for n in g0:
        # same direction and size; elementwise, the summation order's rounding grows through
        # the backward of every training-mode BatchNorm (~1% of the maximum and of the norm in the
        # stem's gradients of this random model, 1e-6 in the head's)
        a, b = g0[n].flatten().double(), g1[n].flatten().double()
        if float(a.norm()) == 0:
            assert float(b.norm()) == 0, n
            continue
        cos = float(torch.dot(a, b) / (a.norm() * b.norm()))
        assert cos > 0.999 and abs(float(b.norm() / a.norm()) - 1) < 3e-2, (n, cos)
    # a validation converts the modules to the test-time layout; train() puts them back
    for model, want in ((cl, True), (ref, False)):
        _validate(model, 'contiguous' if want else 'channels_last')
        assert _is_cl(model) is not want
        model.train()
        assert _is_cl(model) is want
        assert all(m.__dict__.get('_logocap_channels_last') is want for m in model.modules())


def test_bad_training_layout_raises():
    from mmpose.registry import MODELS
    init_default_scope('mmpose')
    with pytest.raises(ValueError, match=r"train_cfg.memory_format must be one of"):
        MODELS.build(_cfg(memory_format='auto').model)
