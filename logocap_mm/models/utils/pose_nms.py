"""DEKR-style greedy pose NMS as used by LOGO-CAP's post-processing.

Rule (reference ``nms_core``): pose j duplicates pose i when more than ``num_joints_thr``
keypoints satisfy ``||kpt_i,k - kpt_j,k|| < dist_ratio * diag_i`` (diag_i: diagonal of pose
i's keypoint bounding box). Visiting the poses in slot order (= centre-score order): if pose i
was not processed yet, its group is ``{j : dup(i, j)}``; the group's highest-score member
(first one on ties) is kept unless it was already processed, in which case nothing is kept
and nothing is marked; otherwise the whole group is marked processed. A pose whose keypoints
coincide has diag 0 and an empty group and is dropped.
"""
import torch
from torch import Tensor

__all__ = ['pose_nms']


def pose_nms(keypoints: Tensor, scores: Tensor, valid: Tensor = None, dist_ratio: float = 0.05,
             num_joints_thr: int = 8) -> Tensor:
    """Greedy pose NMS, vectorised over the batch (a loop over the T <= 30 slots).

    Args:
        keypoints: (B, T, K, 2) poses (any frame; the rule is scale invariant).
        scores: (B, T) pose scores.
        valid: (B, T) bool, slots to consider (None: all).
        dist_ratio: distance threshold as a fraction of the pose diagonal (0.05).
        num_joints_thr: a pair is a duplicate if MORE than this many joints are close (8).

    Returns:
        keep_rank (B, T) long: position of the pose in keep order (0, 1, ...), -1 if dropped.
    """
    if keypoints.dim() != 4 or keypoints.shape[-1] != 2:
        raise ValueError(f'keypoints must be (B, T, K, 2), got {tuple(keypoints.shape)}')
    B, T = keypoints.shape[:2]
    if scores.shape != (B, T):
        raise ValueError(f'scores must be (B, T)=({B}, {T}), got {tuple(scores.shape)}')
    if valid is None:
        valid = torch.ones(B, T, dtype=torch.bool, device=keypoints.device)
    elif valid.shape != (B, T):
        raise ValueError(f'valid must be (B, T)=({B}, {T}), got {tuple(valid.shape)}')
    if not dist_ratio > 0:
        raise ValueError(f'dist_ratio must be > 0, got {dist_ratio!r}')
    valid = valid.bool()
    kp = keypoints
    wh = kp.amax(2) - kp.amin(2)                                       # (B, T, 2)
    diag = (wh * wh).sum(-1).sqrt()                                    # (B, T)
    dist = (kp[:, :, None] - kp[:, None]).pow(2).sum(-1).sqrt()        # (B, T, T, K)
    close = dist < (dist_ratio * diag)[:, :, None, None]
    dup = close.sum(-1) > num_joints_thr                               # (B, Ti, Tj)
    dup &= valid[:, :, None] & valid[:, None, :]
    neg = torch.finfo(scores.dtype).min if scores.is_floating_point() else -2 ** 62
    keep_rank = torch.full((B, T), -1, dtype=torch.long, device=kp.device)
    processed = torch.zeros(B, T, dtype=torch.bool, device=kp.device)
    count = torch.zeros(B, dtype=torch.long, device=kp.device)
    bar = torch.arange(B, device=kp.device)
    for i in range(T):
        grp = dup[:, i]                                                # (B, T)
        masked = torch.where(grp, scores, torch.full_like(scores, neg))
        best = masked.argmax(1)                                        # first maximum
        do = valid[:, i] & ~processed[:, i] & grp.any(1) & ~processed[bar, best]
        keep_rank[bar[do], best[do]] = count[do]
        count += do.long()
        processed |= grp & do[:, None]
    return keep_rank
