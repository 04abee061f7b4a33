"""Training-time matching of KEM candidates to ground truth.

Everything is computed in the input frame **I**: the training affine is a similarity and the
flip preserves distances, so the reference's OKS in the original image O equals the OKS in I
with ``area_I = area_O * |det(A)|`` (A: the 2x2 part of the O -> I affine).
"""
from typing import List, NamedTuple, Sequence, Tuple, Union

import numpy as np

import torch
from torch import Tensor

__all__ = ['KemMatch', 'kem_oks', 'match_kem_targets', 'match_kem_chunked', 'pad_ground_truth',
           'MATCH_CHUNK_ELEMENTS']

# largest intermediate of the chunked matcher, in elements (2**26 float32: 256 MiB)
MATCH_CHUNK_ELEMENTS = 2 ** 26


class KemMatch(NamedTuple):
    """Result of :func:`match_kem_targets` (``B`` images, ``T`` slots, ``K`` keypoints,
    ``s`` KEM side); field meanings in that function's docstring."""
    assigned: Tensor      # (B, T) long
    oks_joints: Tensor    # (B, T, K, s, s)
    oks_person: Tensor    # (B, T, s, s)
    keep: Tensor          # (B, T) bool
    weights: Tensor       # (B, T, K)


def kem_oks(kem: Tensor, gt_kpts: Tensor, gt_vis: Tensor, gt_area: Tensor,
            sigmas: Union[Tensor, Sequence[float]]) -> Tensor:
    """Per-keypoint OKS of every KEM candidate against every GT person.

    ``S[b,t,g,k,i,j] = v[b,g,k] * exp(-||kem[b,t,i,j,k] - gt[b,g,k]||^2 /
    max(2 * area[b,g] * (2 sigma_k)^2, 1e-6))``.

    Args:
        kem: (B, T, s, s, K, 2) candidates in I.
        gt_kpts: (B, G, K, 2) GT keypoints in I (padding slots allowed with vis 0).
        gt_vis: (B, G, K) visibility (> 0 = labelled and inside the crop).
        gt_area: (B, G) person areas in I (area_O * det of the affine).
        sigmas: (K,) OKS sigmas.

    Returns:
        S (B, T, G, K, s, s).
    """
    if kem.dim() != 6 or kem.shape[-1] != 2:
        raise ValueError(f'kem must be (B, T, s, s, K, 2), got {tuple(kem.shape)}')
    B, T, s, _, K, _ = kem.shape
    if gt_kpts.dim() != 4 or gt_kpts.shape[0] != B or gt_kpts.shape[2:] != (K, 2):
        raise ValueError(f'gt_kpts must be (B={B}, G, K={K}, 2), got {tuple(gt_kpts.shape)}')
    G = gt_kpts.shape[1]
    if gt_vis.shape != (B, G, K):
        raise ValueError(f'gt_vis must be (B, G, K)=({B}, {G}, {K}), got {tuple(gt_vis.shape)}')
    if gt_area.shape != (B, G):
        raise ValueError(f'gt_area must be (B, G)=({B}, {G}), got {tuple(gt_area.shape)}')
    sig = torch.as_tensor(sigmas, dtype=kem.dtype, device=kem.device)
    if sig.shape != (K,):
        raise ValueError(f'sigmas must have K={K} entries, got {tuple(sig.shape)}')
    vis = (gt_vis > 0).to(kem.dtype)                                   # (B, G, K)
    cand = kem.permute(0, 1, 4, 2, 3, 5)                               # (B, T, K, s, s, 2)
    gt = gt_kpts.to(kem.dtype)
    return _oks(cand[:, :, None], gt[:, None, :, :, None, None, :],
                gt_area.to(kem.dtype)[:, None], vis[:, None], sig)      # (B, T, G, K, s, s)


def _oks(cand: Tensor, gt: Tensor, area: Tensor, vis: Tensor, sig: Tensor) -> Tensor:
    """``v * exp(-||cand - gt||^2 / max(2 area (2 sigma_k)^2, 1e-6))`` with broadcasting.

    ``cand`` (..., K, s, s, 2), ``gt`` (..., K, 1, 1, 2), ``area`` (...), ``vis`` (..., K),
    ``sig`` (K,) -> (..., K, s, s). One formula for :func:`kem_oks` and the chunked matcher,
    so both give the same bits."""
    d2 = (cand - gt).pow(2).sum(-1)
    denom = (2 * area[..., None] * (2 * sig) ** 2).clamp_min(1e-6)     # (..., K)
    err = d2 / denom[..., None, None]
    return torch.exp(-err) * vis[..., None, None]


def match_kem_targets(S: Tensor, gt_vis: Tensor, gate: float = 0.5) -> KemMatch:
    """Assign each initial pose to a GT person and build the KAM targets.

    Args:
        S: (B, T, G, K, s, s) from :func:`kem_oks`.
        gt_vis: (B, G, K) visibility.
        gate: instance gate on the best shifted-pose OKS (0.5).

    Returns:
        :class:`KemMatch` with
          ``assigned`` (B, T) long: argmax_g of sum_k v max_ij S / max(1, sum_k v)
          (first maximum; many-to-one allowed);
          ``oks_joints`` (B, T, K, s, s): S* for the assigned person (the KAM target);
          ``oks_person`` (B, T, s, s): shifted-pose OKS Q = sum_k S* / max(1, sum_k v);
          ``keep`` (B, T) bool: max_ij Q >= gate, or instance 0 of an image where none passes;
          ``weights`` (B, T, K): (max_ij S* - S*[c, c]) * 1[max_ij Q >= gate] (the fallback
          instance therefore has weight 0 unless it passes the gate).
    """
    if S.dim() != 6 or S.shape[-1] != S.shape[-2]:
        raise ValueError(f'S must be (B, T, G, K, s, s), got {tuple(S.shape)}')
    B, T, G, K, s, _ = S.shape
    if gt_vis.shape != (B, G, K):
        raise ValueError(f'gt_vis must be (B, G, K)=({B}, {G}, {K}), got {tuple(gt_vis.shape)}')
    if G == 0:
        raise ValueError('S has no GT slot (G = 0); pad with one all-invisible dummy person')
    vis = (gt_vis > 0).to(S.dtype)
    nvis = vis.sum(-1).clamp_min(1)                                    # (B, G)
    assigned = _person_scores(S, vis, nvis).argmax(-1)                 # (B, T)
    idx = assigned[:, :, None, None, None, None].expand(B, T, 1, K, s, s)
    oks_joints = S.gather(2, idx)[:, :, 0]                             # (B, T, K, s, s)
    return _targets(assigned, oks_joints, nvis, gate)


def _person_scores(S: Tensor, vis: Tensor, nvis: Tensor) -> Tensor:
    """(B, T, G, K, s, s) OKS, (B, G, K) visibility, (B, G) count -> (B, T, G) mean over
    the labelled keypoints of the window-max OKS."""
    smax = S.flatten(-2).amax(-1)                                      # (B, T, G, K)
    return (smax * vis[:, None]).sum(-1) / nvis[:, None]


def _targets(assigned: Tensor, oks_joints: Tensor, nvis: Tensor, gate: float) -> KemMatch:
    """The :class:`KemMatch` of the assigned persons (see :func:`match_kem_targets`)."""
    T, s = oks_joints.shape[1], oks_joints.shape[-1]
    n_a = nvis.gather(1, assigned)                                     # (B, T)
    oks_person = oks_joints.sum(2) / n_a[:, :, None, None]
    passed = oks_person.flatten(-2).amax(-1) >= gate                   # (B, T)
    keep = passed.clone()
    if T > 0:
        keep[:, 0] |= ~passed.any(1)
    c = s // 2
    weights = (oks_joints.flatten(-2).amax(-1) - oks_joints[..., c, c]) * passed[..., None]
    return KemMatch(assigned=assigned, oks_joints=oks_joints, oks_person=oks_person, keep=keep,
                    weights=weights)


def match_kem_chunked(kem: Tensor, gt_kpts: Tensor, gt_vis: Tensor, gt_area: Tensor,
                      sigmas: Union[Tensor, Sequence[float]], gate: float = 0.5,
                      max_elements: int = MATCH_CHUNK_ELEMENTS) -> KemMatch:
    """:func:`match_kem_targets` of :func:`kem_oks` with bounded memory.

    ``kem_oks`` materialises (B, T, G, K, s, s, 2) differences: with G ground-truth people
    (crowded images) that grows without bound. Here the people are taken in chunks of
    ``Gc`` so that no intermediate exceeds ``max_elements`` elements (at least one person
    per chunk): the assignment keeps a running first maximum over the chunks and S* is then
    computed for the assigned person only. The result is bit-identical to the unchunked one.

    Args:
        kem, gt_kpts, gt_vis, gt_area, sigmas: as :func:`kem_oks`.
        gate: as :func:`match_kem_targets`.
        max_elements: element budget of the largest intermediate (2**26).

    Returns:
        :class:`KemMatch` (see :func:`match_kem_targets`).
    """
    if kem.dim() != 6 or kem.shape[-1] != 2:
        raise ValueError(f'kem must be (B, T, s, s, K, 2), got {tuple(kem.shape)}')
    if int(max_elements) < 1:
        raise ValueError(f'max_elements must be a positive int, got {max_elements!r}')
    B, T, s, _, K, _ = kem.shape
    G = gt_kpts.shape[1] if gt_kpts.dim() == 4 else 0
    if gt_vis.shape != (B, G, K):
        raise ValueError(f'gt_vis must be (B, G, K)=({B}, {G}, {K}), got {tuple(gt_vis.shape)}')
    if G == 0:
        raise ValueError('no GT slot (G = 0); pad with one all-invisible dummy person')
    per_person = max(1, B * T * K * s * s * 2)
    step = max(1, int(max_elements) // per_person)
    vis = (gt_vis > 0).to(kem.dtype)
    nvis = vis.sum(-1).clamp_min(1)                                    # (B, G)
    best = assigned = None
    for g0 in range(0, G, step):
        g1 = min(G, g0 + step)
        S = kem_oks(kem, gt_kpts[:, g0:g1], gt_vis[:, g0:g1], gt_area[:, g0:g1], sigmas)
        score = _person_scores(S, vis[:, g0:g1], nvis[:, g0:g1])       # (B, T, Gc)
        del S
        idx = score.argmax(-1)                                         # (B, T) first max
        val = score.gather(-1, idx[..., None])[..., 0]
        if best is None:
            best, assigned = val, idx
            continue
        # first maximum over the chunks (NaN wins, as argmax)
        upd = (val > best) | (val.isnan() & ~best.isnan())
        best = torch.where(upd, val, best)
        assigned = torch.where(upd, idx + g0, assigned)
    # S* of the assigned person only: (B, T, K, s, s)
    sig = torch.as_tensor(sigmas, dtype=kem.dtype, device=kem.device)
    gt_a = gt_kpts.to(kem.dtype).gather(1, assigned[..., None, None].expand(B, T, K, 2))
    vis_a = vis.gather(1, assigned[..., None].expand(B, T, K))
    area_a = gt_area.to(kem.dtype).gather(1, assigned)
    cand = kem.permute(0, 1, 4, 2, 3, 5)                               # (B, T, K, s, s, 2)
    oks_joints = _oks(cand, gt_a[:, :, :, None, None, :], area_a, vis_a, sig)
    return _targets(assigned, oks_joints, nvis, gate)


def pad_ground_truth(items: List[Tuple[np.ndarray, np.ndarray, np.ndarray]],
                     num_keypoints: int, device=None, dtype=torch.float32
                     ) -> Tuple[Tensor, Tensor, Tensor]:
    """Pack per-image ground truth into padded tensors for :func:`kem_oks`.

    Args:
        items: per image ``(keypoints (G_b, K, 2) in I, visibility (G_b, K),
            areas (G_b,) in I)`` (numpy or anything ``torch.as_tensor`` takes).
        num_keypoints: K.

    Returns:
        keypoints (B, G, K, 2), visibility (B, G, K), areas (B, G) with
        G = max(1, max_b G_b); padding slots are all zero (OKS 0, never matched usefully).
    """
    K = num_keypoints
    B = len(items)
    G = max([len(it[0]) for it in items] + [1])
    kpts = torch.zeros(B, G, K, 2, device=device, dtype=dtype)
    vis = torch.zeros(B, G, K, device=device, dtype=dtype)
    area = torch.zeros(B, G, device=device, dtype=dtype)
    for b, (k, v, a) in enumerate(items):  # ragged packing only
        n = len(k)
        if n:
            kpts[b, :n] = torch.as_tensor(k, device=device, dtype=dtype)
            vis[b, :n] = torch.as_tensor(v, device=device, dtype=dtype)
            area[b, :n] = torch.as_tensor(a, device=device, dtype=dtype)
    return kpts, vis, area
