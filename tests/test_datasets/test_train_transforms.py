"""Training transforms: crowd/no-keypoint masks (LogoCapGetHeatmapMask) and the reference's
augmentation draws (LogoCapRandomAffine), checked with known pixel counts and against the
reference's formulas on fixed random draws."""
import json

import numpy as np
import pytest
import xtcocotools.mask as cocomask

import logocap_mm  # noqa: F401  (registers the transforms)
from logocap_mm.datasets import (LogoCapGetHeatmapMask, LogoCapRandomAffine,
                                 reference_affine_draws, segmentation_to_mask)


def _rle_uncompressed(mask):
    """Column-major run lengths, starting with a 0-run (the COCO crowd format)."""
    flat = mask.flatten(order='F').astype(np.int64)
    counts, cur, run = [], 0, 0
    for v in flat:
        if v == cur:
            run += 1
        else:
            counts.append(run)
            cur, run = v, 1
    counts.append(run)
    return dict(size=list(mask.shape), counts=counts)


def _block(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


SQUARE = [[10., 10., 40., 10., 40., 40., 10., 40.]]  # a 30 x 30 polygon (O px)


def test_segmentation_to_mask_known_counts():
    m = _block(40, 50, 5, 15, 10, 30)  # 200 px
    assert segmentation_to_mask(_rle_uncompressed(m), (40, 50)).sum() == 200
    assert (segmentation_to_mask(_rle_uncompressed(m), (40, 50)) == m).all()
    comp = cocomask.encode(np.asfortranarray(m))
    assert isinstance(comp['counts'], bytes)
    assert (segmentation_to_mask(comp, (40, 50)) == m).all()
    comp_str = dict(size=comp['size'], counts=comp['counts'].decode('ascii'))
    assert (segmentation_to_mask(comp_str, (40, 50)) == m).all()
    assert segmentation_to_mask(SQUARE, (64, 64)).sum() == 900
    assert segmentation_to_mask([], (8, 8)).sum() == 0


def test_segmentation_to_mask_errors():
    with pytest.raises(ValueError, match='does not match the image'):
        segmentation_to_mask(dict(size=[10, 10], counts=[100]), (10, 12))
    with pytest.raises(ValueError, match="'size' and 'counts'"):
        segmentation_to_mask(dict(counts=[4]), (2, 2))
    with pytest.raises(ValueError, match='list of polygons or an RLE dict'):
        segmentation_to_mask(3.0, (2, 2))


def test_mask_crowd_rle_vs_mmpose():
    """A crowd RLE masks its pixels (MMPose's transform masks none); a polygon masks the same
    900 pixels in both."""
    from mmpose.datasets.transforms import BottomupGetHeatmapMask
    crowd = _block(64, 80, 2, 12, 50, 70)  # 200 px
    res = dict(img_shape=(64, 80), input_size=(80, 64),
               invalid_segs=[_rle_uncompressed(crowd), SQUARE])
    ours = LogoCapGetHeatmapMask()(dict(res))['heatmap_mask']
    theirs = BottomupGetHeatmapMask()(dict(res))['heatmap_mask']
    assert ours.shape == (64, 80) and ours.dtype == bool
    assert (~ours).sum() == 1100
    assert (~theirs).sum() == 900  # the RLE was skipped
    assert not ours[crowd.astype(bool)].any()
    res_c = dict(res, invalid_segs=[cocomask.encode(np.asfortranarray(crowd))])
    assert (~LogoCapGetHeatmapMask()(res_c)['heatmap_mask']).sum() == 200


def test_mask_warp_flip_and_heatmap_size():
    """Warp (x 0.5 into a 40 x 32 canvas), flip and resize to the 10 x 8 heatmap: a 16 x 16
    O-px crowd block at the top left ends as 2 x 2 masked F px at the top right."""
    crowd = _block(64, 80, 0, 16, 0, 16)
    warp = np.array([[0.5, 0., 0.], [0., 0.5, 0.]], np.float32)
    res = dict(img_shape=(64, 80), input_size=(40, 32), warp_mat=warp,
               invalid_segs=[_rle_uncompressed(crowd)], flip=True,
               flip_direction='horizontal', heatmaps=np.zeros((18, 8, 10), np.float32))
    hm = LogoCapGetHeatmapMask()(res)['heatmap_mask']
    assert hm.shape == (8, 10)
    expect = np.ones((8, 10), bool)
    expect[:2, -2:] = False
    assert (hm == expect).all()


def test_mask_from_dataset_crowd_and_no_keypoint_people(tmp_path):
    """Through MMPose's bottom-up CocoDataset: the crowd RLE and the polygon of a person
    without keypoints are masked, the labelled person is not (the reference's rule)."""
    from mmpose.datasets import CocoDataset
    h, w = 64, 96
    crowd = _block(h, w, 40, 60, 60, 90)  # 600 px
    kps = [0.] * 51
    kps[0:3] = [50., 20., 2]
    kps[15:18] = [52., 30., 2]
    anns = [
        dict(id=1, image_id=1, category_id=1, iscrowd=0, num_keypoints=2, keypoints=kps,
             area=240., bbox=[45., 15., 12., 20.],
             segmentation=[[45., 15., 57., 15., 57., 35., 45., 35.]]),
        dict(id=2, image_id=1, category_id=1, iscrowd=1, num_keypoints=0, keypoints=[0] * 51,
             area=600., bbox=[60., 40., 30., 20.], segmentation=_rle_uncompressed(crowd)),
        dict(id=3, image_id=1, category_id=1, iscrowd=0, num_keypoints=0, keypoints=[0] * 51,
             area=900., bbox=[10., 10., 30., 30.], segmentation=SQUARE),
    ]
    coco = dict(images=[dict(id=1, file_name='a.jpg', width=w, height=h)], annotations=anns,
                categories=[dict(id=1, name='person')])
    ann_file = tmp_path / 'ann.json'
    ann_file.write_text(json.dumps(coco))
    ds = CocoDataset(ann_file=str(ann_file), data_root='', data_mode='bottomup',
                     data_prefix=dict(img=str(tmp_path)), pipeline=[], lazy_init=False)
    info = ds.get_data_info(0)
    assert len(info['invalid_segs']) == 2
    res = dict(img_shape=(h, w), input_size=(w, h), invalid_segs=info['invalid_segs'])
    mask = LogoCapGetHeatmapMask()(res)['heatmap_mask']
    ref_ignore = (crowd + segmentation_to_mask(SQUARE, (h, w))) > 0  # the reference's m >= 0.5
    assert (mask == ~ref_ignore).all()
    assert (~mask).sum() == 1500
    assert mask[15:35, 45:57].all()  # the labelled person is not masked


def _reference_matrix(img_wh, res, s, rot, dx, dy):
    """The reference's O -> I training affine (HigherHRNet form, scale in 200-px units)."""
    img_w, img_h = img_wh
    scale = min(img_w, img_h) / 200. * s
    c = np.array([img_w / 2. + dx, img_h / 2. + dy])
    hgt = 200. * scale
    t = np.array([[res / hgt, 0., res * (-c[0] / hgt + .5)],
                  [0., res / hgt, res * (-c[1] / hgt + .5)], [0., 0., 1.]])
    r = np.deg2rad(-rot)
    rot_m = np.array([[np.cos(r), -np.sin(r), 0.], [np.sin(r), np.cos(r), 0.], [0., 0., 1.]])
    t_mat = np.eye(3)
    t_mat[:2, 2] = -res / 2.
    t_inv = np.eye(3)
    t_inv[:2, 2] = res / 2.
    return (t_inv @ rot_m @ t_mat @ t)[:2]


@pytest.mark.parametrize('img_wh', [(320, 256), (256, 320), (640, 427)])
def test_random_affine_matches_reference_draws(img_wh):
    """On fixed seeds, the warp equals the reference's matrix built from the reference's draws
    (scale U(0.75, 1.5), rotation U(-30, 30), integer shifts randint(-0.2 side, 0.2 side))."""
    res = 128
    t = LogoCapRandomAffine(input_size=(res, res), shift_factor=0.2, scale_factor=(0.75, 1.5),
                            rotate_factor=30.)
    img_w, img_h = img_wh
    kp = np.array([[[10., 20.], [img_w - 5., img_h / 2.], [img_w / 2., 3.]]], np.float32)
    for seed in range(12):
        np.random.seed(seed)
        out = t(dict(img=np.zeros((img_h, img_w, 3), np.uint8), img_shape=(img_h, img_w),
                     keypoints=kp.copy(), keypoints_visible=np.ones((1, 3), np.float32)))
        # the reference's sampling, written out on the same stream
        np.random.seed(seed)
        s = np.random.random() * (1.5 - 0.75) + 0.75
        rot = (np.random.random() * 2 - 1) * 30.
        scale = min(img_w, img_h) / 200. * s
        dx = np.random.randint(-40 * scale, 40 * scale)
        dy = np.random.randint(-40 * scale, 40 * scale)
        ref = _reference_matrix(img_wh, res, s, rot, dx, dy)
        np.testing.assert_allclose(out['warp_mat'], ref, atol=2e-5, rtol=0)
        ref_kp = np.concatenate([kp[0], np.ones((3, 1))], 1) @ ref.T
        np.testing.assert_allclose(out['keypoints'][0], ref_kp, atol=2e-3, rtol=0)
        assert out['img'].shape == (res, res, 3)
        np.random.seed(seed)
        assert reference_affine_draws(min(img_wh), (0.75, 1.5), 30., 0.2) == (
            pytest.approx(s, abs=0), pytest.approx(rot, abs=0), (dx, dy))


def test_random_affine_draw_ranges():
    """Uniform draws over the reference's ranges: integer shifts inside
    [trunc(-0.2 side), trunc(0.2 side)), scale in [0.75, 1.5), rotation in [-30, 30)."""
    np.random.seed(0)
    draws = [reference_affine_draws(256, (0.75, 1.5), 30., 0.2) for _ in range(3000)]
    s = np.array([d[0] for d in draws])
    rot = np.array([d[1] for d in draws])
    shifts = np.array([d[2] for d in draws])
    side = 256 * s
    assert ((s >= 0.75) & (s < 1.5)).all() and ((rot >= -30) & (rot < 30)).all()
    assert (shifts >= np.trunc(-0.2 * side)[:, None]).all()
    assert (shifts < np.trunc(0.2 * side)[:, None]).all()
    # uniform, not a truncated normal: a quarter of the draws in each quarter of the range
    q = np.histogram(s, bins=4, range=(0.75, 1.5))[0] / len(s)
    assert np.abs(q - 0.25).max() < 0.03
    assert np.abs(np.mean(np.abs(rot)) - 15.) < 0.6  # E|U(-30, 30)| = 15


def test_random_affine_rejects_settings_it_cannot_follow():
    with pytest.raises(ValueError, match='square input_size'):
        LogoCapRandomAffine(input_size=(128, 96))
    with pytest.raises(ValueError, match="transform_mode='affine'"):
        LogoCapRandomAffine(input_size=(64, 64), transform_mode='perspective')
    with pytest.raises(ValueError, match='shift_prob must be 1'):
        LogoCapRandomAffine(input_size=(64, 64), shift_prob=0.5)
    with pytest.raises(ValueError, match="distribution='uniform'"):
        LogoCapRandomAffine(input_size=(64, 64), distribution='trunc_norm')
    with pytest.raises(ValueError, match='scale_factor'):
        LogoCapRandomAffine(input_size=(64, 64), scale_factor=(1.5, 0.75))
