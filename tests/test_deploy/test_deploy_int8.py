"""INT8 export: the network quantised (QDQ), the decoder left float32, the metadata saying
so, and poses close to the fp32 graph's on the bundled images."""
import ast
import glob
import os.path as osp
import shutil

import numpy as np
import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))  # tests/<group>/<file>
IMAGES = sorted(glob.glob(osp.join(ROOT, 'tests', 'data', '*', '*.jpg')))

# INT8 against fp32, fixture model at its test size (256): per image, the fp32 poses with a
# pose score >= STRONG are each matched with the nearest INT8 pose; the median distance of
# their keypoints with a score >= STRONG must stay under MEDIAN_PX (measured: 2.9-6.9 px in
# the original images, under one heatmap cell at this canvas), and the number of such
# poses may differ by at most COUNT_DIFF (measured: up to 2)
STRONG, MEDIAN_PX, COUNT_DIFF = 0.1, 12.0, 3
CALIB = 4  # calibration images


@pytest.fixture(scope='module')
def int8(conv, deploy_export, tmp_path_factory):
    from logocap_mm.deploy.quantize import quantize_int8
    calib = tmp_path_factory.mktemp('calib')
    for p in IMAGES[::2]:  # 5 of the 9 bundled images
        shutil.copy(p, calib)
    fp32 = deploy_export('full')
    out = str(conv['tmp'] / 'logocap_full_int8.onnx')
    res = quantize_int8(fp32, out, str(calib), calib_count=CALIB)
    return dict(fp32=fp32, path=out, res=res)


def _scopes(node):
    for p in node.metadata_props:
        if p.key == 'pkg.torch.onnx.name_scopes':
            return [s for s in ast.literal_eval(p.value) if s.startswith('model.')]
    return []


def test_int8_metadata_and_quantised_nodes(int8):
    import onnx

    from logocap_mm.deploy.quantize import DECODER_SCOPES
    from logocap_rt import LogoCapONNX
    rt = LogoCapONNX(int8['path'])
    assert rt.meta['precision'] == 'int8' and rt.meta['calib_images'] == CALIB
    # the default quantises the CMP's first convolution only
    assert rt.meta['int8_cmp'] is True and rt.meta['int8_cmp_convs'] == 1
    assert LogoCapONNX(int8['fp32']).meta['precision'] == 'fp32'
    m = onnx.load(int8['path'])
    nodes = {n.name: n for n in m.graph.node}
    producer = {o: n for n in m.graph.node for o in n.output}
    dq = [n for n in m.graph.node if n.op_type == 'DequantizeLinear']
    convs = [n for n in m.graph.node if n.op_type == 'Conv']
    # every network convolution reads quantised weights ...
    q_convs = [n for n in convs if producer.get(n.input[1]) is not None and
               producer[n.input[1]].op_type == 'DequantizeLinear']
    assert len(q_convs) >= 60 and len(dq) > len(q_convs)
    # ... and only network nodes are quantised (run as int8 kernels: they read a
    # dequantised input and write a tensor that is quantised again, or read int8 weights)
    users = {}
    for n in nodes.values():
        for i in n.input:
            users.setdefault(i, []).append(n)
    inits = {i.name for i in m.graph.initializer}

    def where(n):
        sc = _scopes(n)
        if not sc:
            return 'outside'
        if any(s.startswith(d) for s in sc for d in DECODER_SCOPES):
            return 'cmp' if any('.cmp' in s for s in sc) else 'decoder'
        return 'network'

    quantised = []
    for n in nodes.values():
        if n.op_type in ('QuantizeLinear', 'DequantizeLinear'):
            continue
        dq_in = [producer[i] for i in n.input if i in producer and
                 producer[i].op_type == 'DequantizeLinear']
        q_out = any(u.op_type == 'QuantizeLinear' for o in n.output for u in users.get(o, ()))
        int8_w = any(d.input[0] in inits for d in dq_in)
        if (dq_in and q_out) or int8_w:
            quantised.append(n)
            # (of the CMP, by default its first convolution only)
            assert where(n) == 'network' or (where(n) == 'cmp' and n.op_type == 'Conv'), \
                f'{n.name} ({n.op_type}, {where(n)}) is quantised'
    q_cmp = [n for n in quantised if where(n) == 'cmp']
    assert len(q_cmp) == 1
    # --int8-cmp adds the CMP's convolutions (but not its last, whose KAMs are weights)
    import onnx
    from logocap_mm.deploy.quantize import network_nodes
    fp32 = onnx.load(int8['fp32'])
    plain, with_cmp = network_nodes(fp32, cmp=False), network_nodes(fp32, cmp=True)
    fp32_nodes = {n.name: n for n in fp32.graph.node}
    extra = [fp32_nodes[n] for n in set(with_cmp) - set(plain)]
    assert set(plain) < set(with_cmp) and len(extra) >= 3
    assert all(where(n) == 'cmp' and n.op_type == 'Conv' for n in extra)
    # an int N takes the CMP's first N convolutions, in graph order
    order = [n.name for n in fp32.graph.node if n.name in set(with_cmp) - set(plain)]
    for k in range(len(order) + 2):
        assert network_nodes(fp32, cmp=k) == plain + order[:k]
    assert q_cmp[0].name == order[0]  # the default's one CMP convolution is the first
    from logocap_mm.deploy.quantize import check_cmp_option
    for bad in (-1, 1.5, 'first', None):
        with pytest.raises(ValueError, match='cmp must be'):
            check_cmp_option(bad)
    # the network's convolution weights are stored in int8: the file shrinks by at least
    # 70% of their float32 bytes (75% less scales and zero points)
    fp32_inits = {i.name: i for i in fp32.graph.initializer}
    net_bytes = sum(4 * int(np.prod(fp32_inits[fp32_nodes[n].input[1]].dims)) for n in plain
                    if fp32_nodes[n].op_type == 'Conv' and fp32_nodes[n].input[1] in fp32_inits)
    assert net_bytes > 0
    assert osp.getsize(int8['path']) < osp.getsize(int8['fp32']) - 0.7 * net_bytes
    # the decoder never reads a rounded tensor
    dq_out = {o for n in dq for o in n.output}
    for n in nodes.values():
        if n.op_type not in ('QuantizeLinear', 'DequantizeLinear') and \
                any(i in dq_out for i in n.input):
            assert where(n) in ('network', 'cmp'), f'{n.name} ({n.op_type}) reads int8 data'
    # the KAM convolution (runtime weights) is still a float32 Conv of the decoder
    # (one grouped Conv, or, where the graph runs it on the valid people only, a Scan of
    # Convs whose body holds no quantisation node)
    kam = [n for n in convs if any('global_adaptation' in s for s in _scopes(n))]
    scans = [n for n in m.graph.node if n.op_type == 'Scan']
    assert len(kam) + len(scans) >= 1
    for n in kam:
        assert producer[n.input[1]].op_type != 'DequantizeLinear' and n not in q_convs
    for n in scans:
        assert not any(producer[i].op_type == 'DequantizeLinear' for i in n.input
                       if i in producer)
        body = [a.g for a in n.attribute if a.name == 'body'][0]
        assert not any(b.op_type in ('QuantizeLinear', 'DequantizeLinear') for b in body.node)
        assert any(b.op_type == 'Conv' for b in body.node)


def _close(a, b, label, count_diff=COUNT_DIFF):
    """The strong poses of runtime ``a`` (fp32) are found by runtime ``b`` (INT8)."""
    compared = 0
    for img in IMAGES:
        pa, pb = a(img), b(img)
        sa = [p for p in pa if p['bbox_score'] >= STRONG]
        sb = [p for p in pb if p['bbox_score'] >= STRONG]
        assert count_diff is None or abs(len(sa) - len(sb)) <= count_diff, \
            (label, img, len(sa), len(sb))
        if not sa:
            continue
        ka = np.array([p['keypoints'] for p in sa])
        kb = np.array([p['keypoints'] for p in pb])
        d = np.linalg.norm(ka[:, None] - kb[None], axis=-1)        # (Sa, Nb, K)
        d = d[np.arange(len(sa)), np.median(d, -1).argmin(1)]       # nearest INT8 pose
        vis = np.array([p['keypoint_scores'] for p in sa]) >= STRONG
        med = float(np.median(d[vis]))
        print(f'{label} {osp.basename(img)}: {len(sa)} / {len(sb)} strong poses, median '
              f'{med:.2f} px')
        assert med <= MEDIAN_PX, f'{label} {img}: INT8 keypoints {med:.1f} px from fp32'
        compared += 1
    assert compared >= 3


def test_int8_poses_close_to_fp32(int8):
    from logocap_rt import LogoCapONNX
    _close(LogoCapONNX(int8['fp32']), LogoCapONNX(int8['path']), 'onnxruntime')


def test_int8_runs_on_openvino(int8, need_module):
    """OpenVINO reads the QDQ graph and runs it with its own INT8 kernels: the strong fp32
    poses are found as closely, but it returns more poses above the score threshold than
    fp32 (seen: 23 where fp32 has 13), so the counts are not compared."""
    need_module('openvino')
    from logocap_rt import LogoCapONNX
    ov = LogoCapONNX(int8['path'], backend='openvino')
    assert ov.meta['precision'] == 'int8'
    _close(LogoCapONNX(int8['fp32']), ov, 'openvino', count_diff=None)


def test_int8_refuses_bad_calibration(conv, int8, tmp_path):
    import os
    import subprocess
    import sys

    from logocap_mm.deploy.quantize import quantize_int8
    with pytest.raises(ValueError, match='does not exist'):
        quantize_int8(int8['fp32'], str(tmp_path / 'q.onnx'), str(tmp_path / 'nope'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='holds no image'):
        quantize_int8(int8['fp32'], str(tmp_path / 'q.onnx'), str(tmp_path / 'empty'))
    with pytest.raises(ValueError, match='already int8'):
        quantize_int8(int8['path'], str(tmp_path / 'q.onnx'), osp.dirname(IMAGES[0]))
    with pytest.raises(ValueError, match='calib_count'):
        quantize_int8(int8['fp32'], str(tmp_path / 'q.onnx'), osp.dirname(IMAGES[0]),
                      calib_count=0)
    assert not (tmp_path / 'q.onnx').exists()
    # the command line refuses before the (slow) export
    r = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'deploy', 'export_onnx.py'),
                        conv['cfg_path'], conv['ckpt'], '--out', str(tmp_path / 'q.onnx'),
                        '--int8', '--calib', str(tmp_path / 'empty')], capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 2 and 'holds no image' in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / 'q.onnx').exists()


def test_int8_cmp_option_parses():
    """``--int8-cmp`` alone: every CMP convolution but the last; ``--int8-cmp N``: the first
    N; absent: the first one; a negative N is refused by argparse."""
    from logocap_mm.testing import load_tool
    tool = load_tool('tools/deploy/export_onnx.py', 'export_onnx_cli')
    base = ['cfg.py', 'ckpt.pth', '--out', 'x.onnx', '--int8', '--calib', 'd']
    assert tool.parse_args(base).int8_cmp == 1
    assert tool.parse_args(base + ['--int8-cmp', '0']).int8_cmp == 0
    assert tool.parse_args(base + ['--int8-cmp']).int8_cmp == -1
    assert tool.parse_args(base + ['--int8-cmp', '1']).int8_cmp == 1
    with pytest.raises(SystemExit):
        tool.parse_args(base + ['--int8-cmp', '-3'])
