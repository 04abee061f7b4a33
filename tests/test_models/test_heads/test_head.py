"""LogoCapHead / LogoCapDecoder / LogoCapPoseEstimator behaviour on the real MMPose stack."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch

import logocap_mm  # noqa: F401
from mmengine.dataset import pseudo_collate
from mmpose.registry import DATASETS, MODELS

from logocap_mm.testing import build_tiny_model as _model
from logocap_mm.testing import fixed_train_pipeline, tiny_config


@pytest.fixture(scope='module')
def cfg():
    return tiny_config()


def _dataset(cfg, split):
    ds_cfg = copy.deepcopy(cfg[f'{split}_dataloader'].dataset)
    return DATASETS.build(ds_cfg)


def _batch(ds, indices):
    return pseudo_collate([ds[i] for i in indices])


def test_forward_shapes(cfg):
    model = _model(cfg)
    x = torch.randn(2, 3, 256, 384)
    hm, off, emb = model._forward(x)
    assert hm.shape == (2, 18, 64, 96)
    assert off.shape == (2, 34, 64, 96)
    assert emb.shape == (2, 64, 64, 96)


def test_flip_merge_reference_is_plain_flip(cfg):
    """A left/right-symmetric output merged with its own mirror stays unchanged."""
    model = _model(cfg)
    head = model.head
    K = 17
    flip_idx = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    hm = torch.rand(1, K + 1, 8, 10)
    off = torch.rand(1, 2 * K, 8, 10)
    emb = torch.rand(1, 64, 8, 10)
    # the mirrored network output of a mirrored image: flip spatially, swap channels, negate x
    hm_f = hm.flip(-1)[:, flip_idx + [K]]
    o = off.reshape(1, K, 2, 8, 10).flip(-1)[:, flip_idx]
    off_f = torch.stack([-o[:, :, 0], o[:, :, 1]], 2).reshape(1, 2 * K, 8, 10)
    H, O, E = head.flip_merge((hm, off, emb), (hm_f, off_f), flip_idx, 'reference')
    assert torch.allclose(H, hm, atol=1e-6)
    assert torch.allclose(O, off, atol=1e-6)
    assert E is emb
    with pytest.raises(ValueError, match='flip_mode'):
        head.flip_merge((hm, off, emb), (hm_f, off_f), flip_idx, 'bogus')


@pytest.mark.parametrize('flip', [False, True])
@pytest.mark.parametrize('adaptation', ['full', 'partial', 'none'])
def test_predict_original_image_coordinates(cfg, flip, adaptation):
    model = _model(cfg, flip_test=flip, adaptation=adaptation).eval()
    ds = _dataset(cfg, 'test')
    data = _batch(ds, [0])
    with torch.no_grad():
        out = model.test_step(data)
    assert len(out) == 1
    pred = out[0].pred_instances
    n = len(pred.keypoints)
    assert pred.keypoints.shape == (n, 17, 2)
    assert pred.keypoint_scores.shape == (n, 17)
    assert pred.bbox_scores.shape == (n, )
    assert n <= 30
    assert np.isfinite(pred.keypoints).all() and np.isfinite(pred.keypoint_scores).all()
    if n:
        # pose score = mean keypoint score, sorted NMS keep order, positive
        assert np.allclose(pred.bbox_scores, pred.keypoint_scores.mean(1), atol=1e-6)
        assert (pred.bbox_scores > 0).all()
        h, w = out[0].metainfo['ori_shape']
        # keypoints are mapped back to the original image (input canvas is 256 x 448)
        assert pred.keypoints[..., 0].max() < w + 200 and pred.keypoints[..., 1].max() < h + 200


def test_batch2_equals_two_batch1(cfg):
    """Two images with the same canvas give the same poses in a batch as alone."""
    # image_chunk=None: really one batch (on CPU 'auto' would decode image by image)
    model = _model(cfg, flip_test=True, adaptation='full', image_chunk=None).eval()
    ds = _dataset(cfg, 'test')
    names = [osp.basename(ds[i]['data_samples'].metainfo['img_path']) for i in range(len(ds))]
    i1 = names.index('000000040083.jpg')
    i2 = names.index('000000196141.jpg')
    with torch.no_grad():
        b2 = model.test_step(_batch(ds, [i1, i2]))
        s1 = model.test_step(_batch(ds, [i1]))[0]
        s2 = model.test_step(_batch(ds, [i2]))[0]
    for single, batched in ((s1, b2[0]), (s2, b2[1])):
        p, q = single.pred_instances, batched.pred_instances
        assert p.keypoints.shape == q.keypoints.shape
        np.testing.assert_allclose(q.keypoints, p.keypoints, atol=1e-3)
        np.testing.assert_allclose(q.keypoint_scores, p.keypoint_scores, atol=1e-5)


def test_stock_bottomup_estimator_matches_batched_flip(cfg):
    model = _model(cfg, flip_test=True).eval()
    stock_cfg = copy.deepcopy(cfg.model)
    stock_cfg.type = 'BottomupPoseEstimator'
    stock = MODELS.build(stock_cfg).eval()
    stock.load_state_dict(model.state_dict())
    ds = _dataset(cfg, 'test')
    data = _batch(ds, [1])
    with torch.no_grad():
        a = model.test_step(data)[0].pred_instances
        b = stock.test_step(copy.deepcopy(data))[0].pred_instances
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)


def test_empty_image_predicts_empty_with_right_shapes(cfg):
    model = _model(cfg, flip_test=False).eval()
    head = model.head
    # make the centre channel strongly negative: no peak passes, the first slot is kept but
    # its pose score is <= 0, so nothing is returned
    with torch.no_grad():
        head.heatmap_final.bias[-1] = -100.
    ds = _dataset(cfg, 'test')
    with torch.no_grad():
        out = model.test_step(_batch(ds, [0]))[0].pred_instances
    assert out.keypoints.shape == (0, 17, 2)
    assert out.keypoint_scores.shape == (0, 17)
    assert out.bboxes.shape == (0, 4)


def _train(model, data, iters, lr=1e-3):
    from mmengine.optim import OptimWrapper
    opt = OptimWrapper(torch.optim.Adam(model.parameters(), lr=lr))
    hist = []
    model.train()
    for _ in range(iters):
        proc = model.data_preprocessor(copy.deepcopy(data), True)
        losses = model(**proc, mode='loss')
        loss, log = model.parse_losses(losses)
        opt.update_params(loss)
        hist.append({k: float(v) for k, v in log.items()})
    return hist


def test_overfit_one_image_every_term_decreases_every_branch_learns(cfg):
    """50 iterations on one (fixed) image: each loss goes down, each branch gets gradient."""
    c = copy.deepcopy(cfg)
    # deterministic sample: no augmentation; gate 0 so that L_K and L_H~ are active from the
    # first step (with the default 0.5 gate an untrained model rarely passes; see README)
    c.train_dataloader.dataset.pipeline = fixed_train_pipeline(c.codec, 256)
    c.model.head.oks_gate = 0.0
    c.model.head.train_topk = 4  # 4 instances keep the CMP cheap on a 2-core CPU
    model = _model(c)
    ds = _dataset(c, 'train')
    names = [osp.basename(ds.get_data_info(i)['img_path']) for i in range(len(ds))]
    data = _batch(ds, [names.index('000000196141.jpg')])

    # gradients reach every branch on the first step
    model.train()
    proc = model.data_preprocessor(copy.deepcopy(data), True)
    loss, _ = model.parse_losses(model(**proc, mode='loss'))
    loss.backward()
    head = model.head
    for name, mod in [('backbone', model.backbone), ('heatmap', head.heatmap_layers),
                      ('heatmap_final', head.heatmap_final), ('offset', head.offset_layers),
                      ('embedding', head.embedding_layers), ('cmp', head.cmp),
                      ('attn_norm', head.cmp.layers[4])]:
        g = sum(p.grad.abs().sum() for p in mod.parameters() if p.grad is not None)
        assert g > 0, f'no gradient reaches {name}'
    model.zero_grad()

    # each term on its own: a small step along its own gradient lowers it. L_K and L_H~ are
    # stepped in the embedding branch and CMP only: their targets (matching, KEM grids, OKS
    # of the candidates) follow the predicted centres and offsets, which such a step leaves
    # unchanged. (They share the CMP and pull it in different directions, so the joint run
    # below need not lower both.)
    all_params = [p for p in model.parameters() if p.requires_grad]
    local = [p for m in (head.embedding_layers, head.cmp) for p in m.parameters()]
    start = [p.detach().clone() for p in all_params]
    for key in ('loss_heatmap', 'loss_offset', 'loss_oks', 'loss_refine'):
        params = local if key in ('loss_oks', 'loss_refine') else all_params
        proc = model.data_preprocessor(copy.deepcopy(data), True)
        before = model(**proc, mode='loss')[key]
        grads = torch.autograd.grad(before, params, allow_unused=True)
        norm = torch.sqrt(sum((g ** 2).sum() for g in grads if g is not None))
        assert float(before) > 0 and float(norm) > 0, f'{key}: no signal at the start'
        with torch.no_grad():
            for p, g in zip(params, grads):
                if g is not None:
                    p -= 1e-3 * g / norm
        after = model(**model.data_preprocessor(copy.deepcopy(data), True), mode='loss')[key]
        assert float(after) < float(before), f'{key}: {float(before):.6g} -> {float(after):.6g}'
        with torch.no_grad():
            for p, p0 in zip(all_params, start):
                p.copy_(p0)

    # jointly, 50 iterations: the total and the two map terms fall clearly, all stay finite
    hist = _train(model, data, 50)
    for key in ('loss', 'loss_heatmap', 'loss_offset', 'loss_oks', 'loss_refine'):
        first = np.mean([h[key] for h in hist[:3]])
        last = np.mean([h[key] for h in hist[-3:]])
        assert np.isfinite(last) and first > 0, key
        if key in ('loss', 'loss_heatmap', 'loss_offset'):
            assert last < 0.7 * first, f'{key} did not decrease: {first:.4g} -> {last:.4g}'


def test_no_person_and_gate_fallback_give_finite_zero_losses(cfg):
    model = _model(cfg)
    ds = _dataset(cfg, 'train')
    data = _batch(ds, [0, 1])
    for ds_ in data['data_samples']:  # drop every annotation
        gi = ds_.gt_instances
        K = 17
        ds_.gt_instances = gi.__class__(
            keypoints=np.zeros((0, K, 2), np.float32),
            keypoints_visible=np.zeros((0, K), np.float32),
            areas=np.zeros((0, ), np.float32))
    model.train()
    proc = model.data_preprocessor(data, True)
    losses = model(**proc, mode='loss')
    for k in ('loss_oks', 'loss_refine'):
        assert torch.isfinite(losses[k]) and float(losses[k]) == 0.
    loss, _ = model.parse_losses(losses)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize('field,value,match', [
    ('adaptation', 'most', 'adaptation'),
    ('kem_size', 10, 'kem_size'),
    ('window_size', 7, 'window_size'),
    ('topk', 0, 'topk'),
])
def test_bad_decoder_config_raises(cfg, field, value, match):
    mcfg = copy.deepcopy(cfg.model)
    mcfg.head.pose_decoder[field] = value
    with pytest.raises(ValueError, match=match):
        MODELS.build(mcfg)


def test_wrong_sigma_length_raises(cfg):
    mcfg = copy.deepcopy(cfg.model)
    mcfg.head.metainfo = None
    mcfg.head.sigmas = [0.1] * 5
    with pytest.raises(ValueError, match='sigmas'):
        MODELS.build(mcfg)


def test_keypoint_count_mismatch_is_a_clear_error(cfg):
    model = _model(cfg)
    ds = _dataset(cfg, 'train')
    data = _batch(ds, [0])
    gi = data['data_samples'][0].gt_instances
    data['data_samples'][0].gt_instances = gi.__class__(
        keypoints=np.zeros((2, 14, 2), np.float32),
        keypoints_visible=np.ones((2, 14), np.float32),
        areas=np.ones((2, ), np.float32))
    model.train()
    proc = model.data_preprocessor(data, True)
    with pytest.raises(ValueError, match='num_keypoints=17'):
        model(**proc, mode='loss')


def test_image_chunking_gives_identical_predictions(cfg):
    ds = _dataset(cfg, 'test')
    data = _batch(ds, [0, 1, 2])
    outs = {}
    for chunk in (None, 1, 2):
        model = _model(cfg, flip_test=True, image_chunk=chunk).eval()
        with torch.no_grad():
            outs[chunk] = model.test_step(copy.deepcopy(data))
    for chunk in (1, 2):
        for a, b in zip(outs[None], outs[chunk]):
            np.testing.assert_array_equal(a.pred_instances.keypoints.shape,
                                          b.pred_instances.keypoints.shape)
            np.testing.assert_allclose(a.pred_instances.keypoints,
                                       b.pred_instances.keypoints, atol=1e-3)
    with pytest.raises(ValueError, match='image_chunk'):
        _model(cfg, image_chunk=0)
