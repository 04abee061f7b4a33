"""A deterministic synthetic N-person head output (what a trained network would predict).

With random (or any) weights the centre map is not under a benchmark's control. This module
builds heatmaps and offsets of exactly N people in F (the head's output grid), so that the
decoder stages run on realistic content: one sharp peak per person, poses that spread over
the global window.
"""
from typing import Dict, Sequence

import numpy as np
import torch

__all__ = ['synthetic_scene']

# standing figure, (x, y) in units of the person height, centred near the hips (COCO order)
_TEMPLATE17 = np.array([
    [0.00, -0.40], [0.02, -0.42], [-0.02, -0.42], [0.045, -0.41], [-0.045, -0.41],
    [0.10, -0.30], [-0.10, -0.30], [0.14, -0.15], [-0.14, -0.15], [0.15, 0.00],
    [-0.15, 0.00], [0.06, 0.02], [-0.06, 0.02], [0.07, 0.25], [-0.07, 0.25],
    [0.07, 0.47], [-0.07, 0.47]], dtype=np.float64)


def _template(num_keypoints: int) -> np.ndarray:
    """(K, 2) figure: the COCO figure for K = 17, else K points on a vertical line."""
    if num_keypoints == 17:
        return _TEMPLATE17
    return np.stack([np.zeros(num_keypoints), np.linspace(-0.42, 0.47, num_keypoints)], -1)


def synthetic_scene(batch: int, persons: int, hw: Sequence[int], num_keypoints: int = 17,
                    sigma: float = 2.0, seed: int = 0) -> Dict[str, torch.Tensor]:
    """A deterministic N-person head output in F.

    People stand on a grid covering the canvas (person height 0.85 of a cell, seeded jitter
    of position, scale and limbs, sub-pixel centres so that the upsampled centre peaks
    are unique; the centre channel is zero on the outer F ring, see below).

    Args:
        batch: B images (each with its own jitter); persons: N >= 1; hw: (h, w) of the F
            grid; num_keypoints: K; sigma: Gaussian sigma in F px; seed: RNG seed.

    Returns:
        dict with ``heatmaps`` (B, K+1, h, w) (max of keypoint / centre Gaussians, centre
        last), ``offsets`` (B, 2K, h, w) LOGO-CAP convention ``pixel - keypoint`` (F units,
        nearest person's), ``keypoints`` (B, N, K, 2) and ``centers`` (B, N, 2) in F.
    """
    h, w = int(hw[0]), int(hw[1])
    K = num_keypoints
    if persons < 1:
        raise ValueError(f'persons must be >= 1, got {persons}')
    rng = np.random.RandomState(seed)
    template = _template(K)
    cols = int(np.ceil(np.sqrt(persons * w / h)))
    rows = int(np.ceil(persons / cols))
    ch, cw = h / rows, w / cols
    kpts = np.zeros((batch, persons, K, 2))
    cens = np.zeros((batch, persons, 2))
    for b in range(batch):
        for n in range(persons):
            r, c = divmod(n, cols)
            height = 0.85 * min(ch, 2.2 * cw) * rng.uniform(0.85, 1.0)
            cx = (c + 0.5) * cw + rng.uniform(-0.08, 0.08) * cw
            cy = (r + 0.5) * ch + rng.uniform(-0.04, 0.04) * ch
            jit = rng.uniform(-0.02, 0.02, size=(K, 2))
            kp = (template + jit) * height + [cx, cy]
            kpts[b, n] = kp
            cen = kp.mean(0)
            # sub-pixel, non-symmetric position -> one unique peak after upsampling
            cens[b, n] = np.floor(cen) + [0.31, 0.17]
            kpts[b, n] += cens[b, n] - cen
    ys = np.arange(h, dtype=np.float64)[:, None]
    xs = np.arange(w, dtype=np.float64)[None, :]
    heat = np.zeros((batch, K + 1, h, w), np.float32)
    off = np.zeros((batch, K, 2, h, w), np.float32)
    inv = 1.0 / (2 * sigma * sigma)
    for b in range(batch):
        pts = np.concatenate([kpts[b].transpose(1, 0, 2), cens[b][None]], 0)  # (K+1, N, 2)
        d2 = ((xs[None, None] - pts[..., 0, None, None]) ** 2 +
              (ys[None, None] - pts[..., 1, None, None]) ** 2)               # (K+1,N,h,w)
        heat[b] = np.exp(-d2 * inv).max(1)
        # bilinear upsampling (align_corners=False) clamps at the border, so the first two
        # I rows / columns both copy F row / column 0: a centre tail there would form a
        # two-pixel plateau that the 3x3 NMS keeps as a peak. Zero the outer F ring.
        heat[b, K, [0, -1], :] = 0.
        heat[b, K, :, [0, -1]] = 0.
        owner = d2[K].argmin(0)                                               # (h, w)
        kp_own = kpts[b][owner]                                               # (h,w,K,2)
        off[b, :, 0] = (xs[..., None] - kp_own[..., 0]).transpose(2, 0, 1)
        off[b, :, 1] = (ys[..., None] - kp_own[..., 1]).transpose(2, 0, 1)
    return dict(heatmaps=torch.from_numpy(heat),
                offsets=torch.from_numpy(off.reshape(batch, 2 * K, h, w)),
                keypoints=torch.from_numpy(kpts).float(),
                centers=torch.from_numpy(cens).float())
