"""One rule set for the test-time settings and the float pixel range (``logocap_rt.checks``):
an exported file's metadata is checked by value at load (the key named), the PyTorch side
(``LogoCapResize``, ``LogoCapDecoder``) refuses the same values with the same words, and
float images outside [0, 255] are refused by both runtimes' shared preprocessing."""
import json

import numpy as np
import pytest

from logocap_rt.checks import MAX_CANVAS_SIDE, RULES, check_value
from logocap_rt.metadata import PREFIX, decode, encode
from logocap_rt.model import preprocess


def _facts(**kw):
    f = dict(format=1, plugin_version='0.1.0', num_keypoints=2, flip_indices=[1, 0],
             sigmas=[0.1, 0.1], input_size=256, size_factor=64, round_mode='reference',
             max_long_side=4096, min_side=4, pad_val=[0., 0., 0.],
             mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
             adaptation='full', flip_test=True, topk=30, pose_nms=True, nms_dist_ratio=0.05,
             nms_num_joints=8, max_people=30, stride=4)
    f.update(kw)
    return f


def _props(**bad):
    """Metadata of a valid export with some values replaced (written as the exporter does:
    JSON, NaN as the JSON ``NaN`` token)."""
    props = encode(_facts())
    for k, v in bad.items():
        props[PREFIX + k] = json.dumps(v)
    return props


# the values that once loaded and gave 0 / 1 / 16 poses, an ORT error, a ZeroDivisionError
# or a 16 GiB allocation
BAD = [
    ('nms_dist_ratio', float('nan'), 'must be a finite number >= 0'),
    ('nms_dist_ratio', -0.1, 'must be a finite number >= 0'),
    ('max_people', 0, 'must be a positive int'),
    ('max_people', -5, 'must be a positive int'),
    ('nms_num_joints', -1, 'must be an int >= 0'),
    ('std', [0, 0, 0], r'must be a list of 3 finite numbers > 0'),
    ('std', [1.0, float('inf'), 1.0], r'must be a list of 3 finite numbers > 0'),
    ('mean', [0.0, float('nan'), 0.0], r'must be a list of 3 finite numbers'),
    ('input_size', 0, r'must be a positive int <= 8192'),
    ('size_factor', 0, r'must be a positive int <= 8192'),
    ('max_long_side', 0, r'must be a positive int <= 8192'),
    ('max_long_side', 200000, r'must be a positive int <= 8192'),
    ('input_size', 100000, r'must be a positive int <= 8192'),
    ('min_side', -4, r'must be a positive int <= 8192'),
    ('topk', 0, 'must be a positive int'),
    ('stride', 0, 'must be a positive int <= 64'),
    ('pad_val', [0, 0, 300], r'must be a list of 3 finite numbers >= 0 and <= 255'),
]


@pytest.mark.parametrize('key,value,match', BAD)
def test_metadata_values_are_refused_at_load_naming_the_key(key, value, match):
    with pytest.raises(ValueError, match=rf'm\.onnx: metadata logocap_mm\.{key} \(.*\) {match}'):
        decode(_props(**{key: value}), 'm.onnx')


def test_metadata_canvas_relations_are_refused():
    with pytest.raises(ValueError, match=r'input_size \(4096\) must be <= max_long_side \(2048\)'):
        decode(_props(input_size=4096, max_long_side=2048), 'm.onnx')
    with pytest.raises(ValueError, match=r'max_long_side \(32\) must be >= size_factor \(64\)'):
        decode(_props(max_long_side=32), 'm.onnx')
    assert decode(_props(input_size=MAX_CANVAS_SIDE, max_long_side=MAX_CANVAS_SIDE),
                  'm.onnx')['input_size'] == MAX_CANVAS_SIDE  # the bound itself is allowed


def test_valid_metadata_loads_unchanged():
    assert decode(encode(_facts()), 'm.onnx') == _facts()


@pytest.mark.parametrize('key,value,match', [b for b in BAD if b[0] in (
    'input_size', 'size_factor', 'max_long_side', 'min_side', 'pad_val')])
def test_resize_refuses_what_the_metadata_refuses(key, value, match):
    """``LogoCapResize`` (the PyTorch test pipeline) uses the same rules and words."""
    import logocap_mm  # noqa: F401
    from mmpose.registry import TRANSFORMS
    kw = dict(input_size=256)
    kw[key] = value
    with pytest.raises(ValueError, match=rf'LogoCapResize: {key} {match}'):
        TRANSFORMS.build(dict(type='LogoCapResize', **kw))


@pytest.mark.parametrize('key,value,match', [b for b in BAD if b[0] in (
    'nms_dist_ratio', 'max_people', 'nms_num_joints', 'topk', 'stride')])
def test_decoder_refuses_what_the_metadata_refuses(key, value, match):
    import logocap_mm  # noqa: F401
    from logocap_mm.models.adaptation import LogoCapDecoder
    with pytest.raises(ValueError, match=rf'^{key} {match}'):
        LogoCapDecoder(sigmas=[0.1] * 17, **{key: value})


def test_every_rule_names_its_setting():
    for name, rule in RULES.items():
        assert rule.what, name
        bad = 'x' if rule.kind != 'choice' else 'not-a-choice'
        with pytest.raises(ValueError, match=rf'^{name} must be'):
            check_value(name, bad)


# ------------------------------------------------------------------------------ pixels
@pytest.mark.parametrize('value', [3e38, 1e20, 255.5, -1.0, -3e38])
def test_float_pixels_outside_0_255_are_refused_by_both_runtimes(value):
    import logocap_mm  # noqa: F401
    from mmpose.registry import TRANSFORMS
    img = np.full((40, 60, 3), 100., np.float32)
    img[3, 4, 1] = value
    match = r'float pixel values in \[.*\], outside \[0, 255\]'
    with pytest.raises(ValueError, match=match):  # ONNX runtime preprocessing
        preprocess(img, _facts(), 'a.png')
    with pytest.raises(ValueError, match='LogoCapResize: image a.png has ' + match):
        TRANSFORMS.build(dict(type='LogoCapResize', input_size=256))(
            dict(img=img, img_path='a.png'))


def test_float_pixels_within_range_still_load():
    img = np.full((40, 60, 3), 255., np.float32)
    img[0, 0] = 0.
    x, _ = preprocess(img, _facts())
    assert x.shape == (1, 3, 256, 384) and np.isfinite(x).all()
    with pytest.warns(UserWarning, match=r'\[0, 1\] image'):
        x01, _ = preprocess(img / 255., _facts())
    np.testing.assert_allclose(x01, x, atol=1e-4)
