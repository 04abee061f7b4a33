"""Annotation files checked before their segmentations reach the COCO mask C code:
crafted RLEs / polygons (which crash, hang or give uninitialised masks there), NaN / inf
values, odd annotations (one warning with a count) and the people-per-image cap."""
import json
import os.path as osp
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import xtcocotools.mask as cocomask

from logocap_mm.datasets.annotation_checks import check_segmentation, rle_string_counts

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
H, W = 425, 640

# (segmentation, words of the expected message): each one crashes, hangs or reads
# uninitialised memory inside the COCO mask code if it gets there
BAD_SEGS = {
    'huge_run': (dict(size=[H, W], counts=[0, 50000000]), 'more than the 425 x 640'),
    'negative_run': (dict(size=[H, W], counts=[0, -5, H * W + 5]), 'negative run length'),
    'short_runs': (dict(size=[H, W], counts=[0, 100]), 'add up to 100 pixels'),
    'float_runs': (dict(size=[H, W], counts=[0.5, H * W - 0.5]), 'must be integers'),
    'str_runs': (dict(size=[H, W], counts=['a', 'b']), 'must be integers'),
    'cut_string': (dict(size=[4, 4], counts='0`'), 'ends inside a value'),
    'long_value': (dict(size=[4, 4], counts='0oooooo7'), 'characters (at most 6)'),
    'bad_char': (dict(size=[4, 4], counts='0\x7f'), 'outside "0".."o"'),
    'string_short': (dict(size=[4, 4], counts='02'), 'add up to 2 pixels'),
    'odd_polygon': ([[10., 10., 40., 10., 40., 40., 10.]], 'odd number of coordinates'),
    'nan_polygon': ([[0., 0., float('nan'), 5., 10., 10.]], 'NaN or infinite'),
    'far_polygon': ([[0., 0., 1e12, 5., 10., 1e12]], 'more than one image size outside'),
    'long_polygon': ([[0., 0., 600., 0.] * 20000], 'more than 100 x (h + w)'),
}


def _shape(seg):
    return tuple(seg['size']) if isinstance(seg, dict) else (H, W)


@pytest.mark.parametrize('name', sorted(BAD_SEGS))
def test_check_segmentation_refuses(name):
    seg, words = BAD_SEGS[name]
    with pytest.raises(ValueError, match=re.escape(words)):
        check_segmentation(seg, _shape(seg))


def test_check_segmentation_accepts_valid_and_reads_compressed_strings():
    """Our reader of compressed strings gives COCO's run lengths (random masks, both signs of
    the delta coding, runs of up to 30 bits)."""
    rng = np.random.default_rng(0)
    for h, w in ((4, 4), (37, 53), (425, 640)):
        m = (rng.random((h, w)) < rng.uniform(0.05, 0.95)).astype(np.uint8)
        m[: h // 2] = 0  # long runs as well
        comp = cocomask.encode(np.asfortranarray(m))
        runs = rle_string_counts(comp['counts'], (h, w))
        flat = m.flatten(order='F')
        np.testing.assert_array_equal(np.repeat(np.arange(len(runs)) % 2, runs), flat)
        check_segmentation(dict(size=[h, w], counts=comp['counts'].decode()), (h, w))
        check_segmentation(dict(size=[h, w], counts=runs.tolist()), (h, w))
    # a single 2**24-pixel run (6 characters) and the empty segmentations
    big = cocomask.encode(np.asfortranarray(np.zeros((2 ** 12, 2 ** 12), np.uint8)))
    assert len(big['counts']) == 6
    assert rle_string_counts(big['counts'], (2 ** 12, 2 ** 12)).tolist() == [2 ** 24]
    check_segmentation([], (H, W))
    check_segmentation(None, (H, W))
    check_segmentation([[1., 2., 3., 4.]], (H, W))  # 2 points: nothing, ignored


def test_crafted_segmentations_refused_before_the_mask_code():
    """LogoCapGetHeatmapMask refuses every crafted segmentation with a ValueError naming the
    image (in a child process: before the checks, several of them killed it with SIGSEGV or
    hung in the C code)."""
    code = textwrap.dedent(f'''
        import json, sys, warnings
        warnings.simplefilter('ignore')
        from logocap_mm.datasets import LogoCapGetHeatmapMask
        cases = json.loads(sys.stdin.read())
        for name, seg in cases.items():
            h, w = seg['size'] if isinstance(seg, dict) else ({H}, {W})
            res = dict(img_shape=(h, w), input_size=(w, h), invalid_segs=[[], seg],
                       img_id=7, img_path='x.jpg')
            try:
                LogoCapGetHeatmapMask()(res)
                print(name, 'ACCEPTED', flush=True)
            except ValueError as e:
                print(name, 'refused:', e, flush=True)
        ''')
    cases = json.dumps({k: v[0] for k, v in BAD_SEGS.items()})
    env = dict(PYTHONPATH=ROOT, PATH='/usr/bin:/bin')
    try:
        p = subprocess.run([sys.executable, '-c', code], input=cases, capture_output=True,
                           text=True, timeout=120, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail('the mask transform hung on a crafted segmentation')
    assert p.returncode == 0, f'child died with status {p.returncode}:\n{p.stdout}{p.stderr}'
    lines = p.stdout.strip().splitlines()
    assert len(lines) == len(BAD_SEGS), p.stdout
    for line in lines:
        name = line.split()[0]
        assert 'refused: LogoCapGetHeatmapMask: image 7 (x.jpg): invalid_segs[1]: ' in line, line
        assert BAD_SEGS[name][1] in line, line


# ------------------------------------------------------------------------ annotation files
def _person(aid, img_id=1, **kw):
    kps = [0.] * 51
    kps[0:3] = [50., 20., 2]
    kps[15:18] = [52., 30., 2]
    ann = dict(id=aid, image_id=img_id, category_id=1, iscrowd=0, num_keypoints=2,
               keypoints=kps, area=240., bbox=[45., 15., 12., 20.],
               segmentation=[[45., 15., 57., 15., 57., 35., 45., 35.]])
    ann.update(kw)
    return ann


def _write(tmp_path, anns, name='ann.json', n_images=1):
    coco = dict(images=[dict(id=i + 1, file_name=f'{i}.jpg', width=W, height=H)
                        for i in range(n_images)],
                annotations=anns, categories=[dict(id=1, name='person')])
    # json writes NaN / Infinity literals, as a crafted file may hold them
    (tmp_path / name).write_text(json.dumps(coco))
    return name


def _build(tmp_path, name, test_mode=False, **kw):
    import logocap_mm  # noqa: F401
    from mmengine.registry import init_default_scope
    from mmpose.registry import DATASETS
    init_default_scope('mmpose')
    return DATASETS.build(dict(type='LogoCapCocoDataset', data_root=str(tmp_path),
                               ann_file=name, data_prefix=dict(img=''), data_mode='bottomup',
                               pipeline=[], test_mode=test_mode, **kw))


@pytest.mark.parametrize('name', sorted(BAD_SEGS))
def test_dataset_refuses_crafted_segmentation_naming_file_image_and_annotation(name, tmp_path):
    seg, words = BAD_SEGS[name]
    if isinstance(seg, dict) and seg['size'] != [H, W]:
        seg = dict(seg, size=[H, W])
        words = ''  # same fault, other numbers
    crowd = _person(12, img_id=3, iscrowd=1, num_keypoints=0, keypoints=[0] * 51,
                    segmentation=seg)
    ann = _write(tmp_path, [_person(11, img_id=3), crowd], n_images=3)
    with pytest.raises(ValueError) as e:
        _build(tmp_path, ann)
    msg = str(e.value)
    assert msg.startswith('LogoCapCocoDataset: annotation file ')
    assert 'ann.json: annotation id 12 (image 3): bad "segmentation": ' in msg
    assert words in msg
    # test mode (evaluation) does not rasterise masks: the file loads
    assert len(_build(tmp_path, ann, test_mode=True)) == 3


@pytest.mark.parametrize('field,value', [
    ('keypoints', [float('nan')] + [0.] * 50),
    ('keypoints', [float('inf')] * 51),
    ('bbox', [45., 15., float('nan'), 20.]),
    ('bbox', [45., 15., 12.]),
    ('area', float('inf')),
])
@pytest.mark.parametrize('test_mode', [False, True])
def test_dataset_refuses_non_finite_values(field, value, test_mode, tmp_path):
    ann = _write(tmp_path, [_person(1), _person(5, **{field: value})])
    with pytest.raises(ValueError, match=rf'ann\.json: annotation id 5 \(image 1\): "{field}"'):
        _build(tmp_path, ann, test_mode=test_mode)


def test_odd_annotations_warn_once_with_a_count(tmp_path):
    anns = [_person(1), _person(2, num_keypoints=0), _person(3, num_keypoints=0),
            _person(4, bbox=[45., 15., 0., 20.]),
            _person(5, num_keypoints=0, keypoints=[0] * 51)]  # unlabelled: normal
    ann = _write(tmp_path, anns)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter('always')
        ds = _build(tmp_path, ann)
    msgs = [str(r.message) for r in rec if 'LogoCapCocoDataset' in str(r.message)]
    assert len(msgs) == 2, msgs
    assert '2 annotation(s) have "num_keypoints": 0 but labelled keypoints (e.g. annotation ' \
           'id 2)' in msgs[0]
    assert '1 labelled person(s) have a box of zero width or height' in msgs[1]
    # kept, with MMPose's masking rule: 2, 3, 4 and 5 are masked regions
    assert len(ds) == 1
    assert len(ds.get_data_info(0)['invalid_segs']) == 4


def test_people_per_image_cap(tmp_path):
    """More person annotations on one training image than max_people_per_image: refused
    naming the image and the count (default 500)."""
    anns = [_person(i + 1, img_id=2) for i in range(501)] + [_person(900, img_id=1)]
    ann = _write(tmp_path, anns, n_images=2)
    with pytest.raises(ValueError, match=r'ann\.json: image 2 has 501 person annotations, '
                       r'more than max_people_per_image=500 \(1 image\(s\) above it\)'):
        _build(tmp_path, ann)
    assert len(_build(tmp_path, ann, max_people_per_image=None)) == 2
    assert len(_build(tmp_path, ann, max_people_per_image=501)) == 2
    assert len(_build(tmp_path, ann, test_mode=True)) == 2   # evaluation: no cap
    with pytest.raises(ValueError, match='image 2 has 501 person annotations, more than '
                       'max_people_per_image=3'):
        _build(tmp_path, ann, max_people_per_image=3)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match='max_people_per_image must be a positive int'):
            _build(tmp_path, ann, max_people_per_image=bad)


@pytest.mark.parametrize('cls,sub,ann', [
    ('LogoCapCocoDataset', 'coco', 'test_coco.json'),
    ('LogoCapOCHumanDataset', 'ochuman', 'test_ochuman.json'),  # compressed RLE strings
    ('LogoCapCrowdPoseDataset', 'crowdpose', 'test_crowdpose.json'),
])
def test_real_annotation_files_pass(cls, sub, ann, data_root):
    import logocap_mm  # noqa: F401
    from mmengine.registry import init_default_scope
    from mmpose.registry import DATASETS
    init_default_scope('mmpose')
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter('always')
        ds = DATASETS.build(dict(type=cls, data_root=osp.join(data_root, sub), ann_file=ann,
                                 data_prefix=dict(img=''), data_mode='bottomup', pipeline=[],
                                 test_mode=False))
    assert len(ds) > 0
    assert not [r for r in rec if 'annotation file' in str(r.message)]
