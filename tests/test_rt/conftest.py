"""A tiny ONNX file with a logocap_mm export's signature and metadata (one fixed pose per
image), so that the runtime's tools run end to end in milliseconds."""
import numpy as np
import pytest

T, K = 30, 2


def _facts():
    return dict(format=1, plugin_version='0.1.0', num_keypoints=K, flip_indices=[1, 0],
                sigmas=[0.1, 0.1], adaptation='none', flip_test=False, topk=T, stride=4,
                pose_nms=False, nms_dist_ratio=0.05, nms_num_joints=8, max_people=30,
                input_size=64, size_factor=64, round_mode='reference', max_long_side=4096,
                min_side=4, pad_val=[0., 0., 0.], mean=[0., 0., 0.], std=[1., 1., 1.],
                bgr_to_rgb=True, skeleton_links=[[0, 1]])


def write_tiny_onnx(path):
    """Graph: input (1, 3, H, W) -> the padded outputs of one pose (slot 0) at I (8, 8) and
    (24, 24), scores 0.9; the input feeds a ReduceSum whose result is multiplied by 0."""
    onnx = pytest.importorskip('onnx')
    from onnx import TensorProto, helper, numpy_helper

    from logocap_rt.metadata import encode
    kp = np.zeros((T, K, 2), np.float32)
    kp[0] = [[8, 8], [24, 24]]
    ks = np.zeros((T, K), np.float32)
    ks[0] = 0.9
    sc = np.zeros(T, np.float32)
    sc[0] = 0.9
    valid = np.zeros(T, bool)
    valid[0] = True
    consts = dict(kp_c=kp, ks_c=ks, sc_c=sc)
    nodes = [helper.make_node('Constant', [], [n], value=numpy_helper.from_array(v, n))
             for n, v in consts.items()]
    nodes += [helper.make_node('Constant', [], ['valid'],
                               value=numpy_helper.from_array(valid, 'valid_c')),
              helper.make_node('ReduceSum', ['input'], ['s'], keepdims=0),
              helper.make_node('Constant', [], ['zero'],
                               value=numpy_helper.from_array(np.float32(0), 'zero_c')),
              helper.make_node('Mul', ['s', 'zero'], ['z'])]
    for out, c in (('keypoints', 'kp_c'), ('keypoint_scores', 'ks_c'), ('scores', 'sc_c')):
        nodes.append(helper.make_node('Add', [c, 'z'], [out]))
    x = helper.make_tensor_value_info('input', TensorProto.FLOAT, [1, 3, 'H', 'W'])
    outs = [helper.make_tensor_value_info('keypoints', TensorProto.FLOAT, [T, K, 2]),
            helper.make_tensor_value_info('keypoint_scores', TensorProto.FLOAT, [T, K]),
            helper.make_tensor_value_info('scores', TensorProto.FLOAT, [T]),
            helper.make_tensor_value_info('valid', TensorProto.BOOL, [T])]
    model = helper.make_model(helper.make_graph(nodes, 'tiny_logocap', [x], outs),
                              opset_imports=[helper.make_opsetid('', 17)], ir_version=8)
    for k, v in encode(_facts()).items():
        e = model.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture(scope='session')
def tiny_onnx(tmp_path_factory):
    pytest.importorskip('onnxruntime')
    return write_tiny_onnx(tmp_path_factory.mktemp('tiny_onnx') / 'tiny.onnx')
