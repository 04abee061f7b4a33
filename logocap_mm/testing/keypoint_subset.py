# Copyright (c) logocap_mm contributors.
"""A COCO keypoint file reduced to a subset of its keypoints (a custom keypoint set for tests
and examples, made from the synthetic data of ``tools/make_synthetic.py``)."""
import copy
from typing import Sequence

__all__ = ['subset_keypoints']


def subset_keypoints(coco: dict, keep: Sequence[int]) -> dict:
    """A copy of a COCO keypoint dict with only the keypoints ``keep``, in that order.

    Args:
        coco: COCO dict (``images``, ``annotations`` with K (x, y, v) triplets each,
            ``categories`` with ``keypoints`` names and a 1-based ``skeleton``).
        keep: indices into the K keypoints, distinct, in the new order.

    Returns:
        The new dict: ``keypoints`` of len(keep) triplets, ``num_keypoints`` recounted
        (v > 0), category names in the new order and the skeleton links whose two ends are
        both kept (renumbered). Crowd regions and everything else are copied unchanged.
    """
    keep = [int(k) for k in keep]
    names = coco['categories'][0]['keypoints']
    if not keep or len(set(keep)) != len(keep) or not all(0 <= k < len(names) for k in keep):
        raise ValueError(f'keep must be distinct indices into the {len(names)} keypoints, '
                         f'got {keep}')
    out = copy.deepcopy(coco)
    for ann in out['annotations']:
        kp = ann.get('keypoints') or [0] * (3 * len(names))
        ann['keypoints'] = [v for k in keep for v in kp[3 * k:3 * k + 3]]
        ann['num_keypoints'] = sum(1 for k in keep if kp[3 * k + 2] > 0)
    new_index = {old: new for new, old in enumerate(keep)}
    for cat in out['categories']:
        cat['keypoints'] = [names[k] for k in keep]
        cat['skeleton'] = [[new_index[a - 1] + 1, new_index[b - 1] + 1]
                           for a, b in cat.get('skeleton', [])
                           if a - 1 in new_index and b - 1 in new_index]
    return out
