"""The timed stages of a LOGO-CAP inference: backbone + heads, then the decode pipeline.

Stage names, in order (:data:`STAGES`), and the pipeline stages they time
(``head.pose_decoder.decode(..., on_stage=...)``)::

    backbone     backbone + neck + the three 1x1 heads, flip test included (image and
                 mirror as one batch, as ``LogoCapPoseEstimator``) and the flip merge
    local_kems   'initial': upsampling, centre NMS, top-k, centre-offset poses P0
                 (and the finite-output check before it)
    local_kams   'local': KEM grids, embedding sampling at the KEM points, CMP, clamp
    global       'global': LOGO-CA windows, Gaussian prior, KAM convolution, top-2 decode
    post         'finalize': scores, pose NMS, people cap; then packing to numpy

The benchmark does not split the decoder itself: the pipeline reports its stages to a
hook, and :class:`StageHook` turns them into timer laps.
"""
from typing import Optional, Sequence

import numpy as np
import torch

__all__ = ['STAGES', 'PIPELINE_STAGES', 'StageHook', 'run_backbone', 'run_decoder_stages',
           'check_staged_equals_decoder', 'compare_fast_plain']

STAGES = ('backbone', 'local_kems', 'local_kams', 'global', 'post')
# pipeline stage -> benchmark stage
PIPELINE_STAGES = {'initial': 'local_kems', 'local': 'local_kams', 'global': 'global',
                   'finalize': 'post'}


class StageHook:
    """``on_stage(name, phase)`` for the decode pipeline: at the end of each pipeline stage
    ``timer.lap(benchmark stage)`` (continuous laps: what runs between two stages counts to
    the next). 'finalize' is lapped by the caller after the numpy packing (:meth:`close`).

    Args:
        timer: an object with ``lap(name)`` (a started StageTimer, a FLOP marker), or None.
    """

    def __init__(self, timer=None):
        self.timer = timer

    def __call__(self, name: str, phase: str):
        if self.timer is None or phase != 'end' or name == 'finalize':
            return
        if name not in PIPELINE_STAGES:
            raise ValueError(f'unexpected decode stage {name!r} (the benchmark times the '
                             f"'full' adaptation: {tuple(PIPELINE_STAGES)})")
        self.timer.lap(PIPELINE_STAGES[name])

    def close(self):
        if self.timer is not None:
            self.timer.lap('post')


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
    """The head's decode pipeline ('full' adaptation), as ``head.predict`` runs it, with
    ``timer.lap(stage)`` after each benchmark stage; then the packing to ``InstanceData``.

    Args:
        head: LogoCapHead; hm (B, K+1, h, w), off (B, 2K, h, w), emb (B, D, h, w): F grid;
        canvas: per image (H, W) of the valid canvas in I;
        timer: object with ``lap(name)`` (e.g. :class:`~logocap_mm.benchmark.timing.StageTimer`,
            started by the caller), or None;
        fast: force the fast (True) or plain (False) global path; None: the decoder's.

    Returns:
        (per-image ``InstanceData`` results, number of valid centres per image (B,)).
    """
    dec = head.pose_decoder
    hook = StageHook(timer)
    if fast is None:
        dets, trace = dec.decode(hm, off, emb, canvas_hw=canvas, adaptation='full',
                                 trace=True, on_stage=hook)
    else:  # a forced global path: the same pipeline through its padded core
        trace = {}
        padded = dec.padded(hm, off, emb, canvas, 'full', trim=True, fast=fast,
                            trace=trace, on_stage=hook)
        dets = dec.finalize(padded)
    nvalid = trace['valid'].sum(1)
    del trace
    insts = [head._to_instances(d) for d in dets]
    hook.close()
    return insts, nvalid


def check_staged_equals_decoder(head, hm, off, emb, canvas) -> float:
    """Max |difference| of keypoints and scores between the timed decode
    (:func:`run_decoder_stages`, with a hook) and ``head.pose_decoder.decode`` without one
    (inf if the numbers of people differ)."""
    staged, _ = run_decoder_stages(head, hm, off, emb, canvas, timer=_NullTimer())
    ref, _ = head.pose_decoder.decode(hm, off, emb, canvas_hw=canvas, adaptation='full')
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


class _NullTimer:
    def lap(self, name):
        pass


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
