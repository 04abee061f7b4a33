"""Attentive Normalization on BatchNorm2d, as used in LOGO-CAP's CMP layer 2."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpose.registry import MODELS
from torch import Tensor

__all__ = ['LogoCapAttnBatchNorm2d']


@MODELS.register_module()
class LogoCapAttnBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d (affine=False) followed by an attention-weighted mixture of affines.

    For input x (N, C, H, W):

    1. ``x_hat = BN(x)`` without affine (running stats tracked, eps, momentum);
    2. ``s = mean / sqrt(var + 1e-3)`` per sample and channel over H, W (unbiased var),
       computed on **x** (before normalisation), shape (N, C, 1, 1);
    3. ``lam = hsigmoid(attn_conv(s))`` (1x1 conv C -> A, no bias, no BN;
       ``hsigmoid(z) = clip(z + 3, 0, 6) / 6``), shape (N, A);
    4. ``gamma = lam @ weight``, ``beta = lam @ bias`` (weight, bias: (A, C)),
       ``y = gamma * x_hat + beta``.

    Init: ``weight ~ N(1, 0.1)``, ``bias ~ N(0, 0.1)``, ``attn_conv`` kaiming-normal
    (fan_out, relu); at init the effective gamma is about ``A / 2`` (10 for A = 20).

    Reference parameter names: ``weight_`` -> ``weight``, ``bias_`` -> ``bias``,
    ``attn_weights.attention.0.weight`` -> ``attn_conv.weight``.
    """

    def __init__(self, num_features: int, num_affine: int = 20, eps: float = 1e-5,
                 momentum: float = 0.1, eps_var: float = 1e-3):
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f'num_features must be a positive int, got {num_features!r}')
        if not isinstance(num_affine, int) or num_affine < 1:
            raise ValueError(f'num_affine must be a positive int, got {num_affine!r}')
        super().__init__(num_features, eps=eps, momentum=momentum, affine=False,
                         track_running_stats=True)
        self.num_affine = num_affine
        self.eps_var = eps_var
        # affine=False leaves self.weight / self.bias as None; replace them by the mixtures
        self.weight = nn.Parameter(torch.empty(num_affine, num_features))
        self.bias = nn.Parameter(torch.empty(num_affine, num_features))
        self.attn_conv = nn.Conv2d(num_features, num_affine, 1, bias=False)
        self.reset_mixtures()

    def reset_mixtures(self) -> None:
        """Spec init: N(1, 0.1) / N(0, 0.1) mixtures, kaiming-normal attention conv."""
        nn.init.normal_(self.weight, 1.0, 0.1)
        nn.init.normal_(self.bias, 0.0, 0.1)
        nn.init.kaiming_normal_(self.attn_conv.weight, mode='fan_out', nonlinearity='relu')

    def attention(self, x: Tensor) -> Tensor:
        """Mixture weights lam (N, A) in [0, 1] from the standardized spatial mean of x."""
        var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True)
        s = mean * (var + self.eps_var).rsqrt()
        return (F.relu6(self.attn_conv(s) + 3.0) / 6.0).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f'input must be (N, C, H, W), got {tuple(x.shape)}')
        # plain BN without affine (weight/bias of the parent are the mixtures, so pass None)
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            momentum = self.momentum
            if momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        else:
            momentum = 0.0
        use_batch = self.training
        x_hat = F.batch_norm(x, self.running_mean, self.running_var, None, None,
                             use_batch, momentum, self.eps)
        lam = self.attention(x)                                        # (N, A)
        gamma = lam @ self.weight                                      # (N, C)
        beta = lam @ self.bias
        return gamma[:, :, None, None] * x_hat + beta[:, :, None, None]

    def extra_repr(self) -> str:
        return super().extra_repr() + f', num_affine={self.num_affine}'
