"""LogoCapResize: exact parity with the reference's test resize (fixture README §4, spec §2.1)."""
import glob
import os
import os.path as osp

import numpy as np
import pytest

from logocap_mm.datasets.transforms import (LogoCapResize, reference_resize_params,
                                            reference_warp_matrix)

DATA = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data')  # tests/data


def _find_image(file_name):
    """Look the fixture's ``file_name`` up anywhere under tests/data/ (skip if absent; a
    failure under env CI)."""
    hits = sorted(glob.glob(osp.join(DATA, '**', osp.basename(str(file_name))), recursive=True))
    if not hits:
        msg = f'image {file_name} of the fixture not found under {DATA}'
        if os.environ.get('CI'):
            pytest.fail(msg)
        pytest.skip(msg)
    return hits[0]


def _run(path_img, size, **kw):
    from mmpose.datasets.transforms import LoadImage
    results = LoadImage()(dict(img_path=path_img))
    return LogoCapResize(input_size=size, **kw)(results)


RESIZE_KEYS = ('orig_size_hw', 'center', 'scale', 'affine_O2I', 'affine_I2O')


def test_fixture_input_exact(fixture_image, require):
    """Per fixture image file (test size S = the canvas' short side): canvas size,
    centre/scale/O->I affine equal the reference's, the warped canvas equals
    input_uint8_hwc (BGR from LoadImage vs stored RGB) where stored, and MMPose's I->O
    mapping (add_pred_to_datasample's formula) equals the reference's affine_I2O."""
    path, size = fixture_image
    require(path, RESIZE_KEYS, 'resize parity')
    z = np.load(path)
    res = _run(_find_image(z['file_name']), size)
    h_i, w_i = (int(v) for v in z['input_size_hw'])
    assert res['img'].shape == (h_i, w_i, 3), path
    assert res['img_shape'] == (h_i, w_i)
    assert tuple(res['input_size']) == (w_i, h_i)
    assert tuple(z['orig_size_hw']) == tuple(res['ori_shape'])
    # centre and 200-px scale of the reference meta
    np.testing.assert_array_equal(res['input_center'], z['center'])
    np.testing.assert_allclose(res['input_scale'] / 200.0, z['scale'], rtol=1e-6)
    np.testing.assert_allclose(res['warp_mat'], z['affine_O2I'], rtol=0, atol=1e-6)
    if 'input_uint8_hwc' in z.files:
        np.testing.assert_array_equal(res['img'][..., ::-1], z['input_uint8_hwc'])
    # I -> O mapping used by BottomupPoseEstimator.add_pred_to_datasample
    pts = np.array([[0., 0.], [w_i - 1, h_i - 1], [17.25, 203.5], [w_i / 2, h_i / 2]],
                   dtype=np.float32)
    mm = pts / np.array(res['input_size']) * res['input_scale'] + res['input_center'] \
        - 0.5 * res['input_scale']
    a = z['affine_I2O'].astype(np.float64)
    ref = pts @ a[:, :2].T + a[:, 2]
    np.testing.assert_allclose(mm, ref, rtol=0, atol=2e-4)


def test_reference_rounding_not_ceil():
    """500x333 at S=256: 256/333*500 = 384.38 -> 384 (reference), 448 with 'ceil'."""
    size, center, scale = reference_resize_params((500, 333), 256)
    assert size == (384, 256)
    assert center.tolist() == [250, 167]
    np.testing.assert_allclose(scale, [384 / 256 * 333 / 200, 333 / 200])
    size_c, _, _ = reference_resize_params((500, 333), 256, round_mode='ceil')
    assert size_c == (448, 256)
    # portrait: short side is the width
    size_p, center_p, _ = reference_resize_params((333, 500), 512)
    assert size_p == (512, 768) and center_p.tolist() == [167, 250]
    # integer long side: both modes agree (exact multiple stays)
    assert reference_resize_params((640, 320), 256)[0] == (512, 256)
    assert reference_resize_params((640, 320), 256, round_mode='ceil')[0] == (512, 256)


def test_warp_matrix_maps_centre_and_inverse():
    size, center, scale = reference_resize_params((640, 425), 256)
    m = reference_warp_matrix(center, scale, size)
    mi = reference_warp_matrix(center, scale, size, inv=True)
    c_i = m[:, :2] @ center + m[:, 2]
    np.testing.assert_allclose(c_i, [size[0] / 2, size[1] / 2], atol=1e-9)
    full = np.vstack([m, [0, 0, 1]]) @ np.vstack([mi, [0, 0, 1]])
    np.testing.assert_allclose(full, np.eye(3), atol=1e-9)
    # isotropic: one O pixel = W_I / (200 scale_w) I pixels on both axes
    np.testing.assert_allclose([m[0, 0], m[1, 1]], [size[0] / (200 * scale[0])] * 2)


def test_pipeline_registry_and_square_tuple():
    from mmpose.registry import TRANSFORMS
    img = np.full((100, 60, 3), 200, np.uint8)
    t = TRANSFORMS.build(dict(type='LogoCapResize', input_size=(128, 128), size_factor=64,
                              resize_mode='expand'))
    res = t(dict(img=img.copy()))
    # w < h: width -> 128, height = int((128/60*100 + 63)//64*64) = 256 (213.3 -> 256)
    assert res['img'].shape == (256, 128, 3)
    # padding is constant 0, the image area keeps its value
    assert res['img'][0, 0].tolist() == [0, 0, 0]
    assert res['img'][128, 64].tolist() == [200, 200, 200]


@pytest.mark.parametrize('kwargs, field', [
    (dict(input_size=(512, 256)), 'input_size'),
    (dict(input_size=0), 'input_size'),
    (dict(input_size=256, size_factor=0), 'size_factor'),
    (dict(input_size=256, round_mode='floor'), 'round_mode'),
    (dict(input_size=256, resize_mode='fit'), 'resize_mode'),
    (dict(input_size=256, aug_scales=[0.5]), 'aug_scales'),
    (dict(input_size=256, use_udp=True), 'use_udp'),
])
def test_bad_options(kwargs, field):
    with pytest.raises(ValueError, match=field):
        LogoCapResize(**kwargs)
