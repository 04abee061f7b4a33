"""``test_cfg.memory_format`` / ``test_cfg.precision`` and mixed-precision training numerics.

* Layouts: channels_last and contiguous give the same poses (same count, keypoints within
  1e-2 px, scores within 1e-4) on the parity fixture's model and images.
* bf16 / fp16 inference: finite poses, network maps close to fp32 (tolerances below, from
  the fixture model: random, calibrated weights whose heatmaps reach ~5).
* Options: bad values and precisions a device cannot run are ``ValueError``\\ s.
* Training under ``torch.autocast('cpu', torch.bfloat16)``: finite losses close to fp32,
  finite gradients in every parameter that gets one in fp32.
* The LOGO-CAP losses compute in fp32 from low-precision inputs: a case whose weighted
  squared error fp16 flushes to zero keeps its value and, with a loss scale as
  ``AmpOptimWrapper`` uses, its gradient.
"""
import copy
import logging
import os.path as osp

import numpy as np
import pytest
import torch

import logocap_mm  # noqa: F401
from logocap_mm.testing import fixed_train_batch
from logocap_mm.models.precision import (FP32, NetworkPlan, current_plan, prepare_module,
                                         resolve_plan, use_plan)
from mmengine.config import Config
from mmengine.registry import init_default_scope

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # tests/test_models/<group>/<file>
TINY = osp.join(ROOT, 'tests', 'configs', 'tiny_coco.py')
DATA = osp.join(ROOT, 'tests', 'data', 'coco')
IMAGES = ('000000196141.jpg', '000000197388.jpg')
# bf16 keeps 8 significant bits: on the fixture model (heatmaps up to ~5) the flip-merged
# heatmaps differ from fp32 by at most 0.44 (0.10 of the maximum) and 0.034 RMS over the 4
# fixture images; fp16 (11 bits) by at most 0.046 (CPU, torch 2.14)
MAP_TOL = dict(bf16=dict(max_rel=0.15, rms=0.06), fp16=dict(max_rel=0.02, rms=0.01))
# every device of this machine (CUDA where present: tools/device/run_checks.sh runs this file
# there too)
DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


# ------------------------------------------------------------------------------ model
@pytest.fixture(scope='module')
def conv(fixture_dir, fixture_file, tmp_path_factory):
    """The parity fixture's model, converted by the converter (eval), and its pipeline."""
    from logocap_mm.testing import converted_fixture_model
    from mmengine.dataset import Compose
    fixture_file('ref_model.pth', 'precision')
    fixture_file('ref_config_full.yaml', 'precision')
    c = converted_fixture_model(fixture_dir, str(tmp_path_factory.mktemp('precision')))
    return dict(model=c['model'], pipeline=Compose(c['cfg'].test_dataloader.dataset.pipeline),
                meta=c['meta'])


def _batch(conv, name):
    meta = conv['meta']
    data = conv['pipeline'](dict(img_path=osp.join(DATA, name), img_id=0, id=0,
                                 flip_indices=meta['flip_indices'],
                                 skeleton_links=meta.get('skeleton_links', [])))
    return dict(inputs=[data['inputs']], data_samples=[data['data_samples']])


def _predict(model, batch, device='cpu', **opts):
    old = dict(model.test_cfg)
    model.to(device)
    model.test_cfg = dict(old, output_heatmaps=True, **opts)
    try:
        with torch.no_grad():
            out = model.test_step(batch)[0]
    finally:
        model.test_cfg = old
        model.to('cpu')
    out.pred_fields.heatmaps = out.pred_fields.heatmaps.cpu()
    return out


# ------------------------------------------------------------------------------ layouts
@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('name', IMAGES)
@pytest.mark.parametrize('level', ['full', 'none'])
def test_layouts_give_the_same_poses(conv, name, level, device):
    model = conv['model']
    batch = _batch(conv, name)
    # the model's own modules change layout: unfolded (folding: test_fuse_conv_bn_...)
    ref = _predict(model, batch, device, memory_format='contiguous', adaptation=level,
                   fuse_conv_bn=False)
    assert not model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    p0 = ref.pred_instances
    assert len(p0.keypoints) > 0
    for fmt in ('channels_last', 'auto'):
        out = _predict(model, batch, device, memory_format=fmt, adaptation=level,
                       fuse_conv_bn=False)
        # channels_last: the modules were converted (once) in place; 'auto' is
        # channels_last on CPU and contiguous elsewhere
        cl = fmt == 'channels_last' or device == 'cpu'
        assert model.backbone.__dict__['_logocap_channels_last'] is cl
        assert model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last) \
            is cl
        p = out.pred_instances
        assert len(p.keypoints) == len(p0.keypoints), f'{fmt}: number of poses'
        np.testing.assert_allclose(p.keypoints, p0.keypoints, rtol=0, atol=1e-2)
        np.testing.assert_allclose(p.keypoint_scores, p0.keypoint_scores, rtol=0, atol=1e-4)
        np.testing.assert_allclose(p.bbox_scores, p0.bbox_scores, rtol=0, atol=1e-4)
        hm = out.pred_fields.heatmaps
        assert hm.dtype == torch.float32 and hm.is_contiguous()
    # training runs in the written layout: train() converts the modules back
    model.train()
    try:
        assert all(not m.__dict__.get('_logocap_channels_last', False) for m in model.modules())
        assert not model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
        assert all(p.is_contiguous() for p in model.parameters())
    finally:
        model.eval()


@pytest.mark.parametrize('fmt,fuse', [('contiguous', True), ('channels_last', True),
                                      ('contiguous', 'auto'), ('auto', None)])
def test_fuse_conv_bn_gives_the_same_poses(conv, fmt, fuse):
    """``fuse_conv_bn=True`` and ``'auto'`` (the default, ``None`` here: the default
    test_cfg): folded copies of the backbone+neck and of the head's map branches run, with
    the poses of the unfolded contiguous model; the model keeps its BatchNorms."""
    model = conv['model']
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.backbone.modules())
    opts = {} if fuse is None else dict(memory_format=fmt, fuse_conv_bn=fuse)
    for name in IMAGES:
        batch = _batch(conv, name)
        p0 = _predict(model, batch, memory_format='contiguous',
                      fuse_conv_bn=False).pred_instances
        model.__dict__.pop('_logocap_folded', None)
        model.head.__dict__.pop('_logocap_folded', None)
        p = _predict(model, batch, **opts).pred_instances
        assert model.__dict__['_logocap_folded'].copy is not None
        head_copy = model.head.__dict__['_logocap_folded'].copy  # the map branches
        assert head_copy is not None and not any(
            isinstance(m, torch.nn.BatchNorm2d) for m in head_copy.modules())
        assert len(p.keypoints) == len(p0.keypoints) > 0
        np.testing.assert_allclose(p.keypoints, p0.keypoints, rtol=0, atol=1e-2)
        np.testing.assert_allclose(p.keypoint_scores, p0.keypoint_scores, rtol=0, atol=1e-4)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.backbone.modules()) == n_bn
    assert isinstance(model.head.heatmap_layers[1], torch.nn.BatchNorm2d)


def test_auto_layout_per_device():
    assert resolve_plan({}, torch.device('cpu')) == NetworkPlan('cpu', None, True, False,
                                                                'auto')
    assert resolve_plan({}, torch.device('cuda')).fuse_conv_bn == 'auto'  # folds everywhere
    assert resolve_plan(dict(fuse_conv_bn=False), 'cpu').fuse_conv_bn is False
    assert resolve_plan({}, torch.device('cuda')).channels_last is False
    assert resolve_plan(dict(memory_format='channels_last'), 'cpu').channels_last is True
    assert resolve_plan(dict(memory_format='contiguous'), 'cpu').channels_last is False
    assert resolve_plan(dict(precision='bf16'), 'cpu').dtype is torch.bfloat16
    assert resolve_plan({}, 'meta').channels_last is False  # no autocast there: fp32 is fine


def test_predict_scopes_the_plan_and_module_conversion_is_lazy():
    conv1 = torch.nn.Conv2d(3, 4, 3)
    w = conv1.weight
    prepare_module(conv1, True)
    assert conv1.weight is w and w.is_contiguous(memory_format=torch.channels_last)
    data = w.data.data_ptr()
    prepare_module(conv1, True)  # already converted: nothing moves
    assert conv1.weight.data.data_ptr() == data
    prepare_module(conv1, None)  # None leaves it alone
    assert w.is_contiguous(memory_format=torch.channels_last)
    prepare_module(conv1, False)
    assert w.is_contiguous() and not w.is_contiguous(memory_format=torch.channels_last)
    plan = NetworkPlan('cpu', torch.bfloat16, True)
    assert current_plan() is FP32
    with use_plan(plan):
        assert current_plan() == plan
        y = plan.run(conv1, torch.randn(1, 3, 8, 8))
    assert current_plan() is FP32
    assert y.dtype == torch.float32 and y.is_contiguous()


# ------------------------------------------------------------------------------ bf16/fp16
def _low_precisions():
    cases = [('cpu', 'bf16'), ('cpu', 'fp16')]
    if torch.cuda.is_available():
        cases.append(('cuda', 'fp16'))
        if torch.cuda.is_bf16_supported():
            cases.append(('cuda', 'bf16'))
    return cases


@pytest.mark.parametrize('device,precision', _low_precisions())
def test_low_precision_inference_is_finite_and_close(conv, device, precision):
    model = conv['model']
    batch = _batch(conv, IMAGES[0])
    ref = _predict(model, batch, device)
    out = _predict(model, batch, device, precision=precision)
    h0, h = ref.pred_fields.heatmaps, out.pred_fields.heatmaps
    assert h.dtype == torch.float32 and torch.isfinite(h).all()
    tol = MAP_TOL[precision]
    err = (h - h0).abs()
    assert float(err.max()) <= tol['max_rel'] * float(h0.abs().max()), float(err.max())
    assert float(err.pow(2).mean().sqrt()) <= tol['rms'], float(err.pow(2).mean().sqrt())
    assert float(err.max()) > 0  # autocast did take effect
    p, p0 = out.pred_instances, ref.pred_instances
    assert len(p.keypoints) > 0
    for key in ('keypoints', 'keypoint_scores', 'bbox_scores'):
        a = np.asarray(p[key])
        assert a.dtype == np.asarray(p0[key]).dtype and np.isfinite(a).all(), key


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
@pytest.mark.parametrize('name', IMAGES)
@pytest.mark.parametrize('level', ['full', 'partial', 'none'])
def test_cuda_predicts_the_cpu_poses(conv, name, level):
    """fp32 on CUDA (TF32 off) gives the CPU's poses, which the parity tests hold to the
    reference: same count, keypoints within 1e-2 px, scores within 1e-4."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = conv['model']
    batch = _batch(conv, name)
    ref = _predict(model, batch, 'cpu', adaptation=level).pred_instances
    out = _predict(model, batch, 'cuda', adaptation=level).pred_instances
    assert len(out.keypoints) == len(ref.keypoints)
    np.testing.assert_allclose(out.keypoints, ref.keypoints, rtol=0, atol=1e-2)
    np.testing.assert_allclose(out.keypoint_scores, ref.keypoint_scores, rtol=0, atol=1e-4)


# ------------------------------------------------------------------------------ options
@pytest.mark.parametrize('key,value', [('memory_format', 'nhwc'), ('precision', 'half'),
                                       ('precision', torch.float16), ('compile', 'yes'),
                                       ('fuse_conv_bn', 1)])
def test_bad_option_values_raise_at_build_time(key, value):
    from mmpose.registry import MODELS
    init_default_scope('mmpose')
    c = Config.fromfile(TINY)
    c.model.backbone.pop('init_cfg', None)
    c.model.test_cfg[key] = value
    with pytest.raises(ValueError, match=rf'test_cfg.{key} must be (one of|True or False)'):
        MODELS.build(c.model)


def test_precision_the_device_cannot_run_raises(monkeypatch):
    with pytest.raises(ValueError, match=r"precision='bf16'.*not available on device 'meta'"):
        resolve_plan(dict(precision='bf16'), 'meta')
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda *a, **k: 'Old GPU')
    monkeypatch.setattr(torch.amp, 'is_autocast_available', lambda kind: True)
    with pytest.raises(ValueError, match=r"CUDA device 'Old GPU' does not support bfloat16"):
        resolve_plan(dict(precision='bf16'), 'cuda')


# ------------------------------------------------------------------------------ training
def _losses_and_grads(model, data, dtype, scale=1.):
    model.zero_grad()
    proc = model.data_preprocessor(copy.deepcopy(data), True)
    with torch.autocast('cpu', dtype=dtype or torch.float32, enabled=dtype is not None):
        losses = model(**proc, mode='loss')
        loss, _ = model.parse_losses(losses)
    (loss * scale).backward()
    grads = {n: p.grad.detach().clone() / scale for n, p in model.named_parameters()
             if p.grad is not None}
    return {k: float(v.detach()) for k, v in losses.items()}, grads


@pytest.mark.parametrize('precision', ['bf16', 'fp16'])
def test_training_step_under_autocast(precision):
    """The tiny model's losses (LOGO-CAP terms active: gate 0) and gradients under CPU bf16 /
    fp16 autocast, as ``AmpOptimWrapper`` runs a training step (fp16 with its initial 2**16
    loss scale), next to fp32."""
    from mmengine.logging import MMLogger
    from mmpose.registry import MODELS
    init_default_scope('mmpose')
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    c = Config.fromfile(TINY)
    c.model.backbone.pop('init_cfg', None)
    c.model.head.oks_gate = 0.0
    data = fixed_train_batch(c, DATA, 128)
    torch.manual_seed(0)
    model = MODELS.build(c.model).train()
    state = copy.deepcopy(model.state_dict())
    l32, g32 = _losses_and_grads(model, data, None)
    model.load_state_dict(state)
    dtype = dict(bf16=torch.bfloat16, fp16=torch.float16)[precision]
    l16, g16 = _losses_and_grads(model, data, dtype, 2.**16 if precision == 'fp16' else 1.)
    assert set(l16) == set(l32) and l32['loss_oks'] > 0 and l32['loss_refine'] > 0
    for k, v in l16.items():
        assert np.isfinite(v), k
        # maps: rounding only; LOGO-CAP terms also follow the top-k centres, which low
        # precision heatmaps may reorder (measured 0.02% / 4.4% / 2.1% for offset / L_K /
        # L_H~ in bf16, 0.001% / 0.03% / 0.1% in fp16)
        rtol = 5e-3 if k in ('loss_heatmap', 'loss_offset') else 0.1
        assert abs(v - l32[k]) <= rtol * abs(l32[k]), (k, v, l32[k])
    assert set(g16) == set(g32)
    for n, g in g16.items():
        assert torch.isfinite(g).all(), n
        if bool((g32[n] != 0).any()):
            assert bool((g != 0).any()), f'{n}: gradient flushed to zero under {precision}'


# ------------------------------------------------------------------------------ losses
def _losses():
    from logocap_mm.models.losses.logocap_losses import (LogoCapOffsetLoss, LogoCapOKSLoss,
                                                         LogoCapRefineLoss)
    return LogoCapOffsetLoss(), LogoCapOKSLoss(), LogoCapRefineLoss()


def test_losses_compute_in_fp32_from_low_precision_inputs():
    off_l, oks_l, ref_l = _losses()
    g = torch.Generator().manual_seed(0)
    pred, tgt = torch.randn(2, 34, 8, 8, generator=g) * 20, torch.randn(2, 34, 8, 8,
                                                                         generator=g) * 20
    w = (torch.rand(2, 34, 8, 8, generator=g) > 0.5).float() * 0.01
    kams, ktgt = torch.rand(5, 17, 11, 11, generator=g), torch.rand(5, 17, 11, 11, generator=g)
    kw = torch.rand(5, 17, generator=g)
    resp = torch.rand(5, 17, 33, 33, generator=g)
    poses, gt = torch.rand(5, 17, 2, generator=g) * 500, torch.rand(5, 17, 2, generator=g) * 500
    for dt in (torch.float16, torch.bfloat16):
        cases = [(off_l, (pred, tgt, w)), (oks_l, (kams, ktgt, kw, 3)),
                 (ref_l, (resp, poses, gt, kw))]
        for loss, args in cases:
            low = [a.to(dt) if isinstance(a, torch.Tensor) else a for a in args]
            ref = loss(*[a.float() if isinstance(a, torch.Tensor) else a for a in low])
            with torch.autocast('cpu', dtype=dt):
                out = loss(*low)
            assert out.dtype == torch.float32
            torch.testing.assert_close(out, ref, rtol=1e-6, atol=0)


def test_oks_loss_keeps_what_fp16_flushes_to_zero():
    """A 1e-3 KAM error with a 1e-2 improvement weight: 1e-8 per element, below fp16's
    smallest subnormal (6e-8). Computed in fp32 the loss keeps it, and the gradient of the
    fp16 KAMs survives a 2**16 loss scale (``AmpOptimWrapper``'s initial scale). Targets and
    weights are fp16 too, as the head's matching gives them under fp16 autocast."""
    _, oks_l, ref_l = _losses()
    tgt = torch.full((4, 17, 11, 11), 0.5).half()
    kams = (tgt.float() + 1e-3).half().requires_grad_()
    w = torch.full((4, 17), 1e-2).half()
    naive = (w[..., None, None] * (kams.detach() - tgt) ** 2)
    assert naive.dtype == torch.float16 and (naive == 0).all()  # fp16 cannot hold it
    loss = oks_l(kams, tgt, w, 4)
    d = float(kams.detach().float()[0, 0, 0, 0] - 0.5)
    expect = float(w[0, 0]) * d * d * 0.01  # mean per instance, summed, / 4, * loss_weight
    assert loss.dtype == torch.float32
    assert abs(loss.item() - expect) <= 1e-6 * expect
    (loss * 2.**16).backward()
    assert kams.grad.dtype == torch.float16 and (kams.grad != 0).all()
    # the refined-heatmap loss: the same in fp32 for fp16 and fp32 copies of its inputs
    resp = torch.full((4, 17, 9, 9), 0.25).half().requires_grad_()
    poses = torch.full((4, 17, 2), 300.)
    out = ref_l(resp, poses.half(), poses.half() + 1, w.half())
    ref = ref_l(resp.detach().float(), poses.half().float(), (poses.half() + 1).float(),
                w.half().float())
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=0)
    (out * 2.**16).backward()
    assert torch.isfinite(resp.grad).all() and (resp.grad != 0).all()


# ------------------------------------------------------------------------------ compile
def test_compile_option_gives_the_same_poses():
    """``test_cfg.compile=True`` (opt-in) runs backbone+neck through torch.compile: the tiny
    model's maps and poses equal the eager run's (float tolerance of a fused graph)."""
    from mmpose.registry import MODELS
    from mmpose.structures import PoseDataSample
    init_default_scope('mmpose')
    c = Config.fromfile(TINY)
    c.model.backbone.pop('init_cfg', None)
    torch.manual_seed(0)
    model = MODELS.build(c.model).eval()
    with torch.no_grad():
        model.head.heatmap_final.bias[-1] = 2.  # centres above the threshold: people
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 128, 128, generator=g) * 2 - 1

    def run(**opts):
        model.test_cfg = dict(flip_test=False, output_heatmaps=True, **opts)
        ds = PoseDataSample(metainfo=dict(
            input_size=(128, 128), input_center=np.array([64., 64.]),
            input_scale=np.array([128., 128.]), ori_shape=(128, 128), img_shape=(128, 128),
            flip_indices=list(range(17))))
        with torch.no_grad():
            return model.predict(x, [ds])[0]
    # unfolded (the folded copy has its own compiled graph: folded.compiled)
    ref = run(memory_format='contiguous', fuse_conv_bn=False)
    out = run(memory_format='contiguous', compile=True, fuse_conv_bn=False)
    assert '_logocap_compiled_feat' in model.__dict__
    torch.testing.assert_close(out.pred_fields.heatmaps, ref.pred_fields.heatmaps,
                               rtol=0, atol=1e-4)
    p, p0 = out.pred_instances, ref.pred_instances
    assert len(p.keypoints) == len(p0.keypoints) > 0
    np.testing.assert_allclose(p.keypoints, p0.keypoints, rtol=0, atol=1e-2)
