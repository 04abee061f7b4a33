"""Convolutional message passing (CMP, reference ``joints_mlp``)"""
from typing import Sequence

import torch.nn as nn
from mmpose.registry import MODELS
from torch import Tensor

from .attentive_norm import LogoCapAttnBatchNorm2d

__all__ = ['LogoCapCMP']


@MODELS.register_module()
class LogoCapCMP(nn.Module):
    """Local KEM latents -> KAM logits.

    ``layers = Sequential(conv3x3, norm, relu, conv3x3, norm, relu, conv3x3, norm, relu,
    conv1x1)``: indices 0..9 are the reference ``joints_mlp.0..9`` (no-bias 3x3 convs, bias
    only on the final 1x1). ``norm`` is BatchNorm2d, or :class:`LogoCapAttnBatchNorm2d`
    where ``use_attn_norm`` is True (default: layer 2 only).

    Input (N, K*D, s, s), channel ``k*D + c`` (k-major); output (N, K, s, s) raw logits (no
    clamp; the test-time clamp to [0, 1] is the decoder's job).
    """

    def __init__(self, num_keypoints: int = 17, embed_dim: int = 64,
                 channels: Sequence[int] = (512, 256, 128),
                 use_attn_norm: Sequence[bool] = (False, True, False),
                 num_affine: int = 20):
        super().__init__()
        if not isinstance(num_keypoints, int) or num_keypoints < 1:
            raise ValueError(f'num_keypoints must be a positive int, got {num_keypoints!r}')
        if not isinstance(embed_dim, int) or embed_dim < 1:
            raise ValueError(f'embed_dim must be a positive int, got {embed_dim!r}')
        channels = tuple(channels)
        use_attn_norm = tuple(use_attn_norm)
        if len(channels) == 0 or any((not isinstance(c, int)) or c < 1 for c in channels):
            raise ValueError(f'channels must be non-empty positive ints, got {channels!r}')
        if len(use_attn_norm) != len(channels):
            raise ValueError(f'use_attn_norm must have len(channels)={len(channels)} entries, '
                             f'got {use_attn_norm!r}')
        self.num_keypoints = num_keypoints
        self.embed_dim = embed_dim
        layers = []
        cin = num_keypoints * embed_dim
        for cout, an in zip(channels, use_attn_norm):
            layers.append(nn.Conv2d(cin, cout, 3, 1, 1, bias=False))
            layers.append(LogoCapAttnBatchNorm2d(cout, num_affine) if an else nn.BatchNorm2d(cout))
            layers.append(nn.ReLU(inplace=True))
            cin = cout
        layers.append(nn.Conv2d(cin, num_keypoints, 1, 1, 0))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_keypoints * self.embed_dim:
            raise ValueError(f'input must be (N, {self.num_keypoints * self.embed_dim}, s, s), '
                             f'got {tuple(x.shape)}')
        return self.layers(x)
