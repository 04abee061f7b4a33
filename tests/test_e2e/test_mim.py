"""End-to-end runner tests: ``mim train`` / ``mim test`` / ``--resume`` / ``load_from`` and a
2-process CPU (gloo) distributed run, as subprocesses on the bundled data with the tiny
configs in tests/configs (about 1 s per iteration on CPU).

Nothing here sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``: every checkpoint the Runner writes is
loaded back through mmengine's loader: ``torch.load(weights_only=True)`` with logocap_mm's
allow-list, which exists only while the loader runs.
"""
import os
import os.path as osp
import re
import shutil

import pytest

from logocap_mm.testing import BIN, mim, run_command
from logocap_mm.testing import REPO_ROOT as ROOT
TINY_COCO = 'tests/configs/tiny_coco.py'
TINY_OCHUMAN = 'tests/configs/tiny_ochuman.py'
TINY_CROWDPOSE = 'tests/configs/tiny_crowdpose.py'

# what a CPU DDP run needs: gloo, and DDP without device_ids for a CPU module (mmengine's
# `torch.cuda.set_device` call is made a no-op on CUDA-less machines by logocap_mm.compat)
CPU_DDP_OPTIONS = ['env_cfg.dist_cfg.backend=gloo',
                   'model_wrapper_cfg.type=MMDistributedDataParallel',
                   'model_wrapper_cfg.device_ids=None']


def test_metrics(log):
    """The metrics dict of the last ``Epoch(test)`` line of a log."""
    lines = [ln for ln in log.splitlines() if 'Epoch(test)' in ln and '/AP:' in ln]
    assert lines, 'no test metrics line in the log:\n' + log[-3000:]
    pairs = re.findall(r'(\w+/[\w .()]+?): (-?\d+\.\d+)', lines[-1])
    return {k.strip(): float(v) for k, v in pairs}


test_metrics.__test__ = False  # a helper, not a test


def _check_metrics(metrics, prefix):
    for key in ('AP', 'AP .5', 'AP .75', 'AR', 'AR .5'):
        assert f'{prefix}/{key}' in metrics, (key, metrics)
        v = metrics[f'{prefix}/{key}']
        assert v == -1.0 or 0.0 <= v <= 1.0, (key, v)


@pytest.fixture(scope='module')
def trained(tiny_coco_trained):
    """One ``mim train`` iteration of the tiny COCO model (shared with the other end-to-end
    tests, tests/test_e2e/conftest.py); (work_dir, log)."""
    return tiny_coco_trained


def test_train_writes_checkpoint_loadable_weights_only(trained):
    work, log = trained
    assert re.search(r'Epoch\(train\) \[1\]\[1/1\].*loss: \d', log), log[-3000:]
    assert 'Saving checkpoint at 1 epochs' in log
    ckpt = osp.join(work, 'epoch_1.pth')
    assert osp.isfile(ckpt)
    import torch

    import logocap_mm  # noqa: F401  (weights-only allow-list)
    from mmengine.runner.checkpoint import _load_checkpoint  # weights_only=True
    state = _load_checkpoint(ckpt, map_location='cpu')
    assert {'meta', 'state_dict', 'message_hub', 'optimizer'} <= set(state)
    assert state['meta']['epoch'] == 1 and state['meta']['iter'] == 1
    assert state['meta']['dataset_meta']['num_keypoints'] == 17
    assert any(k.startswith('head.local_adaptation.cmp.layers.') for k in state['state_dict'])
    assert any(k.startswith('backbone.stage4.') for k in state['state_dict'])


@pytest.mark.parametrize('cfg,prefix', [(TINY_COCO, 'coco'), (TINY_OCHUMAN, 'coco')],
                         ids=['coco', 'ochuman'])
def test_mim_test_prints_metrics(trained, tmp_path, cfg, prefix):
    work, _ = trained
    rc, log = mim('test', 'mmpose', cfg, '--checkpoint', osp.join(work, 'epoch_1.pth'),
                  '--work-dir', str(tmp_path / 'test'), '--gpus', '0')
    assert rc == 0, log[-4000:]
    assert 'Load checkpoint from' in log
    assert 'do not match' not in log  # the whole state dict was loaded
    assert 'Average Precision' in log  # the COCO-style summary table
    n_img = 3 if 'ochuman' in cfg else 4
    assert re.search(rf'Epoch\(test\) \[{(n_img + 1) // 2}/{(n_img + 1) // 2}\]', log)
    _check_metrics(test_metrics(log), prefix)


def test_mim_test_crowdpose(tmp_path):
    """14-keypoint model: a checkpoint built from the config, then ``mim test`` (CrowdPose
    metric with its 'keypoints_crowd' evaluation, prefix ``crowdpose/``) with predictions
    dumped to check their shape."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import logocap_mm  # noqa: F401
    from mmpose.registry import MODELS
    init_default_scope('mmpose')
    cfg = Config.fromfile(osp.join(ROOT, TINY_CROWDPOSE))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'crowdpose_tiny.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': 0}}, ckpt)
    dump = str(tmp_path / 'preds.pkl')
    rc, log = mim('test', 'mmpose', TINY_CROWDPOSE, '--checkpoint', ckpt,
                  '--work-dir', str(tmp_path / 'test'), '--gpus', '0', '--dump', dump)
    assert rc == 0, log[-4000:]
    assert 'do not match' not in log
    metrics = test_metrics(log)
    _check_metrics(metrics, 'crowdpose')
    for key in ('AP(E)', 'AP(M)', 'AP(H)'):  # the CrowdPose-specific easy/medium/hard APs
        assert f'crowdpose/{key}' in metrics, metrics
    import pickle
    with open(dump, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 2
    for p in preds:
        kpts = p['pred_instances']['keypoints']
        assert kpts.ndim == 3 and kpts.shape[1:] == (14, 2), kpts.shape
        assert p['pred_instances']['keypoint_scores'].shape == kpts.shape[:2]


def test_resume_continues_iterations(trained, tmp_path):
    work, _ = trained
    resumed = str(tmp_path / 'resume')
    shutil.copytree(work, resumed)
    rc, log = mim('train', 'mmpose', TINY_COCO, '--work-dir', resumed, '--gpus', '0',
                  '--resume', '--cfg-options', 'train_cfg.max_epochs=2')
    assert rc == 0, log[-4000:]
    assert 'resumed epoch: 1, iter: 1' in log, log[-3000:]
    assert 'Epoch(train) [1]' not in log  # epoch 1 is not trained again
    assert re.search(r'Epoch\(train\) \[2\]\[1/1\]', log)
    import torch

    import logocap_mm  # noqa: F401
    from mmengine.runner.checkpoint import _load_checkpoint  # weights_only=True
    state = _load_checkpoint(osp.join(resumed, 'epoch_2.pth'), map_location='cpu')
    assert state['meta']['epoch'] == 2 and state['meta']['iter'] == 2


def test_distributed_cpu_gloo_with_load_from(trained, tmp_path):
    """`mim train --launcher pytorch --gpus 2` on CPU: 2 processes, gloo, ``load_from``."""
    work, _ = trained
    dist_dir = str(tmp_path / 'dist')
    port = str(29500 + os.getpid() % 1000)
    rc, log = run_command([osp.join(BIN, 'mim'), 'train', 'mmpose', TINY_COCO, '--launcher', 'pytorch',
                   '--gpus', '2', '--port', port, '--work-dir', dist_dir,
                   '--cfg-options', *CPU_DDP_OPTIONS,
                   'train_dataloader.batch_size=2', 'train_cfg.max_epochs=2',
                   f'load_from={osp.join(work, "epoch_1.pth")}'],
                  OMP_NUM_THREADS='1')
    assert rc == 0, log[-4000:]
    assert 'Distributed training: True' in log
    assert re.search(r"dist_cfg.*'backend': 'gloo'", log)
    assert 'Load checkpoint from' in log
    # 4 images / (2 processes x batch 2) = 1 iteration per epoch
    assert re.search(r'Epoch\(train\) \[2\]\[1/1\]', log), log[-3000:]
    assert osp.isfile(osp.join(dist_dir, 'epoch_2.pth'))


def test_runner_load_rejects_checkpoint_of_other_architecture(tmp_path):
    """The call ``mim test``/``load_from`` make (``load_checkpoint(..., strict=False)``) with
    a 14-keypoint checkpoint on the 17-keypoint model must fail and name the bad keys
    (mmengine alone only warns and goes on with random weights; LogoCapPoseEstimator checks)."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner.checkpoint import load_checkpoint

    import logocap_mm  # noqa: F401
    from mmpose.registry import MODELS
    init_default_scope('mmpose')
    other = MODELS.build(Config.fromfile(osp.join(ROOT, TINY_CROWDPOSE)).model)
    ckpt = str(tmp_path / 'crowdpose14.pth')
    torch.save({'state_dict': other.state_dict(), 'meta': {}}, ckpt)
    model = MODELS.build(Config.fromfile(osp.join(ROOT, TINY_COCO)).model)
    with pytest.raises(ValueError, match=r'head\.heatmap_final\.weight.*\(15, 8, 1, 1\)'):
        load_checkpoint(model, ckpt, map_location='cpu', strict=False)
