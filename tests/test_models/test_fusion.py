"""BatchNorm folding for ``test_cfg.fuse_conv_bn`` (``logocap_mm.models.fusion``).

* MMPose backbones (ResNet-18, a small HRNet) with non-trivial BatchNorm statistics and
  affines: the folded copy's outputs equal the source's to rounding, no BatchNorm is left
  in it, and the source keeps its modules and parameters.
* BatchNorms without affine are folded; attentive normalisation (a BatchNorm2d subclass
  with its own affine mixture) is left alone.
* A module whose BatchNorm is registered after a convolution whose output it does not take:
  the self-check refuses the copy with a warning (no silent wrong result).
* The copy follows in-place parameter updates and is not used in training mode.
* The arithmetic is PyTorch's ``fuse_conv_bn_eval`` (bit for bit); ``'auto'`` (the default
  of ``test_cfg.fuse_conv_bn``) falls back silently where ``True`` warns.
"""
import pytest
import torch
from torch import nn

import logocap_mm  # noqa: F401
from logocap_mm.models.fusion import FeatureNet, FoldedCopy, fold_conv_bn
from logocap_mm.models.layers import LogoCapAttnBatchNorm2d


def _randomise_bn(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 2 - 1)
            m.running_var.copy_(torch.rand(n, generator=g) * 2.8 + 0.2)
            if m.weight is not None:
                m.weight.data.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.bias.data.copy_(torch.rand(n, generator=g) * 2 - 1)
    module.eval()  # (MMPose backbones' train() returns None)
    return module


def _small_hrnet():
    from mmpose.models.backbones import HRNet
    s = lambda n, blk, ch: dict(num_modules=1, num_branches=n, block=blk,  # noqa: E731
                                num_blocks=(1,) * n, num_channels=ch)
    return HRNet(extra=dict(stage1=s(1, 'BOTTLENECK', (16,)), stage2=s(2, 'BASIC', (8, 16)),
                            stage3=s(3, 'BASIC', (8, 16, 32)),
                            stage4=s(4, 'BASIC', (8, 16, 32, 64))))


def _flat(x):
    return [x] if isinstance(x, torch.Tensor) else [t for i in x for t in _flat(i)]


@pytest.mark.parametrize('build', ['resnet18', 'hrnet'])
def test_folded_backbone_equals_source(build):
    from mmpose.models.backbones import ResNet
    torch.manual_seed(0)
    src = _randomise_bn(ResNet(depth=18) if build == 'resnet18' else _small_hrnet())
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in src.modules())
    params = {k: v.clone() for k, v in src.state_dict().items()}
    x = torch.randn(2, 3, 96, 128)
    folded = FoldedCopy(build).get(FeatureNet(src), x)
    assert folded is not None
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in src.modules()) == n_bn > 10
    with torch.no_grad():
        a, b = _flat(src(x)), _flat(folded(x))
    assert len(a) == len(b)
    for s, t in zip(a, b):
        assert s.abs().max() > 0.1  # the statistics matter: outputs are not ~0
        torch.testing.assert_close(t, s, rtol=0, atol=1e-5 * s.abs().max().item())
    for k, v in src.state_dict().items():
        assert torch.equal(v, params[k]), k
    bare = FoldedCopy(build).get(src, x)  # a backbone by itself (as for a peer's backbone)
    with torch.no_grad():
        torch.testing.assert_close(_flat(bare(x))[0], a[0], rtol=0,
                                   atol=1e-5 * a[0].abs().max().item())


def test_affine_free_bn_is_folded_and_attentive_norm_is_not():
    torch.manual_seed(0)
    net = _randomise_bn(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8, affine=False),
                                      nn.ReLU(), nn.Conv2d(8, 8, 3, bias=True),
                                      nn.BatchNorm2d(8), nn.Conv2d(8, 8, 1),
                                      LogoCapAttnBatchNorm2d(8, num_affine=2)))
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        ref = net(x)
        assert fold_conv_bn(net) == 2
        assert isinstance(net[1], nn.Identity) and isinstance(net[4], nn.Identity)
        assert isinstance(net[6], LogoCapAttnBatchNorm2d)
        torch.testing.assert_close(net(x), ref, rtol=0, atol=1e-5)


class _Misordered(nn.Module):
    """``bn`` is registered after ``conv_b`` but normalises ``conv_a``'s output."""

    def __init__(self):
        super().__init__()
        self.conv_a = nn.Conv2d(3, 4, 3, padding=1)
        self.conv_b = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv_a(x)) + self.conv_b(x)


def test_misordered_bn_is_refused_with_a_warning():
    torch.manual_seed(0)
    src = _randomise_bn(_Misordered())
    with pytest.warns(UserWarning, match='fuse_conv_bn.*running it unfolded'):
        assert FoldedCopy('odd').get(FeatureNet(src), torch.randn(1, 3, 16, 16)) is None


def test_copy_follows_parameter_updates_and_training_mode():
    torch.manual_seed(0)
    src = _randomise_bn(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))
    x = torch.randn(1, 3, 8, 8)
    holder = FoldedCopy('seq')
    first = holder.get(FeatureNet(src), x)
    assert holder.get(FeatureNet(src), x) is first  # unchanged source: the same copy
    with torch.no_grad():
        src[0].weight.mul_(2.)  # as an optimizer step does: in place
        src[1].running_mean.add_(0.5)
        second = holder.get(FeatureNet(src), x)
        assert second is not first
        torch.testing.assert_close(second(x), src(x), rtol=0, atol=1e-5)
    src.double()  # new storage and dtype (as .to(device) gives): rebuilt to match
    third = holder.get(FeatureNet(src), x.double())
    assert third is not second and third.backbone[0].weight.dtype == torch.float64
    src.train()
    assert holder.get(FeatureNet(src), x) is None


def test_folding_is_pytorchs_fuse_conv_bn_eval():
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    torch.manual_seed(0)
    net = _randomise_bn(nn.Sequential(nn.Conv2d(3, 8, 3, bias=True), nn.BatchNorm2d(8),
                                      nn.Conv2d(8, 16, 3, bias=False), nn.BatchNorm2d(16)))
    refs = [fuse_conv_bn_eval(net[0], net[1]), fuse_conv_bn_eval(net[2], net[3])]
    assert fold_conv_bn(net) == 2
    for i, ref in zip((0, 2), refs):
        assert torch.equal(net[i].weight, ref.weight) and torch.equal(net[i].bias, ref.bias)
        assert not net[i].weight.requires_grad


def test_auto_falls_back_silently(recwarn):
    torch.manual_seed(0)
    src = _randomise_bn(_Misordered())
    assert FoldedCopy('odd').get(FeatureNet(src), torch.randn(1, 3, 16, 16),
                                 warn=False) is None
    assert not [w for w in recwarn if 'fuse_conv_bn' in str(w.message)]
