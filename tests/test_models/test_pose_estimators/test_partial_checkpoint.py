"""A checkpoint without some of the model's tensors: accepted for fine-tuning, refused (with the
missing names) for inference through load_checkpoint / init_model / MMPoseInferencer."""
import copy

import numpy as np
import pytest
import torch

import logocap_mm  # noqa: F401
from logocap_mm.testing import build_tiny_model, tiny_config, tiny_data_samples
from mmengine.runner.checkpoint import load_checkpoint


@pytest.fixture(scope='module')
def cfg():
    c = tiny_config()
    c.model.test_cfg.flip_test = False
    return c


def _build(cfg):
    return build_tiny_model(cfg)


def _save(tmp_path, sd, name):
    path = str(tmp_path / name)
    torch.save({'state_dict': sd, 'meta': {}}, path)
    return path


def _inputs(model):
    return tiny_data_samples(1, (64, 64))


def test_missing_head_tensors_refused_at_inference(cfg, tmp_path):
    full = _build(cfg).state_dict()
    partial = {k: v for k, v in full.items() if k != 'head.local_adaptation.cmp.layers.9.bias'}
    model = _build(cfg)
    load_checkpoint(model, _save(tmp_path, partial, 'no_bias.pth'), map_location='cpu',
                    strict=False)
    model.eval()
    with pytest.raises(ValueError,
                       match=r'lacks 1 tensors.*head\.local_adaptation\.cmp\.layers\.9\.bias'):
        model.predict(*_inputs(model))
    # a complete checkpoint afterwards: inference runs
    load_checkpoint(model, _save(tmp_path, full, 'full.pth'), map_location='cpu')
    with torch.no_grad():
        out = model.predict(*_inputs(model))
    assert out[0].pred_instances.keypoints.shape[1:] == (17, 2)


def test_backbone_only_checkpoint_for_fine_tuning(cfg, tmp_path):
    """load_from with a backbone-only file, then training mode: validation / test run."""
    full = _build(cfg).state_dict()
    bb = {k: v for k, v in full.items() if k.startswith('backbone.')}
    n_head = sum(not k.startswith('backbone.') and not k.endswith('num_batches_tracked')
                 for k in full)
    model = _build(cfg)
    load_checkpoint(model, _save(tmp_path, bb, 'bb.pth'), map_location='cpu', strict=False)
    model.eval()
    with pytest.raises(ValueError, match=rf'lacks {n_head} tensors '
                       r'.*\(head\.embedding_layers\.0\.'):
        model.predict(*_inputs(model))
    model.train()  # what mmengine's training loops call before the first iteration
    model.eval()
    with torch.no_grad():
        model.predict(*_inputs(model))


def test_init_model_and_inferencer_refuse_missing_backbone(cfg, tmp_path):
    full = _build(cfg).state_dict()
    no_stage4 = {k: v for k, v in full.items() if not k.startswith('backbone.stage4.0.')}
    path = _save(tmp_path, no_stage4, 'no_stage4.pth')
    from mmpose.apis import inference_bottomup, init_model
    model = init_model(copy.deepcopy(cfg), path, device='cpu')
    img = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match=r'lacks \d+ tensors.*backbone\.stage4\.0\.'):
        inference_bottomup(model, img)
    from mmpose.apis import MMPoseInferencer
    inf = MMPoseInferencer(pose2d=copy.deepcopy(cfg), pose2d_weights=path, device='cpu',
                           show_progress=False)
    with pytest.raises(ValueError, match=r'backbone\.stage4\.0\.'):
        next(inf(img))


def test_checkpoint_with_the_older_cmp_keys_loads_completely(cfg, tmp_path):
    """Checkpoints saved before the CMP moved into the local adaptation ('head.cmp.*') load
    through load_checkpoint with nothing missing, and predict as the same weights do."""
    src = _build(cfg)
    with torch.no_grad():
        for p in src.head.local_adaptation.cmp.parameters():
            p.add_(0.01 * torch.randn_like(p))
    old = {k.replace('head.local_adaptation.cmp.', 'head.cmp.'): v
           for k, v in src.state_dict().items()}
    assert any(k.startswith('head.cmp.layers.') for k in old)
    model = _build(cfg)
    load_checkpoint(model, _save(tmp_path, old, 'old_layout.pth'), map_location='cpu')
    assert model._ckpt_missing == []
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    model.eval()
    src.eval()
    with torch.no_grad():
        a = model.predict(*_inputs(model))[0].pred_instances
        b = src.predict(*_inputs(src))[0].pred_instances
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
