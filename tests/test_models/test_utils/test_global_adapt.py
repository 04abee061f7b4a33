"""Global adaptation (spec §2.7-2.10): known answers, reference parity, fast == plain."""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from logocap_mm.codecs.decode_utils import sample_heatmaps_at_poses
from logocap_mm.models.utils import global_adapt as ga
from logocap_mm.models.utils.kem import expansion_rates, local_kem_grid

COCO_SIGMAS = [.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, .107, .107,
               .087, .087, .089, .089]


def test_gaussian_window_values():
    g = ga.gaussian_window(97, 16.)
    assert g.shape == (97, 97)
    assert g[48, 48] == 1
    assert g[0, 0].item() == pytest.approx(np.exp(-9.0), rel=1e-5)     # 1.23e-4, not cut
    assert g[48, 0].item() == pytest.approx(np.exp(-4.5), rel=1e-5)
    assert ga.gaussian_window(101, 16.)[0, 0] == 0                       # below 1e-4: zeroed
    with pytest.raises(ValueError, match='size'):
        ga.gaussian_window(96)


def test_one_hot_kam_shifts_delta():
    S, k = 21, 11
    G = torch.zeros(1, 1, S, S)
    G[0, 0, 10, 10] = 1.0
    for i, j in [(5, 5), (0, 0), (2, 9), (10, 3)]:
        kam = torch.zeros(1, 1, k, k)
        kam[0, 0, i, j] = 1.0
        R = ga.kam_convolution(G, kam)
        a, b = divmod(int(R.flatten().argmax()), S)
        assert (b - 10, a - 10) == (j - 5, i - 5)                      # (+(j-5), +(i-5))
        assert R.max().item() == pytest.approx(1 / 121)


def test_top2_decode_known_answer():
    R = torch.zeros(2, 3, 97, 97)
    R[0, 1, 40, 60] = 2.0
    R[0, 1, 44, 52] = 1.0
    off, v = ga.top2_decode(R)
    assert off[0, 1].tolist() == pytest.approx([0.75 * 60 + 0.25 * 52 - 48,
                                                0.75 * 40 + 0.25 * 44 - 48])
    assert v[0, 1].item() == pytest.approx(0.75 * 2 + 0.25 * 1)


def test_window_sampling_geometry():
    # a linear ramp is reproduced exactly inside the map: window[a, b] = map(P0 + (b-c, a-c))
    H, W = 200, 300
    yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing='ij')
    maps = torch.stack([xx + 1000 * yy, 2 * xx])[None]                 # (1, 2, H, W)
    P0 = torch.tensor([[[[120.25, 90.5], [150.75, 100.0]]]])
    win = ga.sample_windows(maps, P0, 9)
    a, b = 2, 7
    assert win[0, 0, 0, a, b].item() == pytest.approx(120.25 + b - 4 + 1000 * (90.5 + a - 4))
    assert win[0, 0, 1, a, b].item() == pytest.approx(2 * (150.75 + b - 4))


def _plain_vs_fast(Hr, P0, kam, valid=None):
    """The plain path against the fast one and against the exported graph's (per-slot loop
    on windows from one integer crop)."""
    kp0, v0 = ga.global_adaptation(Hr, P0, kam, fast=False, valid=valid)
    for opts in (dict(fast=True), dict(fast=False, per_slot=True)):
        kp1, v1 = ga.global_adaptation(Hr, P0, kam, valid=valid, **opts)
        # values: float rounding only; positions: equal (no near-ties in these inputs)
        assert (v0 - v1).abs().max().item() <= 1e-5 * max(1.0, v0.abs().max().item()), opts
        assert torch.equal(kp0, kp1), opts
    return kp0, v0


def _synthetic(T=30, K=17, H=192, W=256, seed=0, noise=0.02):
    g = torch.Generator().manual_seed(seed)
    h, w = H // 4, W // 4
    gt = torch.rand(T, K, 2, generator=g) * torch.tensor([w - 1., h - 1.])
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing='ij')
    d = (xx - gt[..., 0, None, None]) ** 2 + (yy - gt[..., 1, None, None]) ** 2
    hm = torch.exp(-d / 8.0).amax(0) + noise * torch.randn(K, h, w, generator=g)
    Hr = F.interpolate(hm[None], (H, W), mode='bilinear', align_corners=False)
    P0 = (gt * 4 + 6 * torch.randn(T, K, 2, generator=g))[None]
    kam = torch.rand(1, T, K, 11, 11, generator=g)
    return Hr, P0, kam


def test_fast_equals_plain_synthetic():
    Hr, P0, kam = _synthetic()
    _plain_vs_fast(Hr, P0, kam)
    # peaky KAMs (one-hot-like) and un-clamped (negative) kernels
    _plain_vs_fast(Hr, P0, (kam > 0.95).float())
    _plain_vs_fast(Hr, P0, kam * 2 - 0.5)


def test_fast_equals_plain_borders_and_batch():
    Hr, P0, kam = _synthetic(T=6, K=3, H=64, W=96, seed=3, noise=0.3)
    Hr2, P02, kam2 = _synthetic(T=6, K=3, H=64, W=96, seed=4, noise=0.3)
    Hr, P0, kam = torch.cat([Hr, Hr2]), torch.cat([P0, P02]), torch.cat([kam, kam2])
    # windows partly and fully off the canvas, and exactly on the last pixel row/column
    P0[0, 0] = torch.tensor([[-300., 20.], [95.0, 63.0], [500., 400.]])
    P0[1, 1] = torch.tensor([[95.5, 10.25], [-0.75, 63.5], [40.0, -200.]])
    valid = torch.ones(2, 6, dtype=torch.bool)
    valid[1, 3] = False
    kp, v = _plain_vs_fast(Hr, P0, kam, valid)
    assert torch.equal(kp[1, 3], P0[1, 3]) and (v[1, 3] == 0).all()
    # batch 2 == two batch-1 calls
    for b in range(2):
        kpb, vb = ga.global_adaptation(Hr[b:b + 1], P0[b:b + 1], kam[b:b + 1])
        assert torch.equal(kpb[0, valid[b]], kp[b, valid[b]])


def test_global_adaptation_bad_input():
    Hr, P0, kam = _synthetic(T=2, K=3, H=32, W=32)
    with pytest.raises(ValueError, match='kams'):
        ga.global_adaptation(Hr, P0, kam[..., :10, :10])
    with pytest.raises(ValueError, match='poses'):
        ga.global_adaptation(Hr, P0[..., :2, :], kam)
    with pytest.raises(ValueError, match='lam'):
        ga.global_adaptation(Hr, P0, kam, lam=1.5)



def test_kam_convolution_per_slot_equals_grouped():
    """The slot loop gives the grouped convolution's values, one-hot KAMs shift as there,
    and zero slots give an empty response."""
    g = torch.Generator().manual_seed(3)
    G = torch.rand(4, 3, 21, 21, generator=g)
    kam = torch.rand(4, 3, 5, 5, generator=g)
    R = ga.kam_convolution_per_slot(G, kam)
    assert R.shape == (4, 3, 21, 21)
    assert (R - ga.kam_convolution(G, kam)).abs().max().item() < 1e-6
    delta = torch.zeros(2, 1, 21, 21)
    delta[:, 0, 10, 10] = 1.
    hot = torch.zeros(2, 1, 5, 5)
    hot[0, 0, 0, 4], hot[1, 0, 3, 1] = 1., 1.
    R = ga.kam_convolution_per_slot(delta, hot)
    for n, (i, j) in enumerate([(0, 4), (3, 1)]):
        a, b = divmod(int(R[n, 0].argmax()), 21)
        assert (b - 10, a - 10) == (j - 2, i - 2) and R[n].max().item() == pytest.approx(1 / 25)
    assert ga.kam_convolution_per_slot(G[:0], kam[:0]).shape == (0, 3, 21, 21)
    with pytest.raises(ValueError, match='share'):
        ga.kam_convolution_per_slot(G, kam[:3])
    # the full refinement through the loop (and cropped windows) equals the grouped one
    Hr = torch.rand(1, 3, 40, 50, generator=g)
    P0 = torch.rand(1, 4, 3, 2, generator=g) * 40
    kp0, v0 = ga.global_adaptation(Hr, P0, kam[None], size=21, fast=False)
    kp1, v1 = ga.global_adaptation(Hr, P0, kam[None], size=21, fast=False, per_slot=True)
    assert torch.equal(kp0, kp1) and (v0 - v1).abs().max().item() < 1e-6

def _load(f):
    z = np.load(f)
    H_I, W_I = [int(v) for v in z['input_size_hw']]
    Hr = F.interpolate(torch.from_numpy(z['heatmaps'])[None], (H_I, W_I), mode='bilinear',
                       align_corners=False)
    return z, Hr


def test_global_parity_with_reference(fixture_image, require):
    f = fixture_image[0]
    require(f, ('heatmaps', 'P0', 'kam_raw', 'global_top3_val', 'refined_full',
                'refined_partial', 'refined_none'), 'global adaptation parity')
    z, Hr = _load(f)
    P0 = torch.from_numpy(z['P0'])[None]
    kam = torch.from_numpy(z['kam_raw']).clamp(0, 1)[None]
    if 'global_in' in z.files:
        G = ga.sample_windows(Hr[:, :17], P0[:, :1])[0] * ga.gaussian_window()
        assert (G - torch.from_numpy(z['global_in'])).abs().max().item() < 1e-4
        R = ga.kam_convolution(G, kam[0, :1])
        assert (R - torch.from_numpy(z['global_out'])).abs().max().item() < 1e-5
    tv = torch.from_numpy(z['global_top3_val'])
    gap = torch.minimum(tv[..., 0] - tv[..., 1], tv[..., 1] - tv[..., 2]) / tv[..., 0].abs()
    rf = torch.from_numpy(z['refined_full'])
    for fast in (False, True):
        kp, v = ga.global_adaptation(Hr[:, :17], P0, kam, fast=fast)
        d = (kp[0] - rf[..., :2]).abs().amax(-1)
        # one top-2 swap allowed where the reference's relative gap is below 1e-5
        assert ((d > 1e-3) & (gap >= 1e-5)).sum() == 0, (f, fast)
        assert ((d > 1e-3) & (gap < 1e-5)).sum() <= 1
        assert (v[0] - rf[..., 2]).abs().max().item() < 1e-5
    # 'partial' and 'none'
    kem = local_kem_grid(P0, expansion_rates(COCO_SIGMAS))
    kp, v = ga.partial_decode(kem, kam)
    rp = torch.from_numpy(z['refined_partial'])
    assert (kp[0] - rp[..., :2]).abs().max().item() < 1e-3
    assert (v[0] - rp[..., 2]).abs().max().item() < 1e-5
    v = sample_heatmaps_at_poses(Hr[:, :17], P0)
    rn = torch.from_numpy(z['refined_none'])
    assert (v[0] - rn[..., 2]).abs().max().item() < 1e-5


def test_partial_decode_first_maximum():
    kem = local_kem_grid(torch.zeros(1, 2, 2), torch.ones(2), size=3, radius=1.)
    kams = torch.zeros(1, 2, 3, 3)
    kams[0, 0, 1, 2] = 1.0
    kams[0, 0, 2, 0] = 1.0            # a later tie: the first (i=1, j=2) wins
    kams[0, 1] = 0.5                  # all equal: index 0 (i=0, j=0)
    kp, v = ga.partial_decode(kem, kams)
    assert kp[0, 0].tolist() == [1.0, 0.0] and v[0, 0] == 1
    assert kp[0, 1].tolist() == [-1.0, -1.0] and v[0, 1] == 0.5


def test_kam_convolution_gradients_equal_the_native_convolution():
    """The CPU training path (backward as two depthwise convolution forwards) gives the
    gradients of PyTorch's own grouped conv2d, w.r.t. windows and KAMs, and passes a
    float64 gradcheck; without grad it is the plain convolution."""
    from logocap_mm.models.utils.global_windows import _DepthwiseConv
    g = torch.Generator().manual_seed(0)
    win = torch.rand(2, 3, 4, 13, 13, generator=g, dtype=torch.float64, requires_grad=True)
    kam = torch.rand(2, 3, 4, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    out = ga.kam_convolution(win, kam)
    assert 'DepthwiseConv' in type(out.grad_fn.next_functions[0][0]).__name__
    up = torch.randn(out.shape, generator=g, dtype=torch.float64)
    gw, gk = torch.autograd.grad(out, (win, kam), up)
    kern = torch.flip(kam.reshape(24, 1, 5, 5) / 25., [2, 3])
    ref = F.conv2d(win.reshape(1, 24, 13, 13), kern, padding=2, groups=24).reshape(out.shape)
    rw, rk = torch.autograd.grad(ref, (win, kam), up)
    assert torch.allclose(out, ref, atol=0, rtol=0)
    assert torch.allclose(gw, rw, atol=1e-12) and torch.allclose(gk, rk, atol=1e-12)
    x = torch.rand(1, 3, 7, 7, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.rand(3, 1, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_DepthwiseConv.apply, (x, w))
    # only one input needs a gradient (windows detached at training time elsewhere)
    (gk2,) = torch.autograd.grad(ga.kam_convolution(win.detach(), kam), (kam,), up)
    assert torch.allclose(gk2, rk, atol=1e-12)
    with torch.no_grad():
        assert ga.kam_convolution(win, kam).grad_fn is None
