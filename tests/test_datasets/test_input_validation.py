"""Image arrays entering the test pipeline: dtype policy, non-finite pixels / weights, and
extreme aspect ratios (long side fitted to ``max_long_side``), through ``LogoCapResize``,
the tiny model's ``test_step`` and ``MMPoseInferencer``."""
import warnings

import numpy as np
import pytest
import torch
from validation_utils import (build_model, check_instances, infer, load_cfg,
                              save_weights, make_test_pipeline)


@pytest.fixture(scope='module')
def cfg():
    return load_cfg()


@pytest.fixture(scope='module')
def model(cfg):
    return build_model(cfg, flip_test=False)


@pytest.fixture(scope='module')
def pipe(cfg):
    return make_test_pipeline(cfg)


def _resize(**kw):
    from mmpose.registry import TRANSFORMS
    return TRANSFORMS.build(dict(type='LogoCapResize', input_size=128, **kw))


def _img(shape=(60, 80, 3), seed=0):
    return np.random.RandomState(seed).randint(0, 256, shape).astype(np.uint8)


# ----------------------------------------------------------------------------- dtypes
def test_non_finite_pixels_are_refused_naming_the_file(model, pipe):
    """NaN / inf pixels: a ValueError naming the file and the counts (was a RuntimeError
    'index -9223372036854775808 is out of bounds' in the sampler's gather)."""
    img = _img().astype(np.float32)
    img[3, 4, 0] = np.nan
    img[5, 6, 1] = np.inf
    img[7, 8, 2] = -np.inf
    with pytest.raises(ValueError, match=r'nan\.png has non-finite pixels \(1 NaN, 2 inf\)'):
        infer(model, pipe, img, 'nan.png')


def test_non_finite_weights_give_a_clear_error(cfg, pipe):
    """A NaN in the weights: the decoder refuses the non-finite head outputs by name."""
    m = build_model(cfg, flip_test=False)
    with torch.no_grad():
        m.head.offset_final.weight[0, 0] = float('nan')
    with pytest.raises(ValueError, match=r'non-finite \(NaN / inf\) offsets.*checkpoint'):
        infer(m, pipe, _img())


def test_uint16_is_scaled_to_8_bits(model, pipe):
    """uint16 = uint8 * 257: the same canvas and the same poses as the uint8 image (was x in
    the tens of thousands)."""
    u8 = _img((70, 90, 3), 1)
    u16 = u8.astype(np.uint16) * 257
    r = _resize()
    np.testing.assert_array_equal(r(dict(img=u16))['img'], r(dict(img=u8))['img'])
    a, b = infer(model, pipe, u8), infer(model, pipe, u16)
    assert check_instances(a) > 0
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    assert np.abs(b.keypoints).max() < 3 * 90 + 100  # within the canvas' reach in O


def test_float_images_0_255_and_0_1(model, pipe):
    """float32 in [0, 255] gives (to warp rounding) the uint8 canvas; a float image with max
    <= 1 is taken as [0, 1], scaled by 255 with a warning (it used to give 0 people
    silently)."""
    u8 = _img((70, 90, 3), 2)
    f255 = u8.astype(np.float32)
    r = _resize()
    ref = r(dict(img=u8))['img'].astype(np.float32)
    out255 = r(dict(img=f255))['img']
    assert np.abs(out255 - ref).max() <= 1.0
    f01 = f255 / 255.
    with pytest.warns(UserWarning, match=r'unit\.png has values in \[0, 1\].*scaling by 255'):
        out01 = r(dict(img=f01, img_path='unit.png'))['img']
    np.testing.assert_allclose(out01, out255, atol=1e-3)
    assert f01.max() <= 1.  # the input is not modified
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no warning for [0, 255] floats or all-zero images
        r(dict(img=f255))
        r(dict(img=np.zeros((10, 10, 3), np.float32)))
    n255 = check_instances(infer(model, pipe, f255))
    with pytest.warns(UserWarning):
        n01 = check_instances(infer(model, pipe, f01))
    assert n255 > 0 and n01 == n255


@pytest.mark.parametrize('dtype', [bool, np.int64, np.int32, np.float64, np.float16])
def test_other_dtypes_are_refused_naming_the_dtype(pipe, dtype):
    img = np.ones((20, 30, 3), dtype)
    name = np.dtype(dtype).name
    with pytest.raises(ValueError, match=rf'odd\.png has dtype {name}; accepted: uint8, '
                       r'uint16, float32'):
        pipe(dict(img=img, img_path='odd.png'))


@pytest.fixture(scope='module')
def inferencer(cfg, model, tmp_path_factory):
    from mmpose.apis import MMPoseInferencer
    path = save_weights(model, str(tmp_path_factory.mktemp('w') / 'tiny.pth'))
    c = cfg.copy()
    c.model.test_cfg.flip_test = False
    return MMPoseInferencer(pose2d=c, pose2d_weights=path, device='cpu', show_progress=False)


def test_inferencer_float_inputs_and_visualiser(inferencer):
    """float32 arrays are predicted and drawn; float64 (which OpenCV cannot convert for
    drawing: it crashed the inferencer's visualiser) is refused up front by dtype."""
    u8 = _img((64, 80, 3), 3)
    res = next(inferencer(u8.astype(np.float32), return_vis=True))
    assert res['visualization'][0].shape == (64, 80, 3)
    assert len(res['predictions'][0]) > 0
    with pytest.raises(ValueError, match='has dtype float64'):
        next(inferencer(u8.astype(np.float64), return_vis=True))


# ----------------------------------------------------------------------------- aspect ratio
def _back_to_o(k_i, res):
    """The estimator's I -> O mapping (BottomupPoseEstimator.add_pred_to_datasample)."""
    size = np.asarray(res['input_size'], np.float64)
    scale = np.asarray(res['input_scale'], np.float64)
    return k_i / size * scale + res['input_center'] - 0.5 * scale


@pytest.mark.parametrize('hw', [(300, 1), (1, 300), (100, 2000), (2000, 100)])
def test_extreme_aspect_ratio_fits_the_long_side(hw):
    """The canvas would exceed max_long_side (1x300 at S=128: 128x38400): the long side is
    fitted to it instead, one warning per transform, and I maps back onto O exactly."""
    r = _resize(max_long_side=1024)
    img = _img(hw + (3, ), 4)
    with pytest.warns(UserWarning, match=r'strip\.png is .*max_long_side=1024: using a'):
        res = r(dict(img=img, img_path='strip.png'))
    w_i, h_i = res['input_size']
    assert max(w_i, h_i) == 1024 and min(w_i, h_i) % 64 == 0 and min(w_i, h_i) >= 64
    assert res['img'].shape == (h_i, w_i, 3)
    h, w = hw
    corners_o = np.array([[0., 0.], [w - 1., h - 1.], [w / 3., h / 2.]])
    corners_i = np.c_[corners_o, np.ones(3)] @ res['warp_mat'].T
    assert (corners_i >= -1e-6).all() and (corners_i[:, 0] <= w_i).all() and \
        (corners_i[:, 1] <= h_i).all()  # the whole image is on the canvas
    np.testing.assert_allclose(_back_to_o(corners_i, res), corners_o, atol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # warned once
        r(dict(img=img, img_path='strip.png'))


@pytest.mark.parametrize('shape', [(300, 1, 3), (100, 4000, 3)], ids=['1x300', '100x4000'])
def test_extreme_aspect_ratio_end_to_end(model, cfg, shape):
    """Through the config's test pipeline (S=128, max_long_side 4096; 100x4000 here is the
    100x2000 case of S=512) and the model: a result in the original frame (it raised a
    ValueError before)."""
    pipe = make_test_pipeline(cfg)
    with pytest.warns(UserWarning, match='long side fitted'):
        pred = infer(model, pipe, _img(shape, 5), 'strip.png')
    n = check_instances(pred)
    assert n > 0
    h, w = shape[:2]
    # the canvas spans the long side exactly, the short one with padding: decoded
    # keypoints lie within the canvas' reach in O
    assert pred.keypoints[..., 0].min() > -w - 64 and pred.keypoints[..., 0].max() < 2 * w + 64
    assert pred.keypoints[..., 1].min() > -h - 64 and pred.keypoints[..., 1].max() < 2 * h + 64


def test_canvas_below_the_stride_is_an_error():
    r = _resize(size_factor=1)
    with pytest.warns(UserWarning):
        with pytest.raises(ValueError, match=r'sliver\.png is 6000x1.*4096x1, a side below '
                           r'the network stride \(min_side=4\)'):
            r(dict(img=np.zeros((1, 6000, 3), np.uint8), img_path='sliver.png'))
    with pytest.raises(ValueError, match=r'max_long_side \(32\) must be >= size_factor \(64\)'):
        _resize(max_long_side=32)


