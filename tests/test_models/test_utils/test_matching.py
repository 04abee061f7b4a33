"""KEM-vs-GT OKS, assignment and gating (spec §5.4, §5.5): O/I equivalence and parity."""
import math
import os.path as osp

import numpy as np
import pytest
import torch

from logocap_mm.models.utils.kem import expansion_rates, local_kem_grid
from logocap_mm.models.utils.matching import kem_oks, match_kem_targets
from logocap_mm.testing import TRAIN_FILES, npz_keys

COCO_SIGMAS = torch.tensor([.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062,
                            .107, .107, .087, .087, .089, .089])


def test_oks_in_I_equals_oks_in_O_under_similarity():
    g = torch.Generator().manual_seed(0)
    B, T, G, K = 2, 4, 3, 17
    kem_O = torch.rand(B, T, 11, 11, K, 2, generator=g, dtype=torch.float64) * 400
    gt_O = kem_O[:, :G, 5, 5] + torch.randn(B, G, K, 2, generator=g, dtype=torch.float64) * 8
    vis = (torch.rand(B, G, K, generator=g) > 0.3).float()
    area_O = torch.rand(B, G, generator=g, dtype=torch.float64) * 5000 + 500
    s, th = 0.73, 0.4
    A = s * torch.tensor([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]],
                         dtype=torch.float64)
    t = torch.tensor([31.0, -7.5], dtype=torch.float64)

    def fwd(p, flip):
        q = p @ A.T + t
        if flip:
            q = torch.stack([511 - q[..., 0], q[..., 1]], -1)
        return q

    S_O = kem_oks(kem_O, gt_O, vis, area_O, COCO_SIGMAS)
    for flip in (False, True):
        S_I = kem_oks(fwd(kem_O, flip), fwd(gt_O, flip), vis, area_O * torch.det(A).abs(),
                      COCO_SIGMAS)
        assert torch.allclose(S_I, S_O, atol=1e-9)
    assert S_O.shape == (B, T, G, K, 11, 11)
    assert (S_O[vis[:, None, :, :, None, None].expand_as(S_O) == 0] == 0).all()


def test_match_known_answer():
    K, s = 3, 3
    kem = local_kem_grid(torch.zeros(1, 2, K, 2), torch.ones(K), size=s, radius=1.)
    gt = torch.tensor([[[[1., 0.], [1., 0.], [1., 0.]],       # at grid point (i=1, j=2)
                        [[50., 50.], [50., 50.], [50., 50.]]]])
    vis = torch.tensor([[[1., 1., 0.], [1., 1., 1.]]])
    S = kem_oks(kem, gt, vis, torch.tensor([[10., 10.]]), torch.full((K,), 0.5))
    out = match_kem_targets(S, vis)
    assert out.assigned.tolist() == [[0, 0]]
    assert out.oks_joints.shape == (1, 2, K, s, s)
    assert out.oks_joints[0, 0, 0, 1, 2] == 1 and out.oks_joints[0, 0, 2].abs().max() == 0
    # Q at the shift (1, 2): 2 exact keypoints out of 2 visible
    assert out.oks_person[0, 0, 1, 2].item() == pytest.approx(1.0)
    assert out.keep.all()
    w = out.weights[0, 0]
    c = out.oks_joints[0, 0, :, 1, 1]
    assert w[:2].tolist() == pytest.approx((1 - c[:2]).tolist())
    assert w[2] == 0
    # nothing passes the gate -> instance 0 kept with zero weights
    S2 = kem_oks(kem, gt + 30, vis, torch.tensor([[10., 10.]]), torch.full((K,), 0.5))
    out2 = match_kem_targets(S2, vis)
    assert out2.keep.tolist() == [[True, False]]
    assert (out2.weights == 0).all()
    with pytest.raises(ValueError, match='gt_vis'):
        match_kem_targets(S, vis[:, :1])


TRAIN_KEYS = ('P0_top30', 'affine_O2I', 'hflip')
TRAIN_IMAGE_KEYS = ('gt_kpts_O_{}', 'gt_areas_O_{}', 'oks_parts_{}', 'oks_person_{}',
                    'inst_keep_{}')


def _train_file(fixture_file, require, name, stage, extra=()):
    """The training-forward file ``name`` (skipped naming it, or its missing keys) and the
    side of its square training canvas (I px)."""
    path = fixture_file(name, stage)
    require(path, TRAIN_KEYS, stage)
    z = dict(np.load(path))
    require(path, [k.format(b) for b in range(len(z['hflip'])) for k in TRAIN_IMAGE_KEYS] +
            list(extra), stage)
    # the canvas side: from the input stored in this file or in train_forward.npz (the
    # injected file does not repeat the input)
    for src in (path, osp.join(osp.dirname(path), 'train_forward.npz')):
        if osp.isfile(src) and 'input_uint8_hwc' in npz_keys(src):
            with np.load(src) as zi:
                return z, int(zi['input_uint8_hwc'].shape[2])
    pytest.skip(f'{name} (and train_forward.npz) has no key \'input_uint8_hwc\' (training '
                f'canvas size): {stage} skipped')


def _gt_in_I(z, b, width):
    """GT keypoints (G, K, 2) and areas (G,) of image b in I, float64; visibility (G, K)."""
    T = torch.from_numpy(z['affine_O2I'][b]).double()
    gt = torch.from_numpy(z['gt_kpts_O_%d' % b]).double()
    xy = gt[..., :2] @ T[:2, :2].T + T[:2, 2]
    if z['hflip'][b]:
        xy[..., 0] = width - 1 - xy[..., 0]
    area_I = torch.from_numpy(z['gt_areas_O_%d' % b]).double() * torch.det(T[:2, :2]).abs()
    return xy, area_I, (gt[..., 2] > 0).float()


@pytest.mark.parametrize('name', TRAIN_FILES)
def test_training_parity(name, fixture_file, require):
    """OKS in I (area_I = area_O * |det|) reproduces the reference's OKS computed in O, and
    the kept instances, in batch order, are the reference's KAM targets."""
    stage = 'training OKS parity'
    z, width = _train_file(fixture_file, require, name, stage, extra=('oks_joints_target', ))
    r = expansion_rates(COCO_SIGMAS)
    kem = local_kem_grid(torch.from_numpy(z['P0_top30']), r)             # (B, 30, s, s, K, 2)
    for b in range(len(z['hflip'])):
        xy, area_I, vis = _gt_in_I(z, b, width)
        S = kem_oks(kem[b:b + 1].double(), xy[None], vis[None], area_I[None], COCO_SIGMAS)
        out = match_kem_targets(S.float(), vis[None])
        parts = torch.from_numpy(z['oks_parts_%d' % b])           # (30, 11, 11, 17)
        mine = out.oks_joints[0].permute(0, 2, 3, 1)
        assert (mine - parts).abs().max().item() < 1e-4, (name, b)
        person = torch.from_numpy(z['oks_person_%d' % b])
        assert (out.oks_person[0] - person).abs().max().item() < 1e-4
        assert torch.equal(out.keep[0], torch.from_numpy(z['inst_keep_%d' % b]))
    keep = np.concatenate([z['inst_keep_%d' % b] for b in range(len(z['hflip']))])
    parts = np.concatenate([z['oks_parts_%d' % b] for b in range(len(z['hflip']))])[keep]
    assert np.abs(parts.transpose(0, 3, 1, 2) - z['oks_joints_target']).max() < 1e-6


def test_weights_reproduce_reference_oks_loss(fixture_file, require):
    """Spec §5.5 with our weights and the stored KAMs gives the reference's loss_oks."""
    stage = 'OKS loss parity'
    z, width = _train_file(fixture_file, require, 'train_forward_injected.npz', stage,
                           extra=('kam_raw', 'loss_oks'))
    factor = float(z['loss_factors'][2]) if 'loss_factors' in z else 0.01  # OKS factor
    r = expansion_rates(COCO_SIGMAS)
    kem = local_kem_grid(torch.from_numpy(z['P0_top30']), r)
    w_all, t_all, passed = [], [], []
    for b in range(len(z['hflip'])):
        xy, area_I, vis = _gt_in_I(z, b, width)
        out = match_kem_targets(kem_oks(kem[b:b + 1].double(), xy[None], vis[None],
                                        area_I[None], COCO_SIGMAS).float(), vis[None])
        keep = out.keep[0]
        w_all.append(out.weights[0][keep])
        t_all.append(out.oks_joints[0][keep])
        passed.append(out.oks_person[0][keep].flatten(1).amax(1) >= 0.5)
    w, tgt, passed = torch.cat(w_all), torch.cat(t_all), torch.cat(passed)
    kam = torch.from_numpy(z['kam_raw'])
    per = (w[..., None, None] * (kam - tgt) ** 2).mean((1, 2, 3))
    loss = factor * per.sum() / max(1, int(passed.sum()))
    assert loss.item() == pytest.approx(float(z['loss_oks']), rel=1e-3)
