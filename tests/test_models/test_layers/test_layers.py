"""Attentive Norm (spec §1.4) and the CMP module (§1.3): formula, init, registry, parity."""
import numpy as np
import pytest
import torch

from logocap_mm.models.layers import LogoCapAttnBatchNorm2d, LogoCapCMP
from logocap_mm.models.utils.kem import expansion_rates, local_kem_grid
from logocap_mm.models.utils.sampling import sample_kem_latents

COCO_SIGMAS = [.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, .107, .107,
               .087, .087, .089, .089]


def test_registry_names():
    from mmpose.registry import MODELS
    an = MODELS.build(dict(type='LogoCapAttnBatchNorm2d', num_features=8, num_affine=3))
    assert isinstance(an, LogoCapAttnBatchNorm2d)
    cmp_ = MODELS.build(dict(type='LogoCapCMP', num_keypoints=14))
    assert isinstance(cmp_, LogoCapCMP)
    assert cmp_.layers[0].in_channels == 14 * 64


def test_attn_norm_init_gamma_about_10():
    torch.manual_seed(0)
    an = LogoCapAttnBatchNorm2d(256, 20)
    assert an.weight.shape == (20, 256) and an.bias.shape == (20, 256)
    assert an.attn_conv.weight.shape == (20, 256, 1, 1)
    assert an.weight.mean().item() == pytest.approx(1.0, abs=0.02)
    assert an.weight.std().item() == pytest.approx(0.1, abs=0.01)
    assert an.bias.std().item() == pytest.approx(0.1, abs=0.01)
    # kaiming normal, fan_out = 20 * 1 * 1 -> std sqrt(2 / 20)
    assert an.attn_conv.weight.std().item() == pytest.approx((2 / 20) ** 0.5, rel=0.1)
    x = torch.randn(64, 256, 11, 11)
    with torch.no_grad():
        lam = an.attention(x)
        gamma = lam @ an.weight
    assert lam.min() >= 0 and lam.max() <= 1
    assert gamma.mean().item() == pytest.approx(10.0, abs=1.5)


def test_attn_norm_exact_formula_train_and_eval():
    torch.manual_seed(1)
    an = LogoCapAttnBatchNorm2d(6, 4)
    x = torch.randn(5, 6, 11, 11) * 2 + 0.5

    def manual(x, mean, var):
        xh = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + 1e-5)
        m = x.mean((2, 3), keepdim=True)
        v = x.var((2, 3), keepdim=True, unbiased=True)
        s = m / torch.sqrt(v + 1e-3)
        z = torch.einsum('nchw,ac->na', s, an.attn_conv.weight[:, :, 0, 0])
        lam = ((z + 3).clamp(0, 6)) / 6
        return (lam @ an.weight)[:, :, None, None] * xh + (lam @ an.bias)[:, :, None, None]

    an.train()
    with torch.no_grad():
        y = an(x)
    bm, bv = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
    assert torch.allclose(y, manual(x, bm, bv), atol=1e-4)
    # running stats updated with momentum 0.1 (unbiased variance)
    assert torch.allclose(an.running_mean, 0.1 * bm, atol=1e-5)
    assert torch.allclose(an.running_var, 0.9 + 0.1 * x.var((0, 2, 3), unbiased=True), atol=1e-4)
    assert int(an.num_batches_tracked) == 1
    an.eval()
    with torch.no_grad():
        y = an(x)
    assert torch.allclose(y, manual(x, an.running_mean, an.running_var), atol=1e-4)


def test_cmp_structure_and_size():
    cmp_ = LogoCapCMP()
    kinds = [type(m).__name__ for m in cmp_.layers]
    assert kinds == ['Conv2d', 'BatchNorm2d', 'ReLU', 'Conv2d', 'LogoCapAttnBatchNorm2d', 'ReLU',
                     'Conv2d', 'BatchNorm2d', 'ReLU', 'Conv2d']
    n = sum(p.numel() for p in cmp_.parameters())
    assert 6.4e6 < n < 6.6e6
    assert cmp_.layers[0].bias is None and cmp_.layers[9].bias is not None
    out = cmp_.eval()(torch.randn(2, 17 * 64, 11, 11))
    assert out.shape == (2, 17, 11, 11)
    with pytest.raises(ValueError, match='input'):
        cmp_(torch.randn(2, 10, 11, 11))
    with pytest.raises(ValueError, match='use_attn_norm'):
        LogoCapCMP(use_attn_norm=(True, ))


def load_ref_cmp(path):
    """The reference's CMP (``joints_mlp.*`` of the state dict at ``path``) as LogoCapCMP."""
    sd = torch.load(path, map_location='cpu', weights_only=True)
    mapped = {}
    for k, v in sd.items():
        if not k.startswith('joints_mlp.'):
            continue
        k = k[len('joints_mlp.'):]
        k = k.replace('weight_', 'weight').replace('bias_', 'bias')
        k = k.replace('attn_weights.attention.0.weight', 'attn_conv.weight')
        mapped['layers.' + k] = v
    cmp_ = LogoCapCMP()
    cmp_.load_state_dict(mapped, strict=True)
    return cmp_.eval()


@pytest.fixture(scope='module')
def ref_cmp(fixture_file):
    return load_ref_cmp(fixture_file('ref_model.pth', 'CMP parity'))


def test_cmp_parity_with_reference(fixture_image, ref_cmp, require):
    """Every per-image file with the reference's embedding: our CMP on latents sampled at its
    KEMs equals its raw KAMs (and, where stored, on its own latent of instance 0)."""
    path, _ = fixture_image
    require(path, ('P0', 'embedding', 'kam_raw'), 'CMP parity')
    r = expansion_rates(COCO_SIGMAS)
    z = np.load(path)
    P0 = torch.from_numpy(z['P0'])
    lat = sample_kem_latents(torch.from_numpy(z['embedding'])[None],
                             local_kem_grid(P0[None], r))[0]
    with torch.no_grad():
        kam = ref_cmp(lat)
    ref = torch.from_numpy(z['kam_raw'])
    assert kam.shape == ref.shape
    assert (kam - ref).abs().max().item() < 1e-4, path
    if 'local_latent' in z.files:  # stored for instance 0 only
        with torch.no_grad():
            k0 = ref_cmp(torch.from_numpy(z['local_latent']))
        assert (k0 - ref[:1]).abs().max().item() < 1e-4
