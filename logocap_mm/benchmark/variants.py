"""The layout / precision variants the benchmark times, as network plans.

Each variant is a ``(precision, memory_format[, fuse_conv_bn])`` set of ``model.test_cfg``; a timing loop
runs its stages inside ``with use_plan(plan_for(name, device)):`` and everything that runs
network layers (``LogoCapPoseEstimator.extract_feat``, the head's branches and the CMP) picks
the plan up; the decoder geometry stays fp32.
"""
from typing import Dict, List

import torch

from logocap_mm.models.precision import NetworkPlan, resolve_plan

# unfused variants say fuse_conv_bn=False: the default ('auto') folds. On CPU the default
# test_cfg is 'fp32-channels_last-fused'; on CUDA 'fp32-contiguous' with folding.
VARIANTS: Dict[str, Dict[str, str]] = {
    'fp32-contiguous': dict(precision='fp32', memory_format='contiguous', fuse_conv_bn=False),
    'fp32-channels_last': dict(precision='fp32', memory_format='channels_last',
                               fuse_conv_bn=False),
    'bf16-channels_last': dict(precision='bf16', memory_format='channels_last',
                               fuse_conv_bn=False),
    'fp16-channels_last': dict(precision='fp16', memory_format='channels_last',
                               fuse_conv_bn=False),
    # the same with the backbone's and neck's BatchNorms folded (test_cfg.fuse_conv_bn)
    'fp32-channels_last-fused': dict(precision='fp32', memory_format='channels_last',
                                     fuse_conv_bn=True),
    'bf16-channels_last-fused': dict(precision='bf16', memory_format='channels_last',
                                     fuse_conv_bn=True),
    'fp16-channels_last-fused': dict(precision='fp16', memory_format='channels_last',
                                     fuse_conv_bn=True),
}


def variants_for(device) -> List[str]:
    """The variants worth timing on ``device``: fp16 on CUDA only (slower than fp32 on CPU),
    bf16 where the device runs it."""
    device = torch.device(device)
    names = ['fp32-contiguous', 'fp32-channels_last']
    if device.type != 'cuda' or torch.cuda.is_bf16_supported():
        names.append('bf16-channels_last')
    if device.type == 'cuda':
        names.append('fp16-channels_last')
    return names


def plan_for(name: str, device) -> NetworkPlan:
    """The :class:`NetworkPlan` of variant ``name`` on ``device`` (ValueError if unknown or
    not runnable there)."""
    if name not in VARIANTS:
        raise ValueError(f'unknown benchmark variant {name!r}; one of {list(VARIANTS)}')
    return resolve_plan(VARIANTS[name], torch.device(device))
