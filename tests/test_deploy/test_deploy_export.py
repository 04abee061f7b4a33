"""End-to-end ONNX export of the converted fixture model and the torch-free runtime.

The fixture folder's reference weights go through the converter (as in test_parity.py), the
model is exported at the config's test size for each adaptation level, and ONNX Runtime
(``LogoCapONNX``) must give the PyTorch ``LogoCapPoseEstimator``'s poses on every bundled
image: the same number of poses, keypoints within 1e-2 px in the original image, keypoint
and pose scores within 1e-4. The runtime also runs in a subprocess in which torch, mmcv,
mmengine and mmpose cannot be imported.
"""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

import logocap_mm  # noqa: F401  (registers the LogoCap* modules)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))  # tests/<group>/<file>
IMAGES = sorted(glob.glob(osp.join(ROOT, 'tests', 'data', '*', '*.jpg')))
LEVELS = ('full', 'partial', 'none')
KPT_TOL, SCORE_TOL = 1e-2, 1e-4


def _export(conv, level):
    from logocap_mm.deploy.export import export_model
    if level not in conv['exports']:
        out = str(conv['tmp'] / f'logocap_{level}.onnx')
        res = export_model(conv['model'], conv['cfg'], out, adaptation=level)
        assert res['metadata']['adaptation'] == level and osp.isfile(out)
        conv['exports'][level] = out
    return conv['exports'][level]


def _torch_predict(conv, img, level):
    from mmengine.dataset import Compose, pseudo_collate
    model = conv['model']
    pipe = Compose(conv['cfg'].test_dataloader.dataset.pipeline)
    meta = model.dataset_meta
    old = dict(model.test_cfg)
    data = dict(img=img) if isinstance(img, np.ndarray) else dict(img_path=img)
    data.update(flip_indices=meta['flip_indices'])
    try:
        # the graph is exported from the contiguous fp32 model: compare with that layout
        # (channels_last reorders the sums and can flip a near-tie of the top-2 responses)
        model.test_cfg = dict(old, adaptation=level, memory_format='contiguous')
        with torch.no_grad():
            ds = model.test_step(pseudo_collate([pipe(data)]))[0]
    finally:
        model.test_cfg = old
    return ds.pred_instances


def _compare(name, inst, pi):
    K = pi.keypoints.shape[1] if len(pi.keypoints) else 0
    assert len(inst) == len(pi.keypoints), f'{name}: {len(inst)} ORT poses vs {len(pi.keypoints)}'
    if not inst:
        return 0., 0.
    kp = np.array([i['keypoints'] for i in inst]).reshape(-1, K, 2)
    ks = np.array([i['keypoint_scores'] for i in inst]).reshape(-1, K)
    bs = np.array([i['bbox_score'] for i in inst])
    box = np.array([i['bbox'][0] for i in inst])
    dk = float(np.abs(kp - pi.keypoints).max())
    ds = float(max(np.abs(ks - pi.keypoint_scores).max(), np.abs(bs - pi.bbox_scores).max()))
    print(f'{name}: {len(inst)} poses, max |dxy| {dk:.2e} px, max |dscore| {ds:.2e}')
    assert dk <= KPT_TOL, f'{name}: keypoints differ by {dk:.3g} px'
    assert float(np.abs(box - pi.bboxes).max()) <= KPT_TOL, f'{name}: boxes'
    assert ds <= SCORE_TOL, f'{name}: scores differ by {ds:.3g}'
    return dk, ds


def test_ort_and_pytorch_give_the_same_track_ids(conv):
    """A short 'video' (a bundled image moved 6 px per frame): tracking the ONNX Runtime's
    poses and PyTorch's poses gives the same ids, frame by frame."""
    import cv2

    from logocap_mm.deploy import LogoCapONNX
    from logocap_rt.tracking import PoseTracker
    rt = LogoCapONNX(_export(conv, 'full'))
    img = cv2.imread(IMAGES[0])
    # a random model: its poses score ~0, so every pose and keypoint counts here
    trackers = {k: PoseTracker(smooth=True, pose_thr=0.0, kpt_thr=0.0) for k in ('ort', 'torch')}
    tracked = 0
    for f in range(3):
        frame = cv2.warpAffine(img, np.float32([[1, 0, 6 * f], [0, 1, 0]]),
                               img.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
        pi = _torch_predict(conv, frame, 'full')
        inst = rt(frame)
        ids = {}
        for name, (kp, ks, bs) in dict(
                ort=([i['keypoints'] for i in inst], [i['keypoint_scores'] for i in inst],
                     [i['bbox_score'] for i in inst]),
                torch=(pi.keypoints, pi.keypoint_scores, pi.bbox_scores)).items():
            k = np.asarray(kp, np.float64).reshape(-1, 17, 2)
            ids[name] = trackers[name].update(k, np.asarray(ks).reshape(-1, 17),
                                              np.asarray(bs).reshape(-1))[0]
        np.testing.assert_array_equal(ids['ort'], ids['torch'])
        tracked += int((ids['ort'] >= 0).sum())
    assert tracked > 0  # some poses were confirmed and compared


@pytest.mark.parametrize('level', LEVELS)
def test_ort_equals_pytorch_on_bundled_images(conv, level):
    from logocap_mm.deploy import LogoCapONNX
    path = _export(conv, level)
    rt = LogoCapONNX(path)
    assert rt.meta['adaptation'] == level and rt.meta['flip_test'] is True
    assert rt.meta['flip_indices'] == list(conv['model'].dataset_meta['flip_indices'])
    assert IMAGES
    total = 0
    for img in IMAGES:
        inst = rt(img)
        _compare(f'{osp.basename(img)} {level}', inst, _torch_predict(conv, img, level))
        total += len(inst)
    assert total > 0
    # an empty (uniform) image is normal input: no people, like the PyTorch model
    black = np.zeros((240, 320, 3), np.uint8)
    assert rt(black) == []
    assert len(_torch_predict(conv, black, level).keypoints) == 0


def test_ort_matches_reference_final_poses(conv, fixture_image, require):
    """The fixture's reference final poses (O frame), 'none' and 'partial' levels (no top-2
    near-ties), at the fixture file's own test size."""
    from logocap_mm.deploy import LogoCapONNX
    path, size = fixture_image
    if size != conv['cfg'].test_dataloader.dataset.pipeline[1]['input_size']:
        pytest.skip(f'{osp.basename(path)} is at test size {size}; the export is at the '
                    "config's size")
    for lv in ('none', 'partial'):
        require(path, ('file_name', f'final_{lv}', f'final_scores_{lv}'), f'final ({lv})')
        z = np.load(path)
        img = glob.glob(osp.join(ROOT, 'tests', 'data', '**', str(z['file_name'])),
                        recursive=True)
        if not img:
            pytest.skip(f'image {z["file_name"]} is not under tests/data')
        inst = LogoCapONNX(_export(conv, lv))(img[0])
        ref = z[f'final_{lv}']
        assert len(inst) == len(ref), f'{lv}: {len(inst)} poses vs reference {len(ref)}'
        kp = np.array([i['keypoints'] for i in inst])
        ks = np.array([i['keypoint_scores'] for i in inst])
        dk, ds = np.abs(kp - ref[..., :2]).max(), np.abs(ks - ref[..., 2]).max()
        db = np.abs(np.array([i['bbox_score'] for i in inst]) - z[f'final_scores_{lv}']).max()
        print(f'{osp.basename(path)} {lv} vs reference: |dxy| {dk:.2e} |dscore| {ds:.2e}')
        assert dk <= KPT_TOL and max(ds, db) <= SCORE_TOL


BLOCKER = r'''
import runpy, sys
BLOCKED = ('torch', 'mmcv', 'mmengine', 'mmpose', 'torchvision')
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError(f'{name} is blocked in this test')
        return None
sys.meta_path.insert(0, Block())
sys.argv = ['onnx_infer.py'] + sys.argv[1:]
try:
    runpy.run_path(%r, run_name='__main__')
finally:
    heavy = [m for m in sys.modules if m.split('.')[0] in BLOCKED]
    assert not heavy, heavy
'''


def test_runtime_cli_without_torch(conv, tmp_path):
    """tools/deploy/onnx_infer.py with torch/mmcv/mmengine/mmpose unimportable: the JSON
    equals the in-process runtime's, drawings are written, inputs are never overwritten."""
    from logocap_mm.deploy import LogoCapONNX
    path = _export(conv, 'none')
    imgs = IMAGES[:2]
    out = tmp_path / 'out'
    script = BLOCKER % osp.join(ROOT, 'tools', 'deploy', 'onnx_infer.py')
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, '-c', script, path, *imgs, '--out-dir', str(out),
                        '--threads', '2'], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rt = LogoCapONNX(path)
    for img in imgs:
        name = osp.basename(img)
        with open(out / f'{name}.json') as f:
            got = json.load(f)
        assert got == json.loads(json.dumps(rt(img))) and len(got) > 0
        assert (out / name).stat().st_size > 0
    # an output that would land on an input is refused
    r = subprocess.run([sys.executable, '-c', script, path, str(out / name),
                        '--out-dir', str(out)], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 2 and 'is the input' in r.stderr


def test_file_without_metadata_is_refused(conv, tmp_path):
    import onnx

    from logocap_mm.deploy import LogoCapONNX
    m = onnx.load(_export(conv, 'none'))
    del m.metadata_props[:]
    onnx.save(m, str(tmp_path / 'stripped.onnx'))
    with pytest.raises(ValueError, match='not a logocap_mm ONNX export'):
        LogoCapONNX(str(tmp_path / 'stripped.onnx'))


def test_unsupported_settings_are_refused(conv, tmp_path):
    from logocap_mm.deploy.export import export_model
    model, cfg = conv['model'], conv['cfg']
    out = str(tmp_path / 'x.onnx')
    with pytest.raises(ValueError, match='supports batch size 1'):
        export_model(model, cfg, out, batch_size=0)
    with pytest.raises(ValueError, match='supports batch size 1'):
        export_model(model, cfg, out, batch_size=65)
    with pytest.raises(ValueError, match='supports a single scale'):
        export_model(model, cfg, out, scales=[0.5, 1.0, 2.0])
    old = dict(model.test_cfg)
    try:
        model.test_cfg = dict(old, multiscale_test=True)
        with pytest.raises(ValueError, match='supports a single scale'):
            export_model(model, cfg, out)
    finally:
        model.test_cfg = old
    with pytest.raises(ValueError, match='opset must be an int >= 17'):
        export_model(model, cfg, out, opset=13)
    assert not osp.exists(out)
    # the command line says the same, before loading anything
    r = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'deploy', 'export_onnx.py'),
                        conv['cfg_path'], conv['ckpt'], '--out', out, '--batch-size', '0'],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 2 and 'supports batch size 1' in r.stderr


def test_padded_slots_graph_gives_the_same_poses(conv, tmp_path):
    """``trim_slots=False`` (every stage on all 30 slots, no data-dependent shapes) gives
    the same poses as the default graph (local adaptation on the valid slots only)."""
    from logocap_mm.deploy import LogoCapONNX
    from logocap_mm.deploy.export import export_model
    out = str(tmp_path / 'padded.onnx')
    export_model(conv['model'], conv['cfg'], out, adaptation='partial', trim_slots=False)
    a, b = LogoCapONNX(out), LogoCapONNX(_export(conv, 'partial'))
    assert a.meta['trim_slots'] is False and b.meta['trim_slots'] is True
    for img in IMAGES[:3]:
        pa, pb = a(img), b(img)
        assert len(pa) == len(pb) > 0
        np.testing.assert_allclose(np.array([p['keypoints'] for p in pa]),
                                   np.array([p['keypoints'] for p in pb]), rtol=0, atol=1e-4)
        np.testing.assert_allclose(np.array([p['keypoint_scores'] for p in pa]),
                                   np.array([p['keypoint_scores'] for p in pb]), rtol=0,
                                   atol=1e-6)



def _convs(graph, found):
    """(group, in-Scan) of every Conv in ``graph`` and its subgraphs."""
    for node in graph.node:
        if node.op_type == 'Conv':
            g = [a.i for a in node.attribute if a.name == 'group']
            found.append((g[0] if g else 1, graph.name))
        for a in node.attribute:
            if a.g is not None and a.g.node:
                _convs(a.g, found)
    return found


def test_global_stage_cost_follows_the_valid_slots(conv):
    """The default 'full' graph computes the KAM convolution in a ``Scan`` over the valid
    slots (one Conv of K groups per step), not as one Conv of T*K groups; the padded-slots
    graph keeps the static T*K-group Conv. (Its time at 1 and 30 people:
    tools/deploy/bench_onnx.py.)"""
    import onnx

    from logocap_mm.deploy.export import export_model
    K, T = conv['model'].head.num_keypoints, conv['model'].head.pose_decoder.topk
    m = onnx.load(_export(conv, 'full'))
    scans = [n for n in m.graph.node if n.op_type == 'Scan']
    assert len(scans) == 1
    body = [a.g for a in scans[0].attribute if a.name == 'body'][0]
    groups = _convs(m.graph, [])
    assert [(g, name) for g, name in groups if name == body.name] == [(K, body.name)]
    assert all(g != T * K for g, _ in groups)
    out = str(conv['tmp'] / 'full_padded.onnx')
    export_model(conv['model'], conv['cfg'], out, adaptation='full', trim_slots=False)
    mp = onnx.load(out)
    assert not [n for n in mp.graph.node if n.op_type == 'Scan']
    assert (T * K, mp.graph.name) in _convs(mp.graph, [])

# the runtime's own imports: numpy, OpenCV (its .libs folder) and ONNX Runtime
RUNTIME_DEPS = ('numpy', 'numpy.libs', 'cv2', 'opencv_python.libs', 'onnxruntime')


def test_runtime_installs_alone_in_a_fresh_venv(conv, tmp_path):
    """The project's wheel installed (no dependencies) into a new virtual environment that
    holds only numpy, OpenCV and ONNX Runtime (linked from this environment) runs the
    ``logocap-rt`` command on an image and gives the in-process runtime's poses."""
    import site
    import venv

    from logocap_mm.deploy import LogoCapONNX
    path = _export(conv, 'none')
    wheels = tmp_path / 'wheels'
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
                        '--no-build-isolation', '-w', str(wheels), ROOT],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    whl = glob.glob(str(wheels / 'logocap_mm-*.whl'))
    assert len(whl) == 1, whl
    env_dir = tmp_path / 'rtenv'
    venv.EnvBuilder(with_pip=True).create(str(env_dir))
    py = str(env_dir / 'bin' / 'python')
    deps = tmp_path / 'deps'
    deps.mkdir()
    src = site.getsitepackages()[0]
    for name in RUNTIME_DEPS:
        if osp.exists(osp.join(src, name)):
            os.symlink(osp.join(src, name), deps / name)
    new_site = subprocess.run([py, '-c', 'import site; print(site.getsitepackages()[0])'],
                              capture_output=True, text=True).stdout.strip()
    with open(osp.join(new_site, 'runtime_deps.pth'), 'w') as f:
        f.write(str(deps) + '\n')
    # without PYTHONPATH: a checkout on it (with the egg-info an in-tree wheel build leaves)
    # would count as logocap-mm already installed, and pip would install nothing
    clean = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    r = subprocess.run([py, '-m', 'pip', 'install', '-q', '--no-deps', '--no-index', whl[0]],
                       capture_output=True, text=True, timeout=600, env=clean)
    assert r.returncode == 0, r.stderr[-3000:]
    # outside the clone, so that only the installed copy can be imported
    r = subprocess.run([py, '-c', 'import sys, logocap_rt; print(logocap_rt.__file__); '
                        'import importlib.util as u; '
                        'print([m for m in ("torch", "mmengine", "mmcv", "mmpose") '
                        'if u.find_spec(m)])'],
                       capture_output=True, text=True, cwd=str(tmp_path), env=clean)
    assert r.returncode == 0, r.stderr[-3000:]
    assert str(env_dir) in r.stdout and r.stdout.strip().endswith('[]'), r.stdout
    out = tmp_path / 'out'
    img = IMAGES[0]
    r = subprocess.run([str(env_dir / 'bin' / 'logocap-rt'), path, img, '--out-dir', str(out),
                        '--no-draw'], capture_output=True, text=True, cwd=str(tmp_path),
                       env=clean, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(out / f'{osp.basename(img)}.json') as f:  # outputs carry the full file name
        got = json.load(f)
    assert got == json.loads(json.dumps(LogoCapONNX(path)(img))) and len(got) > 0
