"""KEM matching of images with many ground-truth people: chunks of people keep the largest
intermediate within a budget and give the same bits as the one-pass matching."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from logocap_mm.models.adaptation.local_adaptation import LogoCapKemMatcher
from logocap_mm.models.utils.matching import (MATCH_CHUNK_ELEMENTS, kem_oks,
                                              match_kem_chunked, match_kem_targets)

SIG = [.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, .107, .107, .087,
       .087, .089, .089]


class _LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an op returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out, )):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def _problem(B, T, G, K=17, s=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    kem = torch.rand(B, T, s, s, K, 2, generator=g) * 200
    centre = kem[:, :, s // 2, s // 2]                                  # (B, T, K, 2)
    gt = torch.rand(B, G, K, 2, generator=g) * 200
    # some people near the candidates (matches that pass the gate), some duplicated (ties
    # across chunk borders), padding slots (all invisible)
    gt[:, :T] = centre + torch.randn(B, T, K, 2, generator=g)
    gt[:, G - T:] = gt[:, :T].clone()
    vis = (torch.rand(B, G, K, generator=g) > 0.2).float()
    vis[:, G - T:] = vis[:, :T].clone()
    vis[1:, G // 2:G // 2 + 3] = 0
    area = torch.rand(B, G, generator=g) * 4000 + 200
    area[:, G - T:] = area[:, :T].clone()
    return kem, gt, vis, area


@pytest.mark.parametrize('budget', [1, 5000, 3 * 4 * 17 * 25 * 2 * 7, 10 ** 9])
def test_chunked_matching_is_bit_identical(budget):
    kem, gt, vis, area = _problem(B=3, T=4, G=23)
    ref = match_kem_targets(kem_oks(kem, gt, vis, area, SIG), vis)
    got = match_kem_chunked(kem, gt, vis, area, SIG, max_elements=budget)
    assert ref.keep.any() and (ref.weights > 0).any()
    for name in ref._fields:
        assert torch.equal(getattr(got, name), getattr(ref, name)), name
    # the duplicates later in the list never win over their first copy
    assert (ref.assigned < 23 - 4).all()


def test_matcher_memory_is_bounded_for_crowded_images():
    """3000 ground-truth people: the one-pass matching makes a (B, T, G, K, s, s, 2)
    tensor of 10 million elements; the matcher's chunks stay within its budget."""
    B, T, G, K, s = 1, 4, 3000, 17, 5
    kem, gt, vis, area = _problem(B, T, G, K, s)
    budget = 2 ** 18
    matcher = LogoCapKemMatcher(SIG, max_elements=budget)
    poses = kem[:, :, s // 2, s // 2]
    with _LargestTensor() as mode:
        out = matcher(poses, kem, gt, vis, area).match
    assert mode.largest <= budget, mode.largest
    ref = match_kem_chunked(kem, gt, vis, area, SIG, max_elements=10 ** 9)
    assert torch.equal(out.oks_joints, ref.oks_joints)
    assert torch.equal(out.assigned, ref.assigned)
    with _LargestTensor() as mode:
        match_kem_targets(kem_oks(kem, gt, vis, area, SIG), vis)
    assert mode.largest == B * T * G * K * s * s * 2  # what the chunks avoid


def test_matcher_default_budget_and_errors():
    assert LogoCapKemMatcher(SIG).max_elements == MATCH_CHUNK_ELEMENTS == 2 ** 26
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match='max_elements must be a positive int'):
            LogoCapKemMatcher(SIG, max_elements=bad)
    kem, gt, vis, area = _problem(B=1, T=2, G=3)
    with pytest.raises(ValueError, match='G = 0'):
        match_kem_chunked(kem, gt[:, :0], vis[:, :0], area[:, :0], SIG)
