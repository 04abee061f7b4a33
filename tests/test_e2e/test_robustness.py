"""Robustness (issue 8): odd images, degenerate training batches, bad configs, bad
checkpoints, an interrupted-and-resumed run, and low-precision / degenerate decoding.

Everything goes through the public paths (LogoCapCodec, LogoCapResize + the MMPose test
pipeline, LogoCapHead / LogoCapDecoder, LogoCapPoseEstimator ``test_step`` / ``train_step``,
mmengine's ``load_checkpoint`` and ``Runner``, ``MMPoseInferencer``) and asserts the outcome:
correct poses or an empty result of the right shapes, a clear error naming the file / field,
finite losses and gradients, identical losses after ``resume``.
Models are the tiny config (configs/logocap/tiny_coco_demo.py); training cases use a 128 px
canvas so that the whole module stays short on a 2-core CPU.
"""
import copy
import os.path as osp

import numpy as np
import pytest
import torch

import logocap_mm  # noqa: F401
from logocap_mm.testing import COCO_DATA, build_tiny_model, tiny_config
from mmengine.dataset import Compose, pseudo_collate
from mmpose.registry import DATASETS, KEYPOINT_CODECS, MODELS, TRANSFORMS

DATA = COCO_DATA
K = 17


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope='module')
def cfg():
    return tiny_config()


def _build(cfg, **test_cfg):
    return build_tiny_model(cfg, **test_cfg)


@pytest.fixture(scope='module')
def model(cfg):
    return _build(cfg, flip_test=False).eval()


@pytest.fixture(scope='module')
def val_pipeline(cfg):
    ds = DATASETS.build(copy.deepcopy(cfg.test_dataloader.dataset))
    return Compose(cfg.test_dataloader.dataset.pipeline), ds.metainfo


def _infer(model, val_pipeline, img, name='synthetic.png'):
    pipe, meta = val_pipeline
    data = pipe(dict(img=img, img_path=name, img_id=0, id=0,
                     flip_indices=meta['flip_indices']))
    with torch.no_grad():
        return model.test_step(pseudo_collate([data]))[0].pred_instances


def _check_instances(pred, k=K):
    n = len(pred.keypoints)
    assert pred.keypoints.shape == (n, k, 2)
    assert pred.keypoint_scores.shape == (n, k)
    assert pred.bboxes.shape == (n, 4)
    assert pred.bbox_scores.shape == (n, )
    assert n <= 30
    for v in (pred.keypoints, pred.keypoint_scores, pred.bboxes, pred.bbox_scores):
        assert np.isfinite(v).all()
    return n


# ----------------------------------------------------------------------------- images
@pytest.mark.parametrize('shape', [(300, 400, 3), (8, 8, 3), (40, 400, 3), (400, 100, 3)],
                         ids=['blank', 'tiny8x8', 'wide10to1', 'tall4to1'])
def test_odd_images_give_well_formed_results(model, val_pipeline, shape):
    """Blank, tiny and extreme-aspect images run end to end: right shapes, finite values,
    keypoints mapped back to the original frame (within the canvas' reach)."""
    rng = np.random.RandomState(0)
    img = np.zeros(shape, np.uint8) if shape[0] == 300 else \
        rng.randint(0, 256, shape).astype(np.uint8)
    pred = _infer(model, val_pipeline, img)
    n = _check_instances(pred)
    if n:
        h, w = shape[:2]
        span = max(h, w)  # the canvas covers the image plus padding on the short axis
        assert np.abs(pred.keypoints).max() < 3 * span + 100


def test_empty_result_has_the_right_shapes(cfg, val_pipeline):
    """No centre above threshold (no people): an empty result of the right shapes."""
    model = _build(cfg, flip_test=True).eval()
    with torch.no_grad():
        model.head.heatmap_final.bias[-1] = -100.
    pred = _infer(model, val_pipeline, np.zeros((120, 160, 3), np.uint8))
    assert _check_instances(pred) == 0


def test_grayscale_and_rgba_inputs(model, val_pipeline):
    """(H, W), (H, W, 1) and (H, W, 4) arrays (inferencer inputs) are turned into the same
    3-channel canvas as the 3-channel image; other channel counts are a clear error."""
    rng = np.random.RandomState(1)
    gray = rng.randint(0, 256, (90, 120)).astype(np.uint8)
    bgr = np.repeat(gray[..., None], 3, 2)
    resize = TRANSFORMS.build(dict(type='LogoCapResize', input_size=256))
    ref = resize(dict(img=bgr.copy()))['img']
    assert ref.shape == (256, 384, 3)
    for img in (gray, gray[..., None]):
        np.testing.assert_array_equal(resize(dict(img=img))['img'], ref)
    rgba = np.concatenate([bgr, np.full((90, 120, 1), 7, np.uint8)], 2)
    np.testing.assert_array_equal(resize(dict(img=rgba))['img'], ref)
    with pytest.raises(ValueError, match=r'two\.png has 2 channels; expected 1'):
        resize(dict(img=np.zeros((9, 9, 2), np.uint8), img_path='two.png'))
    # and the estimator runs on them (this was an IndexError inside the preprocessor)
    a = _infer(model, val_pipeline, gray)
    b = _infer(model, val_pipeline, bgr)
    _check_instances(a)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)


def test_empty_image_is_rejected_naming_the_file(val_pipeline):
    """(Extreme aspect ratios are fitted instead: tests/test_datasets/test_input_validation.py.)"""
    pipe, _ = val_pipeline
    with pytest.raises(ValueError, match='empty'):
        pipe(dict(img=np.zeros((0, 5, 3), np.uint8), img_path='void.png'))


@pytest.fixture(scope='module')
def weights(cfg, tmp_path_factory):
    """A checkpoint of the tiny model (random weights, plain dataset_meta)."""
    path = str(tmp_path_factory.mktemp('ckpt') / 'tiny.pth')
    m = _build(cfg)
    torch.save({'state_dict': m.state_dict(), 'meta': {}}, path)
    return path


@pytest.fixture(scope='module')
def inferencer(cfg, weights):
    from mmpose.apis import MMPoseInferencer
    c = copy.deepcopy(cfg)
    c.model.test_cfg.flip_test = False
    return MMPoseInferencer(pose2d=c, pose2d_weights=weights, device='cpu',
                            show_progress=False)


def test_inferencer_bad_files_name_the_file(inferencer, tmp_path):
    """Missing, corrupt, truncated and empty files: MMPose's LoadImage error names the
    file; arrays of 1 or 4 channels work."""
    good = open(osp.join(DATA, '000000040083.jpg'), 'rb').read()
    files = {'missing.jpg': None, 'corrupt.jpg': b'not an image' * 10,
             'truncated.jpg': good[:len(good) // 3], 'empty.jpg': b''}
    for name, content in files.items():
        path = str(tmp_path / name)
        if content is not None:
            with open(path, 'wb') as f:
                f.write(content)
        with pytest.raises(Exception, match=r'occurs when loading .*' + name) as e:
            next(inferencer(path, return_vis=False))
        assert not isinstance(e.value, IndexError)
    for img in (np.zeros((50, 60), np.uint8), np.zeros((50, 60, 4), np.uint8)):
        res = next(inferencer(img, return_vis=False))
        assert len(res['predictions']) == 1
        for p in res['predictions'][0]:
            assert np.asarray(p['keypoints']).shape == (K, 2)


# ----------------------------------------------------------------------------- crowds
def _grid_people(n_rows, n_cols, spacing, origin, rng):
    """(N, K, 2) people on a grid: centre + a fixed small pose (in the given units)."""
    cy, cx = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing='ij')
    centres = np.stack([cx, cy], -1).reshape(-1, 2) * spacing + origin
    shape = rng.uniform(-2.5, 2.5, (K, 2))
    shape -= shape.mean(0)  # the keypoint mean is the centre
    return centres[:, None, :] + shape[None]


def test_codec_round_trip_with_120_people():
    """120 people (more than top-k = 30): encode -> decode returns exactly 30 poses, each
    equal to one ground-truth person (centre-offset decoding of exact targets)."""
    codec = KEYPOINT_CODECS.build(dict(type='LogoCapCodec', input_size=(512, 512),
                                       heatmap_size=(128, 128)))
    rng = np.random.RandomState(0)
    # off-grid centres: an exact integer F centre gives two tied I-pixel peaks (reference)
    people_f = _grid_people(10, 12, 10., np.array([8.3, 8.6]), rng)      # F units
    kpts = people_f * 4.                                                 # I pixels
    enc = codec.encode(kpts, np.ones((120, K)), area=np.full(120, 80. ** 2))
    assert np.isfinite(enc['heatmaps']).all() and np.isfinite(enc['displacements']).all()
    assert enc['heatmaps'][K].max() > 0.8
    poses, (cscores, kscores) = codec.decode(enc['heatmaps'], enc['displacements'])
    assert poses.shape == (30, K, 2) and cscores.shape == (30, ) and kscores.shape == (30, K)
    d = np.abs(poses[:, None] - kpts[None]).max(-1).max(-1)              # (30, 120)
    match = d.argmin(1)
    assert len(set(match.tolist())) == 30  # 30 different people
    assert d.min(1).max() < 4.0  # within one F cell (peak quantisation of the centre)


def _synthetic_maps(n_people, h=40, w=48, seed=0):
    """Head outputs with ``n_people`` centre peaks of distinct heights and offsets that
    put every keypoint at a fixed displacement from its centre (F units)."""
    rng = np.random.RandomState(seed)
    hm = torch.full((1, K + 1, h, w), -0.1)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    rows = int(np.ceil(n_people / 12))
    centres = torch.tensor(_grid_people(rows, 12, 4., np.array([2.3, 2.6]),
                                        rng)[:n_people].mean(1), dtype=torch.float32)
    heights = torch.linspace(0.9, 0.3, n_people)
    for (cx, cy), s in zip(centres, heights):  # test data only
        g = s * torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * 1.2 ** 2))
        hm[0, K] = torch.maximum(hm[0, K], g)
        hm[0, :K] = torch.maximum(hm[0, :K], 0.8 * g)
    disp = torch.tensor(rng.uniform(-1.5, 1.5, (K, 2)), dtype=torch.float32)
    disp -= disp.mean(0)  # the keypoint mean is the centre
    off = (-disp).reshape(2 * K, 1, 1).expand(2 * K, h, w)[None].contiguous()
    emb = torch.randn(1, 64, h, w)
    return hm, off, emb, centres, heights


class _FlatCMP(torch.nn.Module):
    """A CMP whose KAMs are all ones (the LOGO-CA convolution becomes a box filter)."""

    def forward(self, x):
        s = x.shape[-1]
        return x.new_ones(x.shape[0], K, s, s)


@pytest.mark.parametrize('adaptation', ['full', 'partial', 'none'])
def test_decoder_with_120_people_caps_at_topk(model, adaptation):
    """120 centre peaks: exactly 30 people, the 30 strongest, finite, positive scores."""
    head = copy.deepcopy(model.head)
    head.local_adaptation.cmp = _FlatCMP()
    hm, off, emb, centres, heights = _synthetic_maps(120)
    with torch.no_grad():
        dets, _ = head.pose_decoder.decode(hm, off, emb, adaptation=adaptation)
    assert len(dets) == 1
    d = dets[0]
    assert d['keypoints'].shape == (30, K, 2)
    assert d['keypoint_scores'].shape == (30, K) and d['scores'].shape == (30, )
    for v in d.values():
        assert torch.isfinite(v).all()
    assert (d['scores'] > 0).all()
    if adaptation == 'none':
        # keypoints = centre - 4 * offset: the 30 highest peaks (I = 4 F + 1.5 +- 2 px)
        centre_i = d['keypoints'].mean(1)
        expect = centres[:30] * 4 + 1.5
        dist = torch.cdist(centre_i, expect)
        assert dist.min(1).values.max() < 3.0
        assert len(set(dist.argmin(1).tolist())) == 30


def test_people_cut_by_the_border():
    """Keypoints and centres outside the canvas: finite targets, only in-map keypoints
    drawn, no offsets for a person whose centre is outside; the decoder keeps poses that
    reach outside the canvas finite."""
    codec = KEYPOINT_CODECS.build(dict(type='LogoCapCodec', input_size=(128, 128),
                                       heatmap_size=(32, 32)))
    rng = np.random.RandomState(0)
    inside = rng.uniform(10, 30, (K, 2))                # near the top-left corner
    half = inside.copy()
    half[:4] -= 30.                                     # 4 keypoints left of / above it
    out = rng.uniform(140, 200, (K, 2))                 # centre outside the canvas
    kpts = np.stack([half, out])
    enc = codec.encode(kpts, np.ones((2, K)), area=np.full(2, 40. ** 2))
    for v in enc.values():
        assert np.isfinite(v).all()
    drawn = enc['heatmaps'][:K].reshape(K, -1).max(1) > 0
    assert not drawn[:4].any() and drawn[4:].all()
    # person 0's centre (mean of all its labelled keypoints, spec 5.2) is inside the map:
    # offsets for its in-map keypoints only; person 1 adds nothing
    assert 0 <= half.mean(0).min() and half.mean(0).max() < 128
    w = enc['displacement_weights'].reshape(2 * K, -1).max(1)
    assert (w[:8] == 0).all() and (w[8:] == pytest.approx(1 / 40.))
    hm_in = codec.encode(kpts[:1], np.ones((1, K)), area=np.full(1, 40. ** 2))
    np.testing.assert_array_equal(hm_in['heatmaps'], enc['heatmaps'])


def test_decoder_border_centres_finite(model):
    head = model.head
    h = w = 32
    hm = torch.full((1, K + 1, h, w), 0.05)
    hm[0, K] = -1.
    for (y, x) in ((0, 0), (h - 1, w - 1), (0, w - 1)):   # peaks at the corners
        hm[0, K, y, x] = 0.9
    off = torch.full((1, 2 * K, h, w), 30.)  # every keypoint 120 I px up-left: outside
    emb = torch.randn(1, 64, h, w)
    for level in ('full', 'partial', 'none'):
        with torch.no_grad():
            d = head.pose_decoder.decode(hm, off, emb, adaptation=level)[0][0]
        for v in d.values():
            assert torch.isfinite(v).all(), level
        assert d['keypoints'].shape[1:] == (K, 2)


def test_all_keypoints_invisible_and_crowd_only_targets():
    """No visible keypoint: empty keypoint heatmaps and offsets; a non-crowd person still
    gets its bbox-centre (spec §5.2), a crowd region gets nothing."""
    codec = KEYPOINT_CODECS.build(dict(type='LogoCapCodec', input_size=(128, 128),
                                       heatmap_size=(32, 32)))
    kpts = np.random.RandomState(0).uniform(20, 100, (2, K, 2))
    bbox = np.array([[20., 20., 60., 100.], [60., 10., 110., 90.]])
    kw = dict(keypoints_visible=np.zeros((2, K)), area=np.full(2, 50. ** 2), bbox=bbox)
    person = codec.encode(kpts, iscrowd=np.array([0, 0]), **kw)
    crowd = codec.encode(kpts, iscrowd=np.array([1, 1]), **kw)
    for enc in (person, crowd):
        for v in enc.values():
            assert np.isfinite(v).all()
        assert enc['heatmaps'][:K].max() == 0 and enc['displacement_weights'].max() == 0
    assert person['heatmaps'][K].max() == pytest.approx(1.0)  # centre at (40, 60) / 4
    assert np.unravel_index(person['heatmaps'][K].argmax(), (32, 32)) in ((15, 10), (15, 9))
    assert crowd['heatmaps'].max() == 0
    assert np.allclose(crowd['heatmap_weights'], 0.1)


# ----------------------------------------------------------------------------- training
@pytest.fixture(scope='module')
def small_cfg(cfg):
    """The tiny model on a 128x128 canvas with a deterministic training pipeline."""
    c = copy.deepcopy(cfg)
    codec = dict(type='LogoCapCodec', input_size=(128, 128), heatmap_size=(32, 32))
    c.codec = codec
    c.model.head.decoder = codec
    # fewer centre slots and a smaller LOGO-CA window keep a CPU step short; the degenerate
    # cases do not depend on these sizes
    c.model.head.train_topk = 4
    c.model.head.pose_decoder.update(window_size=33, topk=4)
    c.train_dataloader.dataset.pipeline = [
        dict(type='LoadImage'),
        dict(type='BottomupRandomAffine', input_size=(128, 128), shift_factor=0.,
             scale_factor=(1., 1.), rotate_factor=0., scale_type='short'),
        dict(type='GenerateTarget', encoder=codec),
        dict(type='BottomupGetHeatmapMask'),
        dict(type='PackPoseInputs'),
    ]
    return c


def _degenerate_samples(ds, kind):
    """A training batch (one image, 5 people) built by the real pipeline from edited
    annotations.

    ``no_annotations``: MMPose's bottom-up datasets drop images without any annotation in
    training mode, and its ``BottomupRandomAffine`` fails on zero instances (``cv2.transform``
    returns None), so such a sample is packed by hand: the pipeline output of a real image
    with its instances removed and the codec's targets for zero people.
    """
    from mmengine.structures import InstanceData
    codec = ds.pipeline.transforms[-3].encoder  # GenerateTarget's LogoCapCodec
    out = []
    for i in (2, ):
        info = copy.deepcopy(ds.get_data_info(i))
        n = len(info['keypoints'])
        if kind in ('all_invisible', 'crowd_only'):
            info['keypoints_visible'] = np.zeros_like(info['keypoints_visible'])
            info['num_keypoints'] = [0] * n
            if kind == 'crowd_only':
                info['iscrowd'] = [1] * n
                info['invalid_segs'] = [list(info['segmentation'])]  # all polygons
        sample = ds.pipeline(info)
        if kind == 'no_annotations':
            ds_ = sample['data_samples']
            ds_.gt_instances = InstanceData(
                keypoints=np.zeros((0, K, 2), np.float32),
                keypoints_visible=np.zeros((0, K), np.float32),
                areas=np.zeros((0, ), np.float32), bboxes=np.zeros((0, 4), np.float32))
            enc = codec.encode(np.zeros((0, K, 2)), np.zeros((0, K)), area=np.zeros(0))
            for k, v in enc.items():
                ds_.gt_fields.set_data({k: torch.from_numpy(v)})
        out.append(sample)
    return pseudo_collate(out)


def test_degenerate_batches_train_finite(small_cfg):
    """20 steps alternating batches with no annotations, only crowd regions, every keypoint
    invisible, and real people under an unreachable OKS gate (nothing passes): every loss
    and gradient finite at every step, weights finite at the end."""
    from mmengine.optim import OptimWrapper
    model = _build(small_cfg)
    model.train()
    ds = DATASETS.build(copy.deepcopy(small_cfg.train_dataloader.dataset))
    batches = {k: _degenerate_samples(ds, k)
               for k in ('no_annotations', 'crowd_only', 'all_invisible', 'gate')}
    assert batches['no_annotations']['data_samples'][0].gt_fields.heatmaps.max() == 0
    assert batches['crowd_only']['data_samples'][0].gt_fields.heatmap_mask.min() == 0
    opt = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-3))
    grads_seen = 0
    for step in range(20):
        kind = list(batches)[step % 4]
        model.head.oks_gate = 1.0 if kind == 'gate' else 0.0
        data = model.data_preprocessor(copy.deepcopy(batches[kind]), True)
        losses = model(**data, mode='loss')
        for k, v in losses.items():
            assert torch.isfinite(v).all(), (step, kind, k, v)
        if kind in ('no_annotations', 'crowd_only', 'gate'):
            # nothing can be matched: the LOGO-CAP terms are exactly 0 (not NaN)
            assert float(losses['loss_oks']) == 0 and float(losses['loss_refine']) == 0
        loss, _ = model.parse_losses(losses)
        opt.backward(loss)
        for name, p in model.named_parameters():
            if p.grad is not None:
                assert torch.isfinite(p.grad).all(), (step, kind, name)
                grads_seen += 1
        opt.step()
        opt.zero_grad()
    assert grads_seen > 0
    for name, p in model.named_parameters():
        assert torch.isfinite(p).all(), name
    for name, b in model.named_buffers():
        if b.is_floating_point():
            assert torch.isfinite(b).all(), name


# ----------------------------------------------------------------------------- configs
@pytest.mark.parametrize('where,field,value,match', [
    ('decoder', 'kem_size', 10, r'kem_size must be a positive odd int, got 10'),
    ('decoder', 'kem_size', 0, r'kem_size must be a positive odd int, got 0'),
    ('decoder', 'kem_size', -3, r'kem_size must be a positive odd int'),
    ('decoder', 'window_size', 96, r'window_size must be a positive odd int, got 96'),
    ('decoder', 'window_size', 0, r'window_size must be a positive odd int'),
    ('decoder', 'window_size', 7, r'window_size \(7\) must be >= kem_size \(11\)'),
    ('decoder', 'topk', 0, r'topk must be a positive int, got 0'),
    ('decoder', 'max_people', 0, r'max_people must be a positive int'),
    ('decoder', 'adaptation', 'most',
     r"adaptation must be one of \('full', 'partial', 'none'\), got 'most'"),
    ('test_cfg', 'adaptation', 'most',
     r"test_cfg.adaptation must be one of \('full', 'partial', 'none'\)"),
    ('test_cfg', 'flip_mode', 'exact',
     r"test_cfg.flip_mode must be one of \('reference', 'aligned'\)"),
    ('head', 'train_topk', 0, r'train_topk must be a positive int, got 0'),
    ('head', 'sigmas', [0.1] * 5, r'sigmas has 5 entries but num_keypoints is 17'),
    ('head', 'sigmas', [0.1] * 16 + [0.], r'sigmas must be positive'),
    ('codec', 'topk', 0, r'topk must be a positive int, got 0'),
    ('codec', 'sigma', -1., r'sigma must be a finite number > 0'),
])
def test_bad_config_raises_at_build_time(cfg, where, field, value, match):
    mcfg = copy.deepcopy(cfg.model)
    if where == 'decoder':
        mcfg.head.pose_decoder[field] = value
    elif where == 'test_cfg':
        mcfg.test_cfg[field] = value
    elif where == 'codec':
        mcfg.head.decoder[field] = value
    else:
        mcfg.head.metainfo = None
        mcfg.head[field] = value
    with pytest.raises(ValueError, match=match):
        MODELS.build(mcfg)


@pytest.mark.parametrize('kwargs,match', [
    (dict(input_size=0), 'input_size must be a positive int'),
    (dict(input_size=(256, 192)), r'input_size must be an int \(short side S\) or a square'),
    (dict(input_size=256, round_mode='floor'), r"round_mode must be one of \('reference', "
     r"'ceil'\)"),
    (dict(input_size=256, max_long_side=0), 'max_long_side must be a positive int'),
])
def test_bad_resize_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TRANSFORMS.build(dict(type='LogoCapResize', **kwargs))


# ----------------------------------------------------------------------------- checkpoints
def _load(model, path):
    from mmengine.runner.checkpoint import load_checkpoint
    return load_checkpoint(model, path, map_location='cpu', strict=False)


def test_checkpoint_loads_and_truncated_file_is_named(cfg, weights, tmp_path):
    model = _build(cfg)
    _load(model, weights)  # the healthy checkpoint loads without complaint
    ref = torch.load(weights, map_location='cpu')['state_dict']
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref[k]), k
    data = open(weights, 'rb').read()
    bad = str(tmp_path / 'cut.pth')
    with open(bad, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(RuntimeError, match=r"cannot read checkpoint file '.*cut\.pth'.*"
                       r"\n.*truncated or corrupt") as e:
        _load(model, bad)
    assert e.value.__cause__ is not None  # torch's own error is kept as the cause


def test_checkpoint_of_another_model_is_rejected(cfg, tmp_path):
    model = _build(cfg)
    # a 14-keypoint LOGO-CAP (CrowdPose): same names, other shapes
    c14 = copy.deepcopy(cfg.model)
    c14.head.update(num_keypoints=14, metainfo=None, sigmas=[0.05] * 14)
    other = MODELS.build(c14)
    path = str(tmp_path / 'kp14.pth')
    torch.save({'state_dict': other.state_dict()}, path)
    with pytest.raises(ValueError, match=r'does not fit this model.*head\.heatmap_final\.'
                       r'weight: checkpoint \(15, 32, 1, 1\) vs model \(18, 32, 1, 1\)'):
        _load(model, path)
    # an unrelated network
    path = str(tmp_path / 'resnet.pth')
    torch.save({'state_dict': {'conv1.weight': torch.zeros(64, 3, 7, 7),
                               'fc.weight': torch.zeros(1000, 2048)}}, path)
    with pytest.raises(ValueError, match=r'not a LogoCapPoseEstimator checkpoint: none of '
                       r'its 2 keys'):
        _load(model, path)
    # a backbone-only checkpoint (partial, right shapes) is still accepted
    path = str(tmp_path / 'backbone.pth')
    sd = {k: v for k, v in model.state_dict().items() if k.startswith('backbone.')}
    torch.save({'state_dict': sd}, path)
    _load(model, path)


def _as_reference(sd):
    """Rename our head keys to the reference's (inverse of the converter's mapping)."""
    from logocap_mm.convert import HEAD_PREFIX_MAP
    out = {}
    for k, v in sd.items():
        for ref, ours in HEAD_PREFIX_MAP:
            if k.startswith(ours):
                k = ref + k[len(ours):]
                break
        out[k] = v
    return out


def test_reference_checkpoint_without_conversion_says_what_to_run(cfg, tmp_path,
                                                                  fixture_dir):
    model = _build(cfg)
    paths = [str(tmp_path / 'ref_like.pth')]
    torch.save({'state_dict': _as_reference(model.state_dict())}, paths[0])
    released = osp.join(fixture_dir, 'ref_model.pth')  # a real reference state dict
    if osp.isfile(released):
        paths.append(released)
    for path in paths:
        with pytest.raises(ValueError, match=r"(?s)reference checkpoint.*'(joints_mlp|"
                           r"transition_cls|final_layer_cls)\..*tools/convert_official_ckpt\.py"):
            _load(model, path)
    # the same through torch's own load_state_dict (e.g. user code)
    with pytest.raises(ValueError, match='convert_official_ckpt'):
        model.load_state_dict(_as_reference(model.state_dict()), strict=False)


# ----------------------------------------------------------------------------- faults
class _Crash(RuntimeError):
    pass


def _runner_cfg(small_cfg, work_dir, max_epochs, name):
    c = copy.deepcopy(small_cfg)
    c.work_dir = work_dir
    c.experiment_name = name
    c.train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=100)
    c.val_dataloader = c.val_cfg = c.val_evaluator = None
    c.test_dataloader = c.test_cfg = c.test_evaluator = None
    c.train_dataloader.sampler = dict(type='DefaultSampler', shuffle=True)
    c.optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3))
    # a schedule that changes every iteration, so that its state matters
    c.param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
                              end=4)]
    c.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, by_epoch=True,
                                      save_best=None, max_keep_ckpts=-1)
    c.default_hooks.logger = dict(type='LoggerHook', interval=1)
    c.default_hooks.visualization = dict(type='PoseVisualizationHook', enable=False)
    c.randomness = dict(seed=0, deterministic=True)
    c.env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork'),
                     dist_cfg=dict(backend='gloo'))
    c.visualizer = dict(type='PoseLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                        name=name)
    c.log_level = 'WARNING'
    return c


def _recorder(store, crash_at=None):
    from mmengine.hooks import Hook

    class Recorder(Hook):
        priority = 'LOWEST'

        def before_train(self, runner):
            store['start_iter'] = runner.iter
            store['start_epoch'] = runner.epoch
            store['opt_state'] = copy.deepcopy(runner.optim_wrapper.state_dict())
            store['sched'] = [s.state_dict() for s in runner.param_schedulers]

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            store.setdefault('lr', []).append(runner.optim_wrapper.get_lr()['lr'][0])

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            store.setdefault('loss', []).append({k: float(v) for k, v in outputs.items()})
            if crash_at is not None and runner.iter + 1 == crash_at:
                raise _Crash(f'simulated kill after iteration {crash_at}')

    return Recorder()


def test_resume_after_a_crash_continues_identically(small_cfg, tmp_path):
    """4 images, batch 2: 2 iterations per epoch, a checkpoint per epoch. Run A trains 2
    epochs uninterrupted. Run B is killed after iteration 3 (one iteration after the
    epoch-1 checkpoint); run C resumes B's work dir. C starts at iteration 2 / epoch 1 with
    the checkpoint's optimizer and scheduler state, and its losses, learning rates and final
    weights equal A's exactly (seeded, deterministic CPU)."""
    from mmengine.runner import Runner
    a, b, c = {}, {}, {}
    ra = Runner.from_cfg(_runner_cfg(small_cfg, str(tmp_path / 'a'), 2, 'rob_a'))
    ra.register_hook(_recorder(a))
    ra.train()
    rb = Runner.from_cfg(_runner_cfg(small_cfg, str(tmp_path / 'b'), 2, 'rob_b'))
    rb.register_hook(_recorder(b, crash_at=3))
    with pytest.raises(_Crash):
        rb.train()
    assert len(b['loss']) == 3 and b['loss'] == a['loss'][:3]  # same seed, same start
    assert osp.isfile(tmp_path / 'b' / 'epoch_1.pth')
    assert not osp.isfile(tmp_path / 'b' / 'epoch_2.pth')
    cc = _runner_cfg(small_cfg, str(tmp_path / 'b'), 2, 'rob_c')
    cc.resume = True
    rc = Runner.from_cfg(cc)
    rc.register_hook(_recorder(c))
    rc.train()
    from mmengine.runner.checkpoint import _load_checkpoint  # weights_only=True
    ckpt = _load_checkpoint(str(tmp_path / 'b' / 'epoch_1.pth'), map_location='cpu')
    assert c['start_iter'] == 2 and c['start_epoch'] == 1
    assert ckpt['meta']['iter'] == 2 and ckpt['meta']['epoch'] == 1
    # optimizer state (Adam moments, step) and scheduler state restored from the checkpoint
    st, st_ck = c['opt_state']['state'], ckpt['optimizer']['state']
    assert set(st) == set(st_ck) and len(st) > 0
    for i in st:
        for k in st_ck[i]:
            assert torch.equal(torch.as_tensor(st[i][k]), torch.as_tensor(st_ck[i][k])), (i, k)
    assert c['sched'][0]['last_step'] == ckpt['param_schedulers'][0]['last_step'] == 2
    # the next iterations are those of the uninterrupted run
    assert c['loss'] == a['loss'][2:]
    assert c['lr'] == a['lr'][2:]
    for (n, p), q in zip(ra.model.named_parameters(), rc.model.parameters()):
        assert torch.equal(p, q), n


# ----------------------------------------------------------------------------- numerics
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16], ids=['bf16', 'fp16'])
def test_decode_under_cpu_autocast_is_finite(cfg, val_pipeline, dtype):
    """The whole test step (full adaptation) under CPU autocast: finite results of the
    right shapes, about as many people as in fp32."""
    model = _build(cfg, flip_test=False).eval()
    with torch.no_grad():
        model.head.heatmap_final.bias[-1] = 2.  # centres everywhere: 30 people to refine
    img = np.random.RandomState(3).randint(0, 256, (64, 64, 3)).astype(np.uint8)
    ref = _infer(model, val_pipeline, img)
    try:
        with torch.autocast('cpu', dtype=dtype):
            low = _infer(model, val_pipeline, img)
    except RuntimeError as e:  # pragma: no cover (torch without CPU fp16 kernels)
        if dtype is torch.float16:
            pytest.skip(f'fp16 CPU autocast unsupported here: {e}')
        raise
    n = _check_instances(ref)
    assert n > 0
    m = _check_instances(low)
    assert m > 0
    assert abs(m - n) <= max(3, n // 3)


@pytest.mark.parametrize('fill', ['zeros', 'equal', 'negative'])
@pytest.mark.parametrize('adaptation', ['full', 'partial', 'none'])
def test_degenerate_heatmaps_give_no_nan(model, fill, adaptation):
    """All-equal or all-negative heatmaps: no NaN; all-negative and all-zero maps have no
    centre above the threshold, so the result is empty."""
    head = model.head
    g = torch.Generator().manual_seed(0)
    h, w = 24, 20
    if fill == 'zeros':
        hm = torch.zeros(2, K + 1, h, w)
    elif fill == 'equal':
        hm = torch.full((2, K + 1, h, w), 0.3)
    else:
        hm = -torch.rand(2, K + 1, h, w, generator=g) - 0.01
    off = torch.randn(2, 2 * K, h, w, generator=g)
    emb = torch.randn(2, 64, h, w, generator=g)
    with torch.no_grad():
        dets, _ = head.pose_decoder.decode(hm, off, emb, adaptation=adaptation)
        dets_bf, _ = head.pose_decoder.decode(hm.bfloat16(), off.bfloat16(), emb,
                                              adaptation='none')
    for d in dets + dets_bf:
        for v in d.values():
            assert not torch.isnan(v).any() and torch.isfinite(v).all()
        assert d['keypoints'].shape[1:] == (K, 2)
    if fill in ('zeros', 'negative'):
        assert all(len(d['scores']) == 0 for d in dets)
    else:
        assert all(len(d['scores']) > 0 for d in dets)
