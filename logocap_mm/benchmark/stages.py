"""The timed stages of a LOGO-CAP inference: backbone + heads, then the decoder's stages.

Stage names, in order (:data:`STAGES`)::

    backbone     backbone + neck + the three 1x1 heads, flip test included (image and
                 mirror as one batch, as ``LogoCapPoseEstimator``) and the flip merge
    local_kems   upsampling, centre NMS, top-k, centre-offset poses P0, KEM grids
    local_kams   embedding sampling at the KEM points, CMP, clamp to [0, 1]
    global       LOGO-CA: windows, Gaussian prior, KAM convolution, top-2 decode
    post         keypoint / pose scores, pose NMS, people cap, packing to numpy

:func:`run_decoder_stages` is the one place that splits the decoder for the timer.
"""
from typing import Optional, Sequence

import numpy as np
import torch

__all__ = ['STAGES', 'run_backbone', 'run_decoder_stages', 'check_staged_equals_decoder',
           'compare_fast_plain']

STAGES = ('backbone', 'local_kems', 'local_kams', 'global', 'post')


def run_backbone(model, x, flip: bool, flip_indices: Optional[Sequence[int]] = None):
    """Backbone + neck + heads (+ flip merge).

    Args:
        model: a LOGO-CAP pose estimator; x: (B, 3, H, W) input canvas (I);
        flip: run the image and its mirror as one batch and merge;
        flip_indices: K ints, the dataset's flip pairs (needed when ``flip``); the merge
            follows the model's ``test_cfg.flip_mode``.

    Returns:
        heatmaps (B, K+1, h, w), offsets (B, 2K, h, w), embedding (B, D, h, w), F grid.
    """
    head = model.head
    B = x.shape[0]
    if flip:
        if flip_indices is None:
            raise ValueError('run_backbone: flip=True needs the flip_indices of the dataset')
        feats = model.extract_feat(torch.cat([x, x.flip(-1)]))
        hm, off, emb = head.forward(feats)
        del feats
        mode = (getattr(model, 'test_cfg', None) or {}).get('flip_mode', 'reference')
        return head.flip_merge((hm[:B], off[:B], emb[:B]), (hm[B:], off[B:]),
                               flip_indices, mode)
    feats = model.extract_feat(x)
    out = head.forward(feats)
    del feats
    return out


def run_decoder_stages(head, hm, off, emb, canvas, timer=None, fast: Optional[bool] = None):
    """The decoder's stages one by one ('full' adaptation), ``timer.lap(stage)`` after each.

    Args:
        head: LogoCapHead; hm (B, K+1, h, w), off (B, 2K, h, w), emb (B, D, h, w): F grid;
        canvas: per image (H, W) of the valid canvas in I;
        timer: object with ``lap(name)`` (e.g. :class:`~logocap_mm.benchmark.timing.StageTimer`,
            started by the caller), or None;
        fast: force the fast (True) or plain (False) global path; None: the decoder's.

    Returns:
        (per-image ``InstanceData`` results, number of valid centres per image (B,)).
    """
    from logocap_mm.models.utils.sampling import sample_kem_latents
    dec = head.pose_decoder
    K, s = dec.num_keypoints, dec.kem_size
    lap = timer.lap if timer is not None else (lambda name: None)
    # local KEMs
    init = dec.initial_poses(hm, off, canvas)
    poses = init['poses']
    kem = dec.kem(poses)
    lap('local_kems')
    # local KAMs
    B, T = poses.shape[:2]
    lat = sample_kem_latents(emb, kem, dec.stride)
    kams = head.cmp(lat.flatten(0, 1)).reshape(B, T, K, s, s).clamp(0, 1)
    lap('local_kams')
    # global KAMs + decode
    old = dec.fast
    if fast is not None:
        dec.fast = fast
    try:
        kpts, vals = dec.global_refine(init['heatmaps_up'][:, :K], poses, kams, init['valid'])
    finally:
        dec.fast = old
    lap('global')
    # post-processing
    dets = dec.finalize(kpts, vals, init['center_scores'], init['valid'])
    insts = [head._to_instances(d) for d in dets]
    lap('post')
    return insts, init['valid'].sum(1)


def check_staged_equals_decoder(head, hm, off, emb, canvas) -> float:
    """Max |difference| of keypoints and scores between :func:`run_decoder_stages` and the
    head's decoder run in one call (inf if the numbers of people differ)."""
    dec = head.pose_decoder
    staged, _ = run_decoder_stages(head, hm, off, emb, canvas)
    ref = dec(hm, off, emb, head.cmp, canvas_hw=canvas, adaptation='full')
    err = 0.
    for a, r in zip(staged, ref):
        rk = r['keypoints'].float().cpu().numpy()
        if rk.shape != a.keypoints.shape:
            return float('inf')
        if rk.size:
            err = max(err, float(np.abs(rk - a.keypoints).max()),
                      float(np.abs(r['keypoint_scores'].float().cpu().numpy() -
                                   a.keypoint_scores).max()))
    return err


def compare_fast_plain(head, hm, off, emb, canvas) -> dict:
    """Max |difference| of keypoints and scores between the fast and plain global paths."""
    a, _ = run_decoder_stages(head, hm, off, emb, canvas, fast=True)
    b, _ = run_decoder_stages(head, hm, off, emb, canvas, fast=False)
    dk, ds = 0., 0.
    for x, y in zip(a, b):
        if x.keypoints.shape != y.keypoints.shape:
            return dict(equal_shapes=False)
        if x.keypoints.size:
            dk = max(dk, float(np.abs(x.keypoints - y.keypoints).max()))
            ds = max(ds, float(np.abs(x.keypoint_scores - y.keypoint_scores).max()))
    return dict(equal_shapes=True, max_abs_keypoints=dk, max_abs_scores=ds)
