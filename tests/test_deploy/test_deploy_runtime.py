"""The torch-free ONNX runtime's own pieces: numpy pose NMS and people cap equal to the torch
decoder's decisions, preprocessing equal to the MMPose test pipeline bit for bit, and clear
errors for ONNX files that are not logocap_mm exports. (End-to-end equality with the
PyTorch model: tests/test_deploy/test_deploy_export.py.)"""
import glob
import os
import os.path as osp

import numpy as np
import pytest
import torch

from logocap_mm.deploy import finalize, pose_nms, preprocess, read_image, read_metadata
from logocap_mm.deploy.metadata import REQUIRED, encode
from logocap_mm.models.heads.logocap_decoder import LogoCapDecoder
from logocap_mm.models.heads.logocap_head import COCO_SIGMAS
from logocap_mm.models.utils.pose_nms import pose_nms as torch_pose_nms

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))  # tests/<group>/<file>
try:
    import onnx
    import onnxruntime  # noqa: F401
except ImportError as e:  # tools/install_env.sh installs both; under CI that is an error
    if os.environ.get('CI'):
        raise
    pytest.skip(f'{e.name} is not installed (tools/install_env.sh installs it)',
                allow_module_level=True)


def _crowd(rng, T=30, K=17, dup_frac=0.5):
    """Random poses where about half are jittered copies of others (NMS has work)."""
    base = rng.uniform(0, 400, (T, 1, 2)) + rng.normal(0, 30, (T, K, 2))
    for i in range(T):
        if rng.random() < dup_frac and i:
            j = rng.integers(0, i)
            base[i] = base[j] + rng.normal(0, rng.choice([0.3, 2., 8.]), (K, 2))
    if rng.random() < 0.3:
        base[rng.integers(0, T)] = base[0, 0]          # a degenerate pose (diag 0)
    return base.astype(np.float32)


def _facts(**kw):
    f = dict(pose_nms=True, nms_dist_ratio=0.05, nms_num_joints=8, max_people=30)
    f.update(kw)
    return f


@pytest.mark.parametrize('seed', range(40))
def test_numpy_pose_nms_equals_torch(seed):
    rng = np.random.default_rng(seed)
    kp = _crowd(rng)
    sc = rng.uniform(0, 1, 30).astype(np.float32)
    if seed % 4 == 0:
        sc[rng.integers(0, 30, 6)] = sc[0]                 # score ties: first maximum
    valid = rng.random(30) < 0.8
    ours = pose_nms(kp, sc, valid)
    ref = torch_pose_nms(torch.from_numpy(kp)[None], torch.from_numpy(sc)[None],
                         torch.from_numpy(valid)[None])[0].numpy()
    np.testing.assert_array_equal(ours, ref)
    kept = np.sort(ours[ours >= 0])
    np.testing.assert_array_equal(kept, np.arange(len(kept)))


def test_random_crowds_exercise_the_nms():
    """The random crowds above really drop duplicates (the equality is not vacuous)."""
    rng = np.random.default_rng(0)
    dropped = 0
    for _ in range(10):
        kp = _crowd(rng)
        r = pose_nms(kp, rng.uniform(0, 1, 30).astype(np.float32), np.ones(30, bool))
        dropped += int((r < 0).sum())
    assert dropped > 30


@pytest.mark.parametrize('seed', range(12))
@pytest.mark.parametrize('max_people', [30, 5])
def test_finalize_equals_decoder(seed, max_people):
    """Same poses, scores and order as LogoCapDecoder.finalize (incl. the people cap)."""
    rng = np.random.default_rng(100 + seed)
    kp = _crowd(rng)
    vals = rng.uniform(-0.05, 1, (30, 17)).astype(np.float32)
    cs = np.sort(rng.uniform(0, 1, 30).astype(np.float32))[::-1].copy()
    valid = np.arange(30) < rng.integers(1, 31)
    dec = LogoCapDecoder(COCO_SIGMAS, max_people=max_people)
    ref = dec.finalize(torch.from_numpy(kp)[None], torch.from_numpy(vals)[None],
                       torch.from_numpy(cs)[None], torch.from_numpy(valid)[None])[0]
    ks = vals * cs[:, None]
    out = finalize(kp, ks, ks.mean(-1), valid, _facts(max_people=max_people))
    assert len(out['scores']) == len(ref['scores']) > 0
    np.testing.assert_array_equal(out['keypoints'], ref['keypoints'].numpy())
    np.testing.assert_array_equal(out['keypoint_scores'], ref['keypoint_scores'].numpy())
    np.testing.assert_allclose(out['scores'], ref['scores'].numpy(), rtol=0, atol=1e-7)


def _w32_facts(size=256):
    return dict(input_size=size, size_factor=64, round_mode='reference', max_long_side=4096,
                min_side=4, pad_val=[0., 0., 0.], mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375], bgr_to_rgb=True)


@pytest.mark.parametrize('size', [256, 512])
def test_preprocess_equals_mmpose_pipeline(size):
    """LoadImage + LogoCapResize + PoseDataPreprocessor == the runtime's numpy preprocessing,
    exactly, on every bundled image (and the I -> O mapping data is the same)."""
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS
    init_default_scope('mmpose')
    f = _w32_facts(size)
    pipe = Compose([dict(type='LoadImage', color_type='color_ignore_orientation'),
                    dict(type='LogoCapResize', input_size=size),
                    dict(type='PackPoseInputs', meta_keys=('input_size', 'input_center',
                                                           'input_scale'))])
    pre = MODELS.build(dict(type='PoseDataPreprocessor', mean=f['mean'], std=f['std'],
                            bgr_to_rgb=True))
    images = sorted(glob.glob(osp.join(ROOT, 'tests', 'data', '*', '*.jpg')))
    assert images
    for path in images:
        data = pipe(dict(img_path=path))
        x_ref = pre(dict(inputs=[data['inputs']], data_samples=[data['data_samples']]),
                    False)['inputs'].numpy()
        x, cm = preprocess(read_image(path), f, path)
        np.testing.assert_array_equal(x, x_ref, err_msg=path)
        m = data['data_samples'].metainfo
        assert tuple(cm['input_size']) == tuple(m['input_size'])
        np.testing.assert_array_equal(cm['input_center'], m['input_center'])
        np.testing.assert_array_equal(cm['input_scale'], m['input_scale'])


def test_preprocess_converts_channels_and_refuses_empty():
    f = _w32_facts()
    gray = np.full((100, 150), 128, np.uint8)
    x, cm = preprocess(gray, f)
    assert x.shape == (1, 3, 256, 384) and cm['input_size'] == (384, 256)
    with pytest.raises(ValueError, match='empty'):
        preprocess(np.zeros((0, 10, 3), np.uint8), f)
    with pytest.raises(ValueError, match='dtype float64'):
        preprocess(np.zeros((10, 10, 3)), f)


def _facts_full():
    return dict(format=1, plugin_version='0.1.0', num_keypoints=2, flip_indices=[1, 0],
                sigmas=[0.1, 0.1], adaptation='full', flip_test=True, topk=30,
                stride=4, **_facts(), **_w32_facts())


def test_metadata_round_trip_and_missing_keys():
    facts = _facts_full()
    props = encode(facts)
    assert read_metadata(props, 'm.onnx') == facts
    assert set(REQUIRED) <= set(facts)
    with pytest.raises(ValueError, match='not a logocap_mm ONNX export'):
        read_metadata({'producer': 'x'}, 'm.onnx')
    del props['logocap_mm.sigmas'], props['logocap_mm.mean']
    with pytest.raises(ValueError, match='lacks sigmas, mean'):
        read_metadata(props, 'm.onnx')
    bad = encode(facts)
    bad['logocap_mm.num_keypoints'] = '3'
    with pytest.raises(ValueError, match='permutation of range'):
        read_metadata(bad, 'm.onnx')


def _tiny_onnx(path, props=None, out_names=('y',), out_shape=(1, 3, 4, 4)):
    """A one-node ONNX model (another model), optionally with metadata."""
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info('input', TensorProto.FLOAT, [1, 3, 4, 4])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(out_shape))
            for n in out_names]
    nodes = [helper.make_node('Identity', ['input'], [n]) for n in out_names]
    model = helper.make_model(helper.make_graph(nodes, 'other', [x], outs),
                              opset_imports=[helper.make_opsetid('', 17)],
                              ir_version=8)
    for k, v in (props or {}).items():
        e = model.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(model, str(path))
    return str(path)


def test_runtime_refuses_other_models(tmp_path):
    from logocap_mm.deploy import LogoCapONNX
    with pytest.raises(ValueError, match='not a logocap_mm ONNX export'):
        LogoCapONNX(_tiny_onnx(tmp_path / 'other.onnx'))
    # metadata copied onto another graph: inputs / outputs do not match
    with pytest.raises(ValueError, match='are not those of a logocap_mm export'):
        LogoCapONNX(_tiny_onnx(tmp_path / 'fake.onnx', encode(_facts_full())))
    with pytest.raises(ValueError, match='does not exist'):
        LogoCapONNX(str(tmp_path / 'missing.onnx'))
    (tmp_path / 'junk.onnx').write_bytes(b'not a protobuf')
    with pytest.raises(ValueError, match='ONNX Runtime cannot load it'):
        LogoCapONNX(str(tmp_path / 'junk.onnx'))
