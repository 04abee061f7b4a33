"""A converted reference checkpoint runs unchanged through `mim test` and MMPoseInferencer."""
import glob
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest

from logocap_mm.testing import REPO_ROOT as ROOT
BIN = osp.dirname(sys.executable)
TOOL = osp.join(ROOT, 'tools', 'convert_official_ckpt.py')
COCO = osp.join(ROOT, 'tests', 'data', 'coco')


@pytest.fixture(scope='module')
def converted(fixture_file, tmp_path_factory):
    src = fixture_file('ref_model.pth', 'converted-checkpoint runs')
    yaml_path = fixture_file('ref_config_full.yaml', 'converted-checkpoint runs')
    tmp = tmp_path_factory.mktemp('converted')
    dst = tmp / 'logocap_fixture.pth'
    cfg = tmp / 'logocap_fixture.py'
    r = subprocess.run(
        [sys.executable, TOOL, src, str(dst), '--ref-config', yaml_path,
         '--out-config', str(cfg)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    return str(cfg), str(dst), tmp


def _env():
    env = dict(os.environ)
    env['PATH'] = BIN + os.pathsep + env.get('PATH', '')
    env.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    env.setdefault('OMP_NUM_THREADS', '1')
    return env


def test_mim_test_runs_converted_checkpoint(converted):
    cfg, ckpt, tmp = converted
    ann = osp.join(COCO, 'test_coco.json')
    opts = [f'test_dataloader.dataset.data_root={COCO}/',
            'test_dataloader.dataset.ann_file=test_coco.json',
            'test_dataloader.dataset.data_prefix.img=',
            'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
            f'test_evaluator.ann_file={ann}']
    p = subprocess.run([osp.join(BIN, 'mim'), 'test', 'mmpose', cfg, '--checkpoint', ckpt,
                        '--gpus', '0', '--work-dir', str(tmp / 'test'),
                        '--cfg-options', *opts], cwd=ROOT, env=_env(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout[-4000:]
    assert re.search(r'coco/AP: [0-9.]+', p.stdout), p.stdout[-3000:]
    # the checkpoint was loaded (not silently random): no missing-key warning
    assert 'missing keys in source state_dict' not in p.stdout


def _reference_image(fixture_dir):
    """A per-image file of the folder at the converted config's test size (the yaml's
    DATASET.INPUT_SIZE) with the reference's final poses, and its image under tests/data."""
    import yaml
    from logocap_mm.testing import image_files, npz_keys
    with open(osp.join(fixture_dir, 'ref_config_full.yaml')) as f:
        size = int(yaml.safe_load(f)['DATASET']['INPUT_SIZE'])
    for path, s in image_files(fixture_dir):
        if s != size or 'final_full' not in npz_keys(path):
            continue
        with np.load(path) as z:
            name = osp.basename(str(z['file_name']))
        hits = sorted(glob.glob(osp.join(ROOT, 'tests', 'data', '**', name), recursive=True))
        if hits:
            return path, hits[0]
    pytest.skip(f'fixture folder {fixture_dir} has no per-image file at the test size {size} '
                "with key 'final_full' whose image is under tests/data: inferencer run of "
                'the converted checkpoint skipped')


def test_inferencer_runs_converted_checkpoint(converted, fixture_dir):
    cfg, ckpt, tmp = converted
    ref_path, img = _reference_image(fixture_dir)
    import logocap_mm  # noqa: F401
    from mmpose.apis import MMPoseInferencer
    inf = MMPoseInferencer(pose2d=cfg, pose2d_weights=ckpt, device='cpu',
                           show_progress=False)
    out = next(inf(img, vis_out_dir=str(tmp / 'vis')))
    preds = out['predictions'][0]
    # the fixture model (random calibrated weights) finds people on this image; the
    # reference's final 'full' poses at the test size are in the fixture: same count
    ref = np.load(ref_path)
    assert len(preds) == len(ref['final_full'])
    for p in preds:
        assert np.asarray(p['keypoints']).shape == (17, 2)
    assert os.listdir(tmp / 'vis')
