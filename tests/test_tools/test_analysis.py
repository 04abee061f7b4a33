"""tools/analysis/kem_upper_bound.py: known answers of the KEM upper bound, the O -> I
ground-truth mapping, and the CLI smoke path on tests/data/coco with a tiny random model."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch

from logocap_mm.testing import REPO_ROOT as ROOT
from logocap_mm.testing import load_tool

COCO_SIGMAS = [.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, .107, .107,
               .087, .087, .089, .089]


ub = load_tool('tools/analysis/kem_upper_bound.py')


def test_best_kem_poses_known_answer():
    from logocap_mm.models.utils.kem import expansion_rates, local_kem_grid
    K = 17
    sig = torch.tensor(COCO_SIGMAS, dtype=torch.float64)
    rates = expansion_rates(sig)
    g = torch.rand(2, K, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    gt = torch.stack([g[0] * 40 + 20, g[1] * 40 + 150])[None]      # (1, 2, K, 2), far apart
    vis = torch.ones(1, 2, K, dtype=torch.float64)
    vis[0, 1, 3] = 0                                                 # unlabelled keypoint
    area = torch.tensor([[900., 1600.]], dtype=torch.float64)
    # pose 0 near person 1 with on-grid shifts (2, -1) * r_k; pose 1 near person 0 with
    # a shift of 9 grid steps in x: beyond the window (radius 5) -> clipped to the edge
    p0 = torch.stack([gt[0, 1] - torch.tensor([2., -1.], dtype=torch.float64) * rates[:, None],
                      gt[0, 0] - torch.tensor([9., 0.], dtype=torch.float64) * rates[:, None]])
    kem = local_kem_grid(p0[None], rates, 11, 5.)                   # (1, 2, 11, 11, K, 2)
    poses, assigned, oks = ub.best_kem_poses(kem, gt, vis, area, sig)
    assert assigned.tolist() == [[1, 0]]
    lab = vis[0, 1] > 0
    torch.testing.assert_close(poses[0, 0][lab], gt[0, 1][lab])
    torch.testing.assert_close(oks[0, 0][lab], torch.ones(int(lab.sum()), dtype=torch.float64))
    torch.testing.assert_close(poses[0, 0, 3], p0[0, 3])           # unlabelled: stays at P0
    assert oks[0, 0, 3] == 0
    want = gt[0, 0] - torch.tensor([4., 0.], dtype=torch.float64) * rates[:, None]
    torch.testing.assert_close(poses[0, 1], want)
    # never worse than P0, keypoint by keypoint
    from logocap_mm.models.utils.matching import kem_oks
    S = kem_oks(kem, gt, vis, area, sig)
    centre = S[0, torch.arange(2), assigned[0], :, 5, 5]             # (2, K)
    assert (oks[0] >= centre - 1e-12).all()
    # no people -> empty
    e = ub.best_kem_poses(kem[:, :0], gt, vis, area, sig)
    assert e[0].shape == (1, 0, K, 2)


class _DS:
    def __init__(self, metainfo):
        self.metainfo = metainfo


def test_gt_in_input_frame_inverts_mmpose_mapping():
    K = 17
    rng = np.random.default_rng(1)
    kp = np.concatenate([rng.uniform(0, 300, (2, K, 2)), np.full((2, K, 1), 2.)], -1)
    kp[1, 4] = 0
    anns = [dict(keypoints=kp[0].reshape(-1).tolist(), area=1000., iscrowd=0, num_keypoints=17),
            dict(keypoints=kp[1].reshape(-1).tolist(), area=500., iscrowd=0, num_keypoints=16),
            dict(keypoints=[0] * 51, area=300., iscrowd=1, num_keypoints=0)]
    meta = dict(raw_ann_info=anns, input_center=np.array([160., 120.]),
                input_scale=np.array([320., 240.]), input_size=(256, 192))
    kpts, vis, area = ub.gt_in_input_frame([_DS(meta)], K, 'cpu', torch.float64)
    assert kpts.shape == (1, 2, K, 2)
    size, scale, centre = np.array([256., 192.]), meta['input_scale'], meta['input_center']
    back = kpts[0].numpy() / size * scale + centre - 0.5 * scale    # MMPose I -> O
    np.testing.assert_allclose(back, kp[..., :2], atol=1e-9)
    assert vis[0, 1, 4] == 0 and vis[0].sum() == 33
    np.testing.assert_allclose(area[0].numpy(), [1000 * 0.64, 500 * 0.64])
    with pytest.raises(ValueError, match='input_center'):
        ub.gt_in_input_frame([_DS(dict(raw_ann_info=anns))], K, 'cpu', torch.float64)


@pytest.fixture(scope='module')
def tiny_ckpt(tmp_path_factory):
    import logocap_mm  # noqa: F401
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS
    init_default_scope('mmpose')
    torch.manual_seed(0)
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'logocap', 'tiny_coco_demo.py'))
    model = MODELS.build(cfg.model)
    path = str(tmp_path_factory.mktemp('ck') / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


def test_cli_smoke_on_bundled_coco(tiny_ckpt, tmp_path):
    cfg = osp.join(ROOT, 'configs', 'logocap', 'tiny_coco_demo.py')
    out = str(tmp_path / 'ub')
    summary = ub.main([cfg, tiny_ckpt, '--out-dir', out, '--max-images', '2',
                       '--cfg-options', 'data_root=tests/data/coco/',
                       'model.test_cfg.flip_test=false'])
    with open(osp.join(out, 'kem_upper_bound.json')) as f:
        saved = json.load(f)
    assert saved['images'] == summary['images'] == 2
    for lv in ('none', 'upper', 'full'):
        assert 0. <= saved['ap'][lv] <= 1.
        assert 'coco/AP' in saved['metrics'][lv]
    with open(osp.join(out, 'kem_upper_bound.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert sorted(os.listdir(out)) == ['kem_upper_bound.json', 'kem_upper_bound.png'] + [
        f'preds_{lv}.keypoints.json' for lv in ('full', 'none', 'upper')]
    with open(osp.join(ROOT, 'tests', 'data', 'coco', 'test_coco.json')) as f:
        ids = {i['id'] for i in json.load(f)['images']}
    with open(osp.join(out, 'preds_full.keypoints.json')) as f:
        preds = json.load(f)
    assert all(p['image_id'] in ids and len(p['keypoints']) == 51 for p in preds)
    with pytest.raises(ValueError, match='max-images'):
        ub.main([cfg, tiny_ckpt, '--out-dir', out, '--max-images', '0'])
