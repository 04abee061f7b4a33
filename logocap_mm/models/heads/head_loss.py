"""Training losses of LogoCapHead (a mixin: the head composes the modules it uses).

Frames: ground truth and poses in the input canvas **I**; maps on the **F** grid.

Mixed precision (``mim train --amp``: the forward under fp16/bf16 autocast): the network parts
(branches, CMP) run in the autocast dtype; the geometry (initial poses, ground truth and
areas, KEM matching, upsampling, windows and the KAM response) runs in fp32 from the
fp32-cast maps, with autocast off for the response (fp16 would round I coordinates of a
512 canvas to 0.25-0.5 px and overflow areas above 65504 px²).
"""
import contextlib
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmpose.utils.typing import ConfigType, OptSampleList
from torch import Tensor

from logocap_mm.models.utils.matching import pad_ground_truth

__all__ = ['HeadLossMixin']


def _fp32_region(t: Tensor):
    """Autocast off on ``t``'s device while autocast is on (else a no-op context)."""
    kind = t.device.type
    if torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind):
        return torch.autocast(kind, enabled=False)
    return contextlib.nullcontext()


def _compact(mask: Tensor) -> Tuple[Tensor, Tensor]:
    """Move the True slots of each row to the front.

    Args:
        mask: (B, T) bool.

    Returns:
        index (B, T2) long into T, and the compacted mask (B, T2), T2 = max row count.
    """
    B, T = mask.shape
    t2 = int(mask.sum(1).max().item()) if mask.numel() else 0
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :t2]
    return order, mask.gather(1, order)



class HeadLossMixin:
    """``loss`` of :class:`LogoCapHead`: heatmap, offset, OKS-kernel (KAM) and refined
    heatmap terms. Uses the head's ``forward``, ``pose_decoder.initial_poses``,
    ``local_adaptation`` (KEMs, matching, CMP) and ``global_adaptation`` (windows, response).
    """

    def _gt_instances(self, batch_data_samples, device, dtype):
        """Pad the ground truth to (B, G, ...) tensors in I (G >= 1; empty -> all zero)."""
        K = self.num_keypoints
        items = []
        for ds in batch_data_samples:
            gi = ds.gt_instances
            kp = np.asarray(gi.keypoints, dtype=np.float32) \
                if 'keypoints' in gi else np.zeros((0, K, 2), np.float32)
            if kp.size and (kp.ndim != 3 or kp.shape[1] != K):
                raise ValueError(
                    f'annotations have keypoints of shape {tuple(kp.shape)} but the model has '
                    f'num_keypoints={K}: use a config for this dataset (e.g. '
                    'configs/logocap/w32_crowdpose.py for 14-keypoint CrowdPose)')
            kp = kp.reshape(-1, K, 2)
            vis = np.zeros((len(kp), K), np.float32)
            if 'keypoints_visible' in gi and len(kp):
                vis = np.asarray(gi.keypoints_visible, dtype=np.float32).reshape(
                    len(kp), K, -1)[..., 0]
            area = np.asarray(gi.areas, dtype=np.float32).reshape(-1) \
                if 'areas' in gi else np.zeros(len(kp), np.float32)
            if len(area) != len(kp):
                raise ValueError(f'gt_instances.areas has {len(area)} entries for '
                                 f'{len(kp)} instances')
            # invisible / out-of-canvas keypoints do not count
            w, h = ds.metainfo.get('input_size', (np.inf, np.inf))
            # the crop test is the one before a horizontal flip (x -> w - 1 - x), as the
            # reference: [0, w) before the flip is (-1, w - 1] after it
            if ds.metainfo.get('flip', False) and \
                    ds.metainfo.get('flip_direction', 'horizontal') == 'horizontal':
                in_x = (kp[..., 0] > -1) & (kp[..., 0] <= w - 1)
            else:
                in_x = (kp[..., 0] >= 0) & (kp[..., 0] < w)
            inside = in_x & (kp[..., 1] >= 0) & (kp[..., 1] < h)
            vis = np.where(inside & np.isfinite(kp).all(-1), (vis > 0).astype(np.float32), 0.)
            items.append((np.nan_to_num(kp), vis, np.nan_to_num(area)))
        return pad_ground_truth(items, K, device, dtype)

    def loss(self, feats: Tuple[Tensor], batch_data_samples: OptSampleList,
             train_cfg: ConfigType = {}) -> dict:
        """Losses: heatmap, offset, OKS kernel (KAM) and refined heatmap."""
        gt_hw = batch_data_samples[0].gt_fields.heatmaps.shape[-2:] \
            if batch_data_samples else None
        if gt_hw is not None:  # target grid (stride-s F) -> canvas it stands for
            self.check_stride(self._feature(feats),
                              [(int(gt_hw[0]) * self.stride, int(gt_hw[1]) * self.stride)])
        hm, off, emb = self.forward(feats)
        hm, off = hm.float(), off.float()  # no-ops in fp32; fp32 geometry under autocast
        B, C, h, w = hm.shape
        K = self.num_keypoints
        gt_fields = [d.gt_fields for d in batch_data_samples]
        gt_hm = torch.stack([f.heatmaps for f in gt_fields]).to(hm)
        hw = torch.stack([f.heatmap_weights for f in gt_fields]).to(hm)
        hw = hw.expand_as(gt_hm) if hw.shape[1] == 1 else hw
        mask = None
        if 'heatmap_mask' in gt_fields[0]:
            mask = torch.stack([f.heatmap_mask for f in gt_fields]).to(hm)
            if mask.dim() == 3:
                mask = mask[:, None]
        losses = dict()
        losses['loss_heatmap'] = self.loss_heatmap(hm, gt_hm, hw, mask)
        gt_off = torch.stack([f.displacements for f in gt_fields]).to(off)
        off_w = torch.stack([f.displacement_weights for f in gt_fields]).to(off)
        losses['loss_offset'] = self.loss_offset(off, gt_off, off_w)

        # ---- LOGO-CAP branch: detached top-k initial poses matched to the ground truth
        local, glob = self.local_adaptation, self.global_adaptation
        with torch.no_grad():
            init = self.pose_decoder.initial_poses(hm.detach(), off.detach(), None, thr=None,
                                                   topk=self.train_topk)
            gt_kpts, gt_vis, gt_area = self._gt_instances(batch_data_samples, hm.device,
                                                          hm.dtype)
            tg = local.targets(init['poses'], gt_kpts, gt_vis, gt_area)
            poses, kem, match = tg.poses, tg.kem, tg.match  # (B,T,K,2), (B,T,s,s,K,2)
            keep = match.keep                                       # (B, T)
            passed = match.oks_person.flatten(2).max(-1).values >= local.matcher.gate
            num_pos = (passed & keep).sum()
            idx, mask2 = _compact(keep)                             # (B, T2)
            T2 = idx.shape[1]

            def take(x):
                return x.gather(1, idx.reshape(B, T2, *([1] * (x.dim() - 2))).expand(
                    B, T2, *x.shape[2:]))

            poses_k, kem_k = take(poses), take(kem)
            oks_k = take(match.oks_joints)                          # (B, T2, K, s, s)
            w_k = take(match.weights)                               # (B, T2, K)
            assigned = take(match.assigned)                         # (B, T2)
            gt_k = gt_kpts.gather(1, assigned[..., None, None].expand(B, T2, K, 2))

        s = local.kem_size
        lat = local.latents(emb, kem_k)                             # (B, T2, K*D, s, s)
        kams = local.kams(lat[mask2])                               # (M, K, s, s) raw
        losses['loss_oks'] = self.loss_oks(kams, oks_k[mask2], w_k[mask2], num_pos)

        st = local.stride
        hr = F.interpolate(hm[:, :K], size=(h * st, w * st),
                           mode='bilinear', align_corners=False)    # not detached
        win = glob.windows(hr, poses_k)                             # (B, T2, K, S, S)
        kams = kams.float()
        kam_full = kams.new_zeros(B, T2, K, s, s)
        kam_full[mask2] = kams
        with _fp32_region(win):
            resp = glob.response(win, kam_full)[mask2]              # (M, K, S, S)
        losses['loss_refine'] = self.loss_refine(resp, poses_k[mask2], gt_k[mask2],
                                                 w_k[mask2])
        # every term must stay in the graph of every branch (DDP) and be finite
        zero = sum(p.sum() for p in (hm, off, emb)) * 0.
        for k_ in ('loss_oks', 'loss_refine'):
            losses[k_] = losses[k_] + zero
        return losses
