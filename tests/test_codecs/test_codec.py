"""Tests for logocap_mm.codecs: LogoCapCodec (encode/decode) and the torch decode helpers.

Frames: I = network input (stride 1), F = heatmap grid (stride 4), O = original image.
"""
import os.path as osp
import warnings

import numpy as np
import pytest
import torch

from logocap_mm.codecs import (LogoCapCodec, centre_offset_poses, find_centers,
                               sample_heatmaps_at_poses, upsample_heatmaps)

STRIDE = 4
DATASETS = [('CocoDataset', 'coco', 'test_coco.json', 17),
            ('OCHumanDataset', 'ochuman', 'test_ochuman.json', 17),
            ('CrowdPoseDataset', 'crowdpose', 'test_crowdpose.json', 14)]


def _codec(size=512, **kw):
    return LogoCapCodec((size, size), (size // STRIDE, size // STRIDE), **kw)


# --------------------------------------------------------------------------- known answers
def test_gaussian_peak_support_and_weights():
    codec = _codec(128)  # F grid 32x32
    x_f, y_f = 10.3, 20.6
    kpts = np.array([[[4 * x_f, 4 * y_f], [0., 0.]]])
    vis = np.array([[1, 0]])
    enc = codec.encode(kpts, vis, area=np.array([2000.]))
    hm, w = enc['heatmaps'], enc['heatmap_weights']
    assert hm.shape == (3, 32, 32) and w.shape == (3, 32, 32)
    assert hm.dtype == np.float32
    # value at integer pixels: exp(-d^2 / (2 sigma^2)), sigma = 2
    assert hm[0, 21, 10] == pytest.approx(np.exp(-((10 - x_f)**2 + (21 - y_f)**2) / 8), abs=1e-7)
    assert np.unravel_index(hm[0].argmax(), hm[0].shape) == (21, 10)  # nearest pixel
    # support square [floor(x - 3s - 1), ceil(x + 3s + 2)) = x in [3, 19), y in [13, 29)
    nz_y, nz_x = np.nonzero(hm[0])
    assert (nz_x.min(), nz_x.max(), nz_y.min(), nz_y.max()) == (3, 18, 13, 28)
    # the centre (mean of visible kpts = the keypoint) has sigma 4: x in [-3, 25) clipped to
    # [0, 25), y in [7, 35) clipped to [7, 32)
    assert hm[2, 21, 10] == pytest.approx(np.exp(-(0.3**2 + 0.4**2) / 32), abs=1e-7)
    assert hm[2, 21, 24] > 0 and hm[2, 21, 25] == 0 and hm[2, 21, 0] > 0
    assert hm[2, 7, 10] > 0 and hm[2, 6, 10] == 0 and hm[2, 31, 10] > 0
    assert hm[1].max() == 0  # invisible keypoint channel
    # weights: 1 on the union of support squares (here the centre's), 0.1 elsewhere
    assert set(np.unique(w).tolist()) == {np.float32(0.1), np.float32(1.0)}
    expect = np.full((32, 32), 0.1, np.float32)
    expect[7:32, 0:25] = 1.0  # the centre square contains the keypoint square
    np.testing.assert_array_equal(w[0], expect)
    assert (w == w[:1]).all()  # one map broadcast to all channels


def test_displacement_sign_square_and_weight():
    codec = _codec(256)  # 64x64
    kpts = np.array([[[4 * 30.25, 4 * 22.5], [4 * 40.5, 4 * 41.75]]])
    enc = codec.encode(kpts, np.ones((1, 2)), area=np.array([3600.]))
    d, dw = enc['displacements'], enc['displacement_weights']
    c = kpts[0].mean(0) / 4  # (35.375, 32.125) -> ct = (35, 32)
    ys, xs = np.nonzero(dw[0])
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (31, 38, 28, 35)  # [ct-4, ct+4)
    assert len(xs) == 64
    for k in range(2):
        for (py, px) in [(28, 31), (35, 38), (32, 35)]:
            assert d[2 * k, py, px] == pytest.approx(px - kpts[0, k, 0] / 4)  # pixel - kpt
            assert d[2 * k + 1, py, px] == pytest.approx(py - kpts[0, k, 1] / 4)
    np.testing.assert_allclose(dw[dw > 0], 1 / 60.)
    assert (dw[:, :, :31] == 0).all() and (d[:, :28] == 0).all()
    assert c[0] == pytest.approx(35.375)


@pytest.mark.parametrize('order', [(0, 1), (1, 0)])
def test_smaller_person_wins_overlap(order):
    codec = _codec(256)
    big = np.array([[100., 100.], [140., 140.]])  # centre (120, 120) I -> ct (30, 30) F
    small = np.array([[110., 126.], [130., 126.]])  # centre (120, 126) -> ct (30, 31)
    people = [(big, 9000.), (small, 1600.)]
    kpts = np.stack([people[i][0] for i in order])
    area = np.array([people[i][1] for i in order])
    enc = codec.encode(kpts, np.ones((2, 2)), area=area)
    d, dw = enc['displacements'], enc['displacement_weights']
    # overlap rows y in [27, 34), columns [26, 34): small wins; row 26 only big
    np.testing.assert_allclose(dw[0, 27:34, 26:34], 1 / 40.)
    np.testing.assert_allclose(d[0, 30, 28], 28 - 110 / 4)
    np.testing.assert_allclose(dw[0, 26, 26:34], 1 / np.sqrt(9000.), rtol=1e-6)
    np.testing.assert_allclose(d[0, 26, 28], 28 - 100 / 4)
    np.testing.assert_allclose(dw[0, 34, 26:34], 1 / 40.)
    assert (dw[0, 35] == 0).all()


def test_centre_area_rule_and_warp_det():
    codec = _codec(256)
    kpts = np.array([[[100., 100.], [124., 124.]]])  # centre (112, 112) I = (28, 28) F
    vis = np.ones((1, 2))
    warp = np.array([[2., 0., 5.], [0., 2., -3.]])  # det 4
    # I-area 4000 -> O-area 1000 < 32**2: keypoint heatmaps but no centre, no offsets
    enc = codec.encode(kpts, vis, area=np.array([4000.]), warp_mat=warp)
    assert enc['heatmaps'][:2].max() > 0.9
    assert enc['heatmaps'][2].max() == 0 and enc['displacement_weights'].max() == 0
    # O-area 1100 >= 1024: centre at the mean of the visible keypoints
    enc = codec.encode(kpts, vis, area=np.array([4400.]), warp_mat=warp)
    assert np.unravel_index(enc['heatmaps'][2].argmax(), (64, 64)) == (28, 28)
    np.testing.assert_allclose(enc['displacement_weights'].max(), 1 / np.sqrt(4400.), rtol=1e-6)
    # no warp_mat: the given area is the O-area too
    enc = codec.encode(kpts, vis, area=np.array([4000.]))
    assert enc['heatmaps'][2].max() > 0.9
    # invisible keypoints do not move the centre
    vis2 = np.array([[1, 0]])
    enc = codec.encode(kpts, vis2, area=np.array([4400.]), warp_mat=warp)
    assert np.unravel_index(enc['heatmaps'][2].argmax(), (64, 64)) == (25, 25)
    assert enc['heatmaps'][1].max() == 0


def test_area_none_fallback():
    codec = _codec(256)
    kpts = np.array([[[10., 20.], [100., 140.]], [[0., 0.], [0., 0.]]])
    enc = codec.encode(kpts, np.array([[1, 1], [0, 0]]))  # no area in the pipeline
    assert enc['heatmaps'][2].max() > 0.9  # every person passes the area rule
    # offset weight from the visible keypoints' box in I: 90 x 120
    np.testing.assert_allclose(enc['displacement_weights'].max(), 1 / np.sqrt(90 * 120.),
                               rtol=1e-6)


def test_bbox_centre_fallback_and_crowd():
    kpts = np.zeros((2, 3, 2))
    vis = np.zeros((2, 3))
    bbox = np.array([[40., 60., 120., 100.], [0., 0., 200., 200.]])
    area = np.array([5000., 5000.])
    iscrowd = np.array([0, 1])
    enc = _codec(256).encode(kpts, vis, area=area, bbox=bbox, iscrowd=iscrowd)
    # non-crowd person without keypoints: centre at the bbox centre (80, 80) I = (20, 20) F
    assert np.unravel_index(enc['heatmaps'][3].argmax(), (64, 64)) == (20, 20)
    assert enc['heatmaps'][3, 50, 50] == 0  # the crowd box gets nothing
    assert enc['displacement_weights'].max() == 0  # no visible keypoints -> no offsets
    # corner-form bbox (BottomupRandomAffine output) gives the same centre
    corners = np.stack([bbox[:, [0, 1]], bbox[:, [2, 1]], bbox[:, [2, 3]], bbox[:, [0, 3]]], 1)
    enc2 = _codec(256).encode(kpts, vis, area=area, bbox=corners, iscrowd=iscrowd)
    np.testing.assert_array_equal(enc['heatmaps'], enc2['heatmaps'])
    # fallback off -> all background
    enc3 = _codec(256, bbox_center_fallback=False).encode(kpts, vis, area=area, bbox=bbox,
                                                          iscrowd=iscrowd)
    assert enc3['heatmaps'].max() == 0


def test_flip_target_shift_option():
    kpts = np.array([[[100., 100.], [120., 124.]]])
    kw = dict(area=np.array([5000.]), flip=True, flip_direction='horizontal')
    plain = _codec(256).encode(kpts, np.ones((1, 2)), **kw)
    quirk = _codec(256, flip_target_shift=True).encode(kpts, np.ones((1, 2)), **kw)
    # reference: flipped targets sit (stride-1)/stride = 0.75 F-px left of x_I/4
    kq = kpts.copy()
    kq[..., 0] -= 3
    ref = _codec(256).encode(kq, np.ones((1, 2)), area=np.array([5000.]))
    for key in plain:
        np.testing.assert_array_equal(quirk[key], ref[key])
    assert not np.array_equal(plain['heatmaps'], quirk['heatmaps'])
    unflipped = _codec(256, flip_target_shift=True).encode(
        kpts, np.ones((1, 2)), area=np.array([5000.]), flip=False)
    np.testing.assert_array_equal(unflipped['heatmaps'], plain['heatmaps'])


# --------------------------------------------------------------------------- bad input
def _assert_background(enc, K, hw=(64, 64), bg=0.1):
    assert enc['heatmaps'].shape == (K + 1, *hw)
    assert enc['displacements'].shape == (2 * K, *hw)
    assert enc['heatmaps'].max() == 0 and enc['displacements'].max() == 0
    assert enc['displacement_weights'].max() == 0
    np.testing.assert_array_equal(enc['heatmap_weights'], np.float32(bg))
    for v in enc.values():
        assert np.isfinite(v).all()


@pytest.mark.parametrize('case', ['outside', 'invisible', 'zero_area', 'crowd_only', 'empty',
                                  'nan'])
def test_bad_input_gives_background(case):
    K = 14
    codec = _codec(256)
    kpts = np.full((2, K, 2), 100.)
    vis = np.ones((2, K))
    area = np.array([5000., 6000.])
    kw = {}
    if case == 'outside':
        kpts[0] = -50.
        kpts[1] = 300.  # canvas is [0, 256)
    elif case == 'invisible':
        vis[:] = 0
    elif case == 'zero_area':
        area[:] = 0.
    elif case == 'crowd_only':  # MMPose keeps crowd instances with zero visibility
        vis[:] = 0
        kw = dict(bbox=np.array([[0, 0, 200, 200.]] * 2), iscrowd=np.array([1, 1]))
    elif case == 'empty':
        kpts, vis, area = np.zeros((0, K, 2)), np.zeros((0, K)), np.zeros((0,))
    elif case == 'nan':
        kpts[:] = np.nan
    enc = codec.encode(kpts, vis, area=area, **kw)
    if case == 'zero_area':  # keypoint heatmaps stay (spec §5.2), no centre, no offsets
        assert enc['heatmaps'][:K].max() > 0.99 and enc['heatmaps'][K].max() == 0
        assert enc['displacement_weights'].max() == 0 and np.isfinite(
            enc['displacement_weights']).all()
    else:
        _assert_background(enc, K)
    # decoding an all-background target keeps the best (score-0) slot only
    if case != 'zero_area':
        kp, (cs, ks) = codec.decode(enc['heatmaps'], enc['displacements'])
        assert kp.shape == (1, K, 2) and cs.tolist() == [0.0] and (ks == 0).all()


@pytest.mark.parametrize('kwargs, field', [
    (dict(input_size=(0, 512)), 'input_size'),
    (dict(input_size=(512,)), 'input_size'),
    (dict(heatmap_size=(128, -128)), 'heatmap_size'),
    (dict(heatmap_size=(128.5, 128)), 'heatmap_size'),
    (dict(sigma=0.), 'sigma'),
    (dict(sigma=[2., -1.]), 'sigma'),
    (dict(center_sigma=-4), 'center_sigma'),
    (dict(bg_weight=-0.1), 'bg_weight'),
    (dict(offset_radius=0), 'offset_radius'),
    (dict(topk=0), 'topk'),
    (dict(min_center_area=float('nan')), 'min_center_area'),
])
def test_constructor_errors_name_the_field(kwargs, field):
    args = dict(input_size=(512, 512), heatmap_size=(128, 128))
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        LogoCapCodec(**args)


def test_encode_errors_name_the_field():
    codec = _codec(256, sigma=[2.] * 17)
    with pytest.raises(ValueError, match='sigma'):
        codec.encode(np.zeros((1, 14, 2)), np.ones((1, 14)), area=np.ones(1))
    codec = _codec(256)
    with pytest.raises(ValueError, match='keypoints'):
        codec.encode(np.zeros((1, 14, 3)), np.ones((1, 14)))
    with pytest.raises(ValueError, match='keypoints_visible'):
        codec.encode(np.zeros((1, 14, 2)), np.ones((1, 13)))
    with pytest.raises(ValueError, match='area'):
        codec.encode(np.zeros((2, 14, 2)), np.ones((2, 14)), area=np.ones(3))
    with pytest.raises(ValueError, match='displacements'):
        codec.decode(np.zeros((15, 8, 8), np.float32), np.zeros((26, 8, 8), np.float32))
    # a per-keypoint sigma list of the right length works
    enc = _codec(256, sigma=[1.] * 13 + [3.]).encode(
        np.full((1, 14, 2), 100.), np.ones((1, 14)), area=np.array([5000.]))
    assert (enc['heatmaps'][0] > 0).sum() < (enc['heatmaps'][13] > 0).sum()


# --------------------------------------------------------------------------- decode helpers
def test_find_centers_threshold_rules():
    m = torch.zeros(2, 16, 16)
    m[0, 3, 5] = 0.5
    m[0, 10, 12] = 0.2
    m[0, 10, 13] = 0.1  # not a peak (neighbour 0.2)
    m[1, 7, 7] = 0.005  # below 0.01: kept as the only (first) centre
    c, s, v = find_centers(m, topk=4, thr=0.01)
    assert c.dtype == torch.long and c.shape == (2, 4, 2)
    assert c[0, :2].tolist() == [[5, 3], [12, 10]] and v[0].tolist() == [True, True, False, False]
    assert s[0, :2].tolist() == pytest.approx([0.5, 0.2])
    assert c[1, 0].tolist() == [7, 7] and v[1].tolist() == [True, False, False, False]
    _, _, v_all = find_centers(m, topk=4, thr=None)
    assert v_all.all()
    mneg = -torch.ones(1, 4, 4)  # negative maps have no peaks: all scores 0
    _, s, v = find_centers(mneg, topk=3)
    assert (s == 0).all() and v.tolist() == [[True, False, False]]


def test_centre_offset_poses_known_answer():
    K, h, w = 3, 8, 10
    off = torch.zeros(1, 2 * K, h, w)
    off[0, :, 2, 5] = torch.tensor([1., -2., 0.5, 0.25, -3., 4.])
    centers = torch.tensor([[[23, 11], [0, 0]]])  # floor(c/4) = (5, 2)
    P0 = centre_offset_poses(centers, off, stride=4)
    assert P0.shape == (1, 2, K, 2)
    expect = torch.tensor([[23 - 4, 11 + 8], [23 - 2, 11 - 1], [23 + 12, 11 - 16]]).float()
    assert torch.equal(P0[0, 0], expect)
    assert torch.equal(P0[0, 1], torch.zeros(K, 2))


def test_sample_heatmaps_reference_border_rule():
    hm = torch.arange(20.).reshape(1, 1, 4, 5) + 1
    pts = torch.tensor([[[[1.5, 2.0]], [[-3., 1.]], [[4.0, 1.0]], [[4.5, 1.0]], [[7., 1.]]]])
    v = sample_heatmaps_at_poses(hm, pts)[0, :, 0]
    assert v[0] == pytest.approx(12.5)  # interior bilinear
    assert v[1] == pytest.approx(6.0)  # left clamp
    assert v[2] == 0  # exactly W-1 -> 0 (reference quirk)
    assert v[3] == pytest.approx(0.5 * 10)  # ramp in (W-1, W)
    assert v[4] == pytest.approx(10.)  # beyond: border value


def test_decode_numpy_torch_batched_agree():
    codec = _codec(256)
    # centres (17.625, 19.375) and (47.625, 40.125) F: no exact half-pixel ties (a tie makes
    # a flat top, and the reference NMS keeps every pixel of a plateau)
    kp = np.array([[[61., 64.], [80., 91.]], [[181., 150.], [200., 171.]]])
    enc = codec.encode(kp, np.ones((2, 2)), area=np.array([5000., 4000.]))
    out_np = codec.decode(enc['heatmaps'], enc['displacements'])
    out_t = codec.decode(torch.from_numpy(enc['heatmaps']), torch.from_numpy(enc['displacements']))
    out_b = codec.decode(torch.from_numpy(np.stack([enc['heatmaps']] * 2)),
                         torch.from_numpy(np.stack([enc['displacements']] * 2)))
    assert isinstance(out_np[0], np.ndarray) and isinstance(out_t[0], torch.Tensor)
    assert len(out_b) == 2
    np.testing.assert_allclose(out_np[0], out_t[0].numpy())
    np.testing.assert_allclose(out_b[1][0].numpy(), out_t[0].numpy())
    assert out_np[0].shape == (2, 2, 2) and out_np[1][1].shape == (2, 2)
    # keypoint scores = heatmap value at P0 times centre score, all close to 1 here
    assert (out_np[1][1] > 0.8).all()


def test_registry_and_tables():
    from mmpose.registry import KEYPOINT_CODECS
    codec = KEYPOINT_CODECS.build(dict(type='LogoCapCodec', input_size=(512, 512),
                                       heatmap_size=(128, 128)))
    assert isinstance(codec, LogoCapCodec)
    assert codec.field_mapping_table['heatmap_mask'] == 'heatmap_mask'
    assert {'keypoints', 'keypoints_visible', 'bbox', 'bbox_score', 'area'} <= set(
        codec.instance_mapping_table)
    assert {'area', 'warp_mat'} <= codec.auxiliary_encode_keys


# --------------------------------------------------------------------------- parity
def test_parity_find_centers_and_P0(fixture_image, require):
    """Every per-image file with maps: centres, P0 and the codec's decode ('none' level)."""
    f, _ = fixture_image
    require(f, ('input_size_hw', 'heatmaps', 'offsets', 'centers_top30', 'center_keep',
                'centers', 'P0', 'P0_top30', 'refined_none'), 'codec centre-offset decode')
    z = np.load(f)
    H, W = (int(v) for v in z['input_size_hw'])
    hm = torch.from_numpy(z['heatmaps'])[None]
    off = torch.from_numpy(z['offsets'])[None]
    K = hm.shape[1] - 1                        # channel K is the centre
    ref = z['centers_top30']
    up = upsample_heatmaps(hm, (H, W))
    c, s, v = find_centers(up[:, K], topk=len(ref), thr=0.01)
    np.testing.assert_array_equal(v[0].numpy(), z['center_keep'])
    np.testing.assert_allclose(s[0].numpy(), ref[:, 2], atol=1e-5)
    # kept centres: exact coordinates; equal-score ties compare as sets (README §7.3)
    keep = z['center_keep']
    ours = [tuple(p) for p in c[0].numpy()[keep]]
    theirs = [tuple(p) for p in ref[keep, :2].astype(np.int64)]
    sc = ref[keep, 2]
    for val in np.unique(sc):
        grp = sc == val
        assert sorted(np.array(ours)[grp].tolist()) == sorted(np.array(theirs)[grp].tolist())
    # P0 of the kept centres (README: atol 1e-3 px), from the reference's own centres
    P0_ref_c = centre_offset_poses(torch.from_numpy(ref[None, keep, :2]), off)
    np.testing.assert_allclose(P0_ref_c[0].numpy(), z['P0'], atol=1e-3)
    P0 = centre_offset_poses(c, off)[0].numpy()
    pos_ok = ref[:, 2] > 0  # zero-score fillers have meaningless coordinates
    same = (c[0].numpy() == ref[:, :2]).all(1) & pos_ok
    np.testing.assert_allclose(P0[same], z['P0_top30'][same], atol=1e-3)
    # the codec's decode = the reference 'none' level (P0, Hr(P0) * s_c)
    kp, (cs, ks) = LogoCapCodec((W, H), (W // 4, H // 4)).decode(z['heatmaps'], z['offsets'])
    order = np.lexsort((kp[:, 0, 1], kp[:, 0, 0], -cs))
    rorder = np.lexsort((z['P0'][:, 0, 1], z['P0'][:, 0, 0], -z['centers'][:, 2]))
    np.testing.assert_allclose(kp[order], z['P0'][rorder], atol=1e-3)
    np.testing.assert_allclose(cs[order], z['centers'][rorder, 2], atol=1e-5)
    np.testing.assert_allclose(
        ks[order], (z['refined_none'][..., 2] * z['centers'][:, 2:3])[rorder], atol=1e-5)


def test_parity_encode_train_forward(fixture_file):
    """Reference targets from its F-space joints: feed I = 4 * F and compare.

    The reference encodes F joints (already flipped in F for sample 1), so feeding 4x those
    joints removes the flip convention difference; area_I and the stored O->I affine give the
    O-area for the 32**2 rule. Tolerance: the joints are stored in float32 while the reference
    encoded float64 values, so offsets (|x| <= 32) agree to 1 float32 ulp (~2e-6).
    """
    z = np.load(fixture_file('train_forward.npz', 'codec training targets'))
    H, W = z['input_uint8_hwc'].shape[1:3]
    K, h, w = (int(v) for v in z['target_heatmaps_t'].shape[1:])
    K -= 1                                         # the last channel is the centre
    codec = LogoCapCodec((W, H), (w, h))
    for b in range(len(z['hflip'])):
        j = z[f'joints_F_{b}'].astype(np.float64)
        area_i = z[f'areas_I_{b}'][:, 0]
        enc = codec.encode(W / w * j[:, :K, :2], j[:, :K, 2], area=area_i,
                           warp_mat=z['affine_O2I'][b])
        np.testing.assert_allclose(enc['heatmaps'], z['target_heatmaps_t'][b], atol=1e-6)
        np.testing.assert_allclose(enc['displacements'], z['target_offsets_t'][b], atol=4e-6)
        np.testing.assert_allclose(enc['displacement_weights'], z['target_offsets_w'][b],
                                   rtol=1e-6, atol=1e-9)
        ref_w = z['target_heatmaps_w'][b, 0]
        mask = ref_w > 0  # the reference weight already includes the ignore mask (zeros)
        np.testing.assert_array_equal(enc['heatmap_weights'][0][mask], ref_w[mask])
        # centre validity (joint 17 visibility) equals our O-area rule
        has_centre = enc['heatmaps'][K].max() > 0
        assert has_centre == bool(j[:, K, 2].any())


# --------------------------------------------------------------------------- round trip
def _dataset(cls_name, folder, ann, data_root):
    import mmpose.datasets as mds
    from mmengine.registry import init_default_scope
    init_default_scope('mmpose')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return getattr(mds, cls_name)(
            data_root=osp.join(data_root, folder), ann_file=ann, data_prefix=dict(img=''),
            data_mode='bottomup', pipeline=[], test_mode=False)


def _expected_people(kpts_i, vis, area_o, size_wh):
    """Independent centre rule: visible mean, O-area >= 32**2, centre inside the canvas."""
    v = vis > 0
    c = (kpts_i * v[..., None]).sum(1) / np.maximum(v.sum(1), 1)[:, None]
    W, H = size_wh
    ok = (v.sum(1) > 0) & (area_o >= 32**2) & (c[:, 0] >= 0) & (c[:, 1] >= 0) & \
        (c[:, 0] < W) & (c[:, 1] < H)
    return c, ok


def _check_round_trip(codec, enc, kpts_i, vis, area_i, area_o, size_wh, stats):
    """Decode the clean targets and compare with the ground truth.

    Bound: a centre c (I) becomes a Gaussian peak at F pixel i = round(c/4); bilinear x4
    upsampling (align_corners=False) puts its maximum at I pixel c' in {4i+1, 4i+2}, so
    |c' - c| <= 4 per axis. The decoder reads the offset at cell floor(c'/4) = i, which holds
    (i - k/4), hence P0 = c' - 4 (i - k/4) = k + (c' mod 4): every keypoint comes back
    shifted by exactly (c' mod 4) in [0, stride-1] = [0, 3] I px per axis (1 or 2 here).
    """
    W, H = size_wh
    kp, (cs, ks) = codec.decode(torch.from_numpy(enc['heatmaps'][None]),
                                torch.from_numpy(enc['displacements'][None]))[0]
    kp = kp.numpy()
    up = upsample_heatmaps(torch.from_numpy(enc['heatmaps'][None]), (H, W))
    cen, _, valid = find_centers(up[:, -1], codec.topk, codec.center_thr)
    cen = cen[0][valid[0]].numpy().astype(np.float64)
    assert len(cen) == len(kp)
    c, ok = _expected_people(kpts_i, vis, area_o, size_wh)
    used = np.zeros(len(cen), bool)
    for n in np.nonzero(ok)[0]:
        dist = np.abs(cen - c[n]).max(1)
        m = int(np.argmin(np.where(used, np.inf, dist)))
        assert dist[m] <= 4.0, f'person {n}: centre {c[n]} decoded at {cen[m]}'
        used[m] = True
        shift = np.mod(cen[m], STRIDE)
        assert ((shift >= 1) & (shift <= 2)).all()
        for k in np.nonzero(vis[n] > 0)[0]:
            kf = kpts_i[n, k] / STRIDE
            if not (0 <= kf[0] < W / STRIDE and 0 <= kf[1] < H / STRIDE):
                continue  # outside the canvas: no target
            cell = (cen[m] // STRIDE).astype(int)
            owner_w = enc['displacement_weights'][2 * k, cell[1], cell[0]]
            if not np.isclose(owner_w, 1 / np.sqrt(area_i[n]), rtol=1e-5):
                # a smaller person's square covers this centre cell for keypoint k
                assert owner_w > 1 / np.sqrt(area_i[n])
                stats['overruled'] += 1
                continue
            err = kp[m, k] - kpts_i[n, k]
            np.testing.assert_allclose(err, shift, atol=2e-3)
            assert np.abs(err).max() <= STRIDE - 1 + 2e-3
            stats['keypoints'] += 1
    stats['people'] += int(ok.sum())
    # no extra people, except the reference NMS's duplicated-border artefact (README §7.3):
    # the two outermost I rows/columns of the x4 upsampled map are equal, so a Gaussian tail
    # reaching the border makes a spurious peak on the outermost row/column.
    extra = cen[~used]
    on_border = (extra[:, 0] == 0) | (extra[:, 0] == W - 1) | \
        (extra[:, 1] == 0) | (extra[:, 1] == H - 1)
    assert on_border.all(), f'extra interior centres {extra[~on_border]}'
    stats['border_extra'] += len(extra)


@pytest.mark.parametrize('cls_name, folder, ann, K', DATASETS)
def test_round_trip_train_pipeline(cls_name, folder, ann, K, data_root):
    from mmengine.dataset import Compose
    ds = _dataset(cls_name, folder, ann, data_root)
    S = 512
    codec_cfg = dict(type='LogoCapCodec', input_size=(S, S), heatmap_size=(S // 4, S // 4))
    pipe = Compose([dict(type='LoadImage'),
                    dict(type='BottomupRandomAffine', input_size=(S, S)),
                    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                    dict(type='GenerateTarget', encoder=codec_cfg),
                    dict(type='BottomupGetHeatmapMask')])
    pack = Compose([dict(type='PackPoseInputs')])
    codec = LogoCapCodec((S, S), (S // 4, S // 4))
    stats = dict(people=0, keypoints=0, overruled=0, border_extra=0, flips=0)
    for i in range(len(ds)):
        for seed in range(3):
            np.random.seed(1000 * i + seed)
            info = ds.get_data_info(i)
            area_o = np.asarray(info['area'], np.float64).copy()  # before the affine
            r = pipe(info)
            assert r['keypoints'].shape[1] == K and r['heatmaps'].shape == (K + 1, S // 4, S // 4)
            stats['flips'] += int(r['flip'])
            enc = {k: r[k] for k in ('heatmaps', 'heatmap_weights', 'displacements',
                                     'displacement_weights')}
            assert set(np.unique(enc['heatmap_weights']).tolist()) <= {np.float32(.1), 1.}
            _check_round_trip(codec, enc, r['keypoints'], r['keypoints_visible'],
                              np.asarray(r['area'], np.float64), area_o, (S, S), stats)
            packed = pack(r)['data_samples']
            assert 'heatmap_mask' in packed.gt_fields
            assert packed.gt_fields.heatmaps.shape == (K + 1, S // 4, S // 4)
            for key in ('keypoints', 'keypoints_visible', 'areas', 'bboxes', 'bbox_scores'):
                assert key in packed.gt_instances
    print(cls_name, stats)
    assert stats['people'] >= len(ds) and stats['keypoints'] > 10 * len(ds)
    assert 0 < stats['flips'] < 3 * len(ds)
    assert stats['overruled'] <= 0.1 * stats['keypoints']


@pytest.mark.parametrize('cls_name, folder, ann, K', DATASETS)
def test_round_trip_test_pipeline(cls_name, folder, ann, K, data_root):
    """BottomupResize(expand, 64) does not move keypoints: map them with its affine."""
    from mmengine.dataset import Compose
    from mmpose.structures.bbox import get_warp_matrix
    ds = _dataset(cls_name, folder, ann, data_root)
    pipe = Compose([dict(type='LoadImage'),
                    dict(type='BottomupResize', input_size=(512, 512), size_factor=64,
                         resize_mode='expand')])
    stats = dict(people=0, keypoints=0, overruled=0, border_extra=0)
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        area_o = np.asarray(info['area'], np.float64).copy()
        r = pipe(info)
        W, H = r['input_size']
        assert W % 64 == 0 and H % 64 == 0 and min(W, H) == 512
        warp = get_warp_matrix(r['input_center'], r['input_scale'], 0, output_size=(W, H))
        k = info['keypoints']
        kpts_i = k @ warp[:, :2].T + warp[:, 2]
        area_i = area_o * abs(np.linalg.det(warp[:, :2]))
        codec = LogoCapCodec((W, H), (W // 4, H // 4))
        enc = codec.encode(kpts_i, info['keypoints_visible'], area=area_i, warp_mat=warp,
                           bbox=info['bbox'], iscrowd=info['iscrowd'])
        _check_round_trip(codec, enc, kpts_i, info['keypoints_visible'], area_i, area_o,
                          (W, H), stats)
    print(cls_name, stats)
    assert stats['people'] >= len(ds) and stats['keypoints'] > 10 * len(ds)
