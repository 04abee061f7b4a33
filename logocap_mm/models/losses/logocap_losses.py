"""LOGO-CAP losses.

The heatmap loss L_H is MMPose's ``KeypointMSELoss`` (a plain mean of W·(H − T)², with the
weight map and the ignore mask), so it is not repeated here.

Mixed precision: every loss here computes in float32 whatever the dtype of its inputs (fp16
or bf16 network outputs under ``torch.autocast`` / mmengine's ``AmpOptimWrapper``), with
autocast disabled inside: a weighted squared KAM or response error (an improvement weight
of ~1e-2 times a squared error of ~1e-4) is below fp16's smallest normal number (6e-5),
where fp16 loses it and its gradient; a sum over a batch of offset maps can exceed fp16's
maximum (65504); bf16 keeps 8 significant bits. The returned loss is float32.
"""
import contextlib
import torch
import torch.nn as nn
from torch import Tensor

from mmpose.registry import MODELS


def _fp32(*tensors):
    """The tensors as float32 (floating ones only; others unchanged)."""
    return tuple(t.float() if isinstance(t, Tensor) and t.is_floating_point() else t
                 for t in tensors)


def _no_autocast(t: Tensor):
    """A context with autocast off on the tensor's device (no-op without autocast)."""
    kind = t.device.type
    if torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind):
        return torch.autocast(kind, enabled=False)
    return contextlib.nullcontext()


def _check_weight(name, value):
    if not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f'{name} must be a non-negative number, got {value!r}')


@MODELS.register_module()
class LogoCapOffsetLoss(nn.Module):
    """Weighted SmoothL1 on centre-to-keypoint offsets, normalised by positive entries.

    L_O = Σ W · SmoothL1_β(O − T) / max(1, #{entries with W > 0}), β = 1/9.
    The count includes x and y entries separately.

    Args:
        beta (float): SmoothL1 transition point. Default 1/9.
        loss_weight (float): multiplier (0.01 in the paper's recipe).
    """

    def __init__(self, beta: float = 1. / 9, loss_weight: float = 0.01):
        super().__init__()
        if not isinstance(beta, (int, float)) or beta <= 0:
            raise ValueError(f'beta must be > 0, got {beta!r}')
        _check_weight('loss_weight', loss_weight)
        self.beta = float(beta)
        self.loss_weight = float(loss_weight)

    def forward(self, pred: Tensor, target: Tensor, weights: Tensor) -> Tensor:
        """
        Args:
            pred, target (Tensor): (B, 2K, h, w) offsets in F units, (pixel − keypoint).
            weights (Tensor): (B, 2K, h, w) per-entry weights (1/sqrt(area_I) on positives).
        """
        pred, target, weights = _fp32(pred, target, weights)
        with _no_autocast(pred):
            diff = (pred - target).abs()
            sl1 = torch.where(diff < self.beta, 0.5 * diff * diff / self.beta,
                              diff - 0.5 * self.beta)
            num_pos = (weights > 0).sum().clamp(min=1).to(pred.dtype)
            return (weights * sl1).sum() / num_pos * self.loss_weight


@MODELS.register_module()
class LogoCapOKSLoss(nn.Module):
    """KAM loss L_K ("OKS kernel loss").

    L_K = Σ_m mean_{k,i,j} w[m, k] · (KAM_raw[m, k, i, j] − S*[m, k, i, j])² / max(1, #passing)

    where S* are the per-keypoint OKS of the KEM candidates against the assigned ground truth
    (the target), w[m, k] = (max_ij S* − S*[centre]) · gate[m] is the improvement weight, and
    ``num_pos`` the number of instances that passed the 0.5 shifted-pose OKS gate. Matching
    and weights are computed by :func:`logocap_mm.models.utils.matching.match_kem_targets`.

    Args:
        loss_weight (float): multiplier (0.01 in the paper's recipe).
    """

    def __init__(self, loss_weight: float = 0.01):
        super().__init__()
        _check_weight('loss_weight', loss_weight)
        self.loss_weight = float(loss_weight)

    def forward(self, kams: Tensor, oks_targets: Tensor, weights: Tensor,
                num_pos) -> Tensor:
        """
        Args:
            kams (Tensor): (M, K, s, s) raw (un-clamped) CMP outputs.
            oks_targets (Tensor): (M, K, s, s) S*, detached.
            weights (Tensor): (M, K) improvement weights, zero for gated-out instances.
            num_pos (int | Tensor): number of instances that passed the gate.
        """
        kams, oks_targets, weights = _fp32(kams, oks_targets, weights)
        if kams.numel() == 0:
            return kams.sum() * 0.
        with _no_autocast(kams):
            per = (weights[..., None, None] * (kams - oks_targets) ** 2).flatten(1).mean(1)
            denom = torch.as_tensor(num_pos, dtype=kams.dtype,
                                    device=kams.device).clamp(min=1)
            return per.sum() / denom * self.loss_weight


@MODELS.register_module()
class LogoCapRefineLoss(nn.Module):
    """Refined-heatmap loss L_H̃ with an on-the-fly Gaussian target.

    T̃[m, k, a, b] = exp(−||U[m, k, a, b] − gt_I[m, k]||² / (2 σ²)) on the window grid U
    (unit steps in input pixels around the initial keypoint), σ = 4 as in the reference
    code (the paper implies 16; the code's value trained the released weights).
    L_H̃ = mean over (M, K, S, S) of w[m, k] · (R − T̃)².

    Args:
        sigma (float): target Gaussian σ in input pixels. Default 4.
        loss_weight (float): multiplier (1.0 in the paper's recipe).
    """

    def __init__(self, sigma: float = 4., loss_weight: float = 1.0):
        super().__init__()
        if not isinstance(sigma, (int, float)) or sigma <= 0:
            raise ValueError(f'sigma must be > 0, got {sigma!r}')
        _check_weight('loss_weight', loss_weight)
        self.sigma = float(sigma)
        self.loss_weight = float(loss_weight)

    def target(self, poses: Tensor, gt: Tensor, size: int) -> Tensor:
        """Gaussian targets on the window grid.

        Args:
            poses (Tensor): (M, K, 2) window centres (initial keypoints) in I.
            gt (Tensor): (M, K, 2) assigned ground-truth keypoints in I.
            size (int): window side S (odd).

        Returns:
            Tensor: (M, K, S, S); row a moves y, column b moves x.
        """
        half = size // 2
        d = torch.arange(size, device=poses.device, dtype=poses.dtype) - half
        # U - gt = (P0 - gt) + (b - half, a - half)
        delta = poses - gt                                    # (M, K, 2)
        dx = delta[..., 0, None] + d                          # (M, K, S) over b
        dy = delta[..., 1, None] + d                          # (M, K, S) over a
        ex = torch.exp(-dx * dx / (2 * self.sigma ** 2))
        ey = torch.exp(-dy * dy / (2 * self.sigma ** 2))
        return ey[..., :, None] * ex[..., None, :]

    def forward(self, response: Tensor, poses: Tensor, gt: Tensor,
                weights: Tensor) -> Tensor:
        """
        Args:
            response (Tensor): (M, K, S, S) LOGO-CA output R (un-clamped KAM).
            poses (Tensor): (M, K, 2) initial keypoints (window centres) in I.
            gt (Tensor): (M, K, 2) assigned ground truth in I.
            weights (Tensor): (M, K) improvement weights (same as L_K).
        """
        response, poses, gt, weights = _fp32(response, poses, gt, weights)
        if response.numel() == 0:
            return response.sum() * 0.
        with _no_autocast(response):
            tgt = self.target(poses, gt, response.shape[-1])
            loss = (weights[..., None, None] * (response - tgt) ** 2).mean()
            return loss * self.loss_weight
