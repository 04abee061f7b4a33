"""Pose NMS (spec §2.9): reference parity, known answers, batch vectorisation."""
import numpy as np
import pytest
import torch

from logocap_mm.models.utils.pose_nms import pose_nms


def _loop_nms(kpts, scores, thr=0.05, num=8):
    """Straight transcription of the greedy rule, one image, for cross-checking."""
    n = kpts.shape[0]
    wh = kpts.amax(1) - kpts.amin(1)
    diag = wh.pow(2).sum(-1).sqrt()
    dist = (kpts[:, None] - kpts[None]).pow(2).sum(-1).sqrt()
    dup = (dist < thr * diag[:, None, None]).sum(2) > num
    processed, keep = set(), []
    for i in range(n):
        if i in processed:
            continue
        grp = dup[i].nonzero()[:, 0].tolist()
        if not grp:
            continue
        k = grp[int(torch.argmax(scores[grp]))]
        if k in processed:
            continue
        keep.append(k)
        processed.update(grp)
    return keep


def _ranks_to_keep(rank):
    kept = (rank >= 0).nonzero()[:, 0]
    return kept[rank[kept].argsort()].tolist()


@pytest.mark.parametrize('lvl', ['full', 'partial', 'none'])
def test_nms_parity_with_reference(fixture_image, require, lvl):
    f, _ = fixture_image
    require(f, ('affine_I2O', f'poses_{lvl}', f'pose_scores_{lvl}', f'nms_keep_{lvl}'),
            f'pose NMS ({lvl})')
    z = np.load(f)
    A = torch.from_numpy(z['affine_I2O']).double()
    poses = torch.from_numpy(z['poses_%s' % lvl])
    xy = poses[..., :2].double()
    xo = (xy @ A[:, :2].T + A[:, 2]).float()                      # the reference's frame O
    scores = torch.from_numpy(z['pose_scores_%s' % lvl])
    rank = pose_nms(xo[None], scores[None], torch.ones(1, len(scores), dtype=torch.bool))
    assert _ranks_to_keep(rank[0]) == z['nms_keep_%s' % lvl].tolist(), (f, lvl)


def test_nms_known_answers():
    base = torch.rand(17, 2) * 100
    poses = torch.stack([base, base + 0.5, base + 50, torch.zeros(17, 2), base + 0.4])
    scores = torch.tensor([0.5, 0.9, 0.3, 0.8, 0.1])
    rank = pose_nms(poses[None], scores[None], torch.ones(1, 5, dtype=torch.bool))[0]
    # 0, 1, 4 are duplicates -> keep 1 (highest); 2 separate; 3 has diag 0 -> dropped
    assert rank.tolist() == [-1, 0, 1, -1, -1]
    # invalid slots are ignored
    valid = torch.tensor([[True, False, True, True, True]])
    rank = pose_nms(poses[None], scores[None], valid)[0]
    assert rank.tolist() == [0, -1, 1, -1, -1]


def test_nms_batch_matches_loop():
    g = torch.Generator().manual_seed(0)
    B, T, K = 4, 30, 17
    centres = torch.rand(B, 8, 1, 2, generator=g) * 300
    templ = torch.randn(1, 1, K, 2, generator=g) * 30
    pick = torch.randint(0, 8, (B, T), generator=g)
    kp = centres.gather(1, pick[..., None, None].expand(B, T, 1, 2)) + templ
    kp = kp + torch.randn(B, T, K, 2, generator=g) * torch.rand(B, T, 1, 1, generator=g) * 3
    scores = torch.rand(B, T, generator=g)
    valid = torch.rand(B, T, generator=g) > 0.1
    rank = pose_nms(kp, scores, valid)
    for b in range(B):
        idx = valid[b].nonzero()[:, 0]
        ref = [int(idx[i]) for i in _loop_nms(kp[b, idx], scores[b, idx])]
        assert _ranks_to_keep(rank[b]) == ref
        assert len(ref) < len(idx)
