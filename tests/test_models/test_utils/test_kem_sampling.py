"""KEM grid (spec §2.4), reference sampler (§2.5) and latent sampling parity."""
import os.path as osp

import numpy as np
import pytest
import torch

from logocap_mm.models.utils.kem import expansion_rates, kem_offsets, local_kem_grid
from logocap_mm.models.utils.sampling import sample_bilinear, sample_kem_latents

COCO_SIGMAS = [.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, .107, .107,
               .087, .087, .089, .089]


def test_expansion_rates_known_values():
    r = expansion_rates(COCO_SIGMAS)
    expect = [1.04, 1.0, 1.0, 1.4, 1.4, 3.16, 3.16, 2.88, 2.88, 2.48, 2.48, 4.28, 4.28,
              3.48, 3.48, 3.56, 3.56]
    assert torch.allclose(r, torch.tensor(expect), atol=1e-5)


def test_grid_centre_is_p0_and_half_widths():
    r = expansion_rates(COCO_SIGMAS)
    P0 = torch.rand(2, 3, 17, 2) * 500
    grid = local_kem_grid(P0, r)
    assert grid.shape == (2, 3, 11, 11, 17, 2)
    assert torch.equal(grid[:, :, 5, 5], P0)
    off = kem_offsets(r)
    # eyes (1, 2): half-width 5 px; hips (11, 12): 21.4 px
    for k, hw in [(1, 5.0), (2, 5.0), (11, 21.4), (12, 21.4)]:
        assert off[5, -1, k, 0].item() == pytest.approx(hw, abs=1e-4)    # j moves x
        assert off[-1, 5, k, 1].item() == pytest.approx(hw, abs=1e-4)    # i moves y
        assert off[0, 0, k].tolist() == pytest.approx([-hw, -hw], abs=1e-4)
    # columns move x only, rows move y only
    assert torch.all(off[:, :, :, 0] == off[:1, :, :, 0])
    assert torch.all(off[:, :, :, 1] == off[:, :1, :, 1])


def test_kem_bad_input():
    with pytest.raises(ValueError, match='sigmas'):
        expansion_rates([0.1, 0.0])
    with pytest.raises(ValueError, match='rates'):
        local_kem_grid(torch.zeros(3, 17, 2), torch.ones(14))
    with pytest.raises(ValueError, match='size'):
        kem_offsets(torch.ones(3), size=0)


def _ref_sample_1d(m, x):
    """Reference per-axis rule written out case by case (spec §2.5)."""
    W = len(m)
    if x < 0:
        return m[0]
    if x < W - 1:
        i = int(np.floor(x))
        f = x - i
        return (1 - f) * m[i] + f * m[i + 1]
    if x < W:
        return (x - (W - 1)) * m[W - 1]          # ramps from 0 at W-1 to the border value
    return m[W - 1]


def test_sampler_reference_borders():
    W = 6
    row = torch.tensor([3., -1., 2., 5., 7., 4.])
    maps = row.view(1, 1, 1, W).expand(1, 1, 2, W).contiguous()    # H=2, constant along y
    xs = [-3.0, -0.5, 0.0, 0.25, 2.5, 4.0, 4.75, 5.0, 5.25, 5.5, 5.999, 6.0, 9.0]
    pts = torch.tensor([[x, 0.0] for x in xs])[None]
    out = sample_bilinear(maps, pts, 'reference')[0, :, 0]
    expect = torch.tensor([_ref_sample_1d(row.tolist(), x) for x in xs])
    assert torch.allclose(out, expect, atol=1e-6)
    assert out[xs.index(5.0)] == 0                                   # exactly W-1 -> 0
    assert out[xs.index(5.5)].item() == pytest.approx(2.0)           # half of the border value
    # 'border' = grid_sample(align_corners=True, border): agrees except in the last strip
    bor = sample_bilinear(maps, pts, 'border')[0, :, 0]
    inner = torch.tensor([x < W - 1 for x in xs])
    assert torch.allclose(bor[inner], out[inner], atol=1e-6)
    assert bor[xs.index(5.0)].item() == pytest.approx(4.0)
    # the same quirk on the bottom edge (y)
    col = maps.transpose(2, 3).contiguous()                          # (1, 1, W, 2)
    pts_y = torch.tensor([[0.0, x] for x in xs])[None]
    assert torch.allclose(sample_bilinear(col, pts_y)[0, :, 0], expect, atol=1e-6)


def test_sampler_matches_grid_sample_inside():
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(2, 5, 13, 17, generator=g)
    pts = torch.rand(2, 200, 2, generator=g) * torch.tensor([15.9, 11.9])
    ref = sample_bilinear(maps, pts)
    gs = sample_bilinear(maps, pts, 'border')
    assert torch.allclose(ref, gs, atol=1e-5)
    with pytest.raises(ValueError, match='mode'):
        sample_bilinear(maps, pts, 'zeros')
    with pytest.raises(ValueError, match='points'):
        sample_bilinear(maps, pts[0])


def test_latent_channel_order_k_major():
    D, h, w = 3, 8, 40
    c = torch.arange(D).float().view(D, 1, 1)
    x = torch.arange(w).float().view(1, 1, w)
    emb = (100 * c + x).expand(D, h, w)[None]                      # value = 100 c + x_F
    K = 5
    P0 = torch.stack([torch.arange(K).float() * 4 * 5 + 40, torch.full((K,), 12.)], -1)
    kem = local_kem_grid(P0[None, None], torch.ones(K), size=3, radius=1.)
    lat = sample_kem_latents(emb, kem)                              # (1, 1, K*D, 3, 3)
    assert lat.shape == (1, 1, K * D, 3, 3)
    for k in range(K):
        for cc in range(D):
            want = 100 * cc + P0[k, 0] / 4
            assert lat[0, 0, k * D + cc, 1, 1].item() == pytest.approx(want.item(), abs=1e-4)
    # column j moves x: +1 I-px -> +0.25 F-px
    assert lat[0, 0, 0, 1, 2].item() - lat[0, 0, 0, 1, 1].item() == pytest.approx(0.25, abs=1e-5)


def test_local_latent_parity(fixture_image, require):
    r = expansion_rates(COCO_SIGMAS)
    f = fixture_image[0]
    require(f, ('P0', 'embedding', 'local_latent'), 'local latent parity')
    z = np.load(f)
    P0 = torch.from_numpy(z['P0'])
    kem = local_kem_grid(P0[None], r)
    lat = sample_kem_latents(torch.from_numpy(z['embedding'])[None], kem)[0]
    ref = torch.from_numpy(z['local_latent'])
    assert (lat[:ref.shape[0]] - ref).abs().max().item() < 2e-4, f
