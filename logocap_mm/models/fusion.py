"""Inference copies of the backbone and neck with each BatchNorm folded into its convolution.

``model.test_cfg.fuse_conv_bn`` (``'auto'`` by default, or ``True``) runs ``predict``'s
backbone and neck, and the head's three map branches (a 1x1 convolution + BatchNorm + ReLU
each), through such copies: in eval mode a BatchNorm after a convolution is an
affine map per channel, so ``bn(conv(x)) == conv'(x)`` with ``w' = w * g / sqrt(var + eps)`` and
``b' = (b - mean) * g / sqrt(var + eps) + beta``. That removes one memory-bound pass per
convolution (about 13% of the W32 backbone's time in channels_last on a 2-core CPU) and
changes the maps by rounding only (~1e-6 relative).

The source module is never changed (training, checkpoints and optimizers see the same
parameters). The copy is rebuilt when any source parameter or buffer changed (their
``_version`` counters, e.g. after optimizer steps between validations, and their storage and
device, e.g. after ``model.to(device)``). Folding pairs a
convolution with the BatchNorm registered right after it among its siblings, which is how
MMPose backbones (ResNet, HRNet, ConvModule) are written; as a module could register them in
an order other than the one its ``forward`` applies them, every rebuilt copy is checked once
against the source on the call's input and dropped if their outputs differ by more than
rounding (with a warning when folding was asked for with ``True``; ``'auto'`` falls back
silently).
"""
import copy
import warnings
from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ['FeatureNet', 'FoldedCopy', 'fold_conv_bn', 'state_key']

# relative difference of a folded copy's output above which folding is refused
FOLD_TOLERANCE = 1e-3
_FOLDABLE_BN = (nn.BatchNorm2d, nn.SyncBatchNorm)


def _fold_pair(conv: nn.Conv2d, bn: nn.Module) -> Optional[nn.Conv2d]:
    """``conv`` with ``bn`` (eval statistics) folded in, by PyTorch's
    ``torch.nn.utils.fusion.fuse_conv_bn_eval`` (a new module; None if they do not match)."""
    if bn.running_mean is None or bn.running_var is None or \
            bn.num_features != conv.out_channels:
        return None
    return fuse_conv_bn_eval(conv.eval(), bn.eval())


def fold_conv_bn(module: nn.Module) -> int:
    """Fold, in place, every ``BatchNorm2d``/``SyncBatchNorm`` (exactly those types:
    subclasses such as attentive normalisation are left alone) registered right after a
    ``Conv2d`` sibling into it, and replace the BatchNorm by ``nn.Identity``.

    The walk is mmcv's ``fuse_conv_bn``'s, with two differences that keep it correct on
    LOGO-CAP models: BatchNorm subclasses are not folded (mmcv's ``isinstance`` test would
    fold attentive normalisation as a plain BatchNorm) and BatchNorms without affine
    parameters are folded (mmcv's arithmetic needs ``bn.weight``); the arithmetic itself is
    PyTorch's (:func:`_fold_pair`).

    Returns:
        int: the number of folded pairs.
    """
    count, last = 0, None
    for name, child in list(module.named_children()):
        fused = _fold_pair(module._modules[last], child) \
            if type(child) in _FOLDABLE_BN and last is not None else None
        if fused is not None:
            fused.requires_grad_(False)
            module._modules[last] = fused
            module._modules[name] = nn.Identity()
            count, last = count + 1, None
        elif type(child) is nn.Conv2d:
            last = name
        else:
            last = None
            count += fold_conv_bn(child)
    return count


def state_key(module: nn.Module) -> tuple:
    """Identity, storage, device, dtype and in-place version of every parameter and buffer
    of ``module`` (changes on optimizer steps, ``load_state_dict``, ``.to(device)``)."""
    return tuple((id(t), t.data_ptr(), t.device, t.dtype, t._version) for t in
                 list(module.parameters()) + list(module.buffers()))


class FeatureNet(nn.Module):
    """Backbone followed by an optional neck, as ``extract_feat`` runs them."""

    def __init__(self, backbone: nn.Module, neck: Optional[nn.Module] = None):
        super().__init__()
        self.backbone, self.neck = backbone, neck
        self.training = backbone.training  # a view of the estimator's parts, in their mode

    def forward(self, x):
        x = self.backbone(x)
        return self.neck(x) if self.neck is not None else x


class FoldedCopy:
    """A lazily built, self-checking folded copy of one module (see the module docstring).

    Attributes:
        copy (nn.Module | None): the folded copy of the last :meth:`get` (None: nothing to
            fold, or folding was refused).
        compiled: a ``torch.compile`` of ``copy`` when asked for (rebuilt with it).
    """

    def __init__(self, name: str):
        self.name = name
        self.copy: Optional[nn.Module] = None
        self.key: Optional[tuple] = None
        self.compiled = None

    def get(self, module: nn.Module, probe: Tensor, warn: bool = True
            ) -> Optional[nn.Module]:
        """The up-to-date folded copy of ``module`` in eval mode (None while it trains, or
        if it has nothing to fold or folding was refused).

        Args:
            probe (Tensor): an input of ``module``; a corner of at most 128x128 px of its
                first image checks a rebuilt copy against the source, in fp32.
            warn (bool): warn when the check refuses the copy.
        """
        if module.training:
            return None
        key = state_key(module)
        if key != self.key:
            self.key, self.copy, self.compiled = key, None, None
            folded = copy.deepcopy(module)
            folded.eval()  # (MMPose backbones' train() returns None: no chaining)
            folded.requires_grad_(False)
            if fold_conv_bn(folded) and self._agrees(module, folded, probe, warn):
                # contiguous, as the precision plan's layout bookkeeping expects
                self.copy = folded.to(memory_format=torch.contiguous_format)
                folded.__dict__['_logocap_channels_last'] = False
        return self.copy

    def _agrees(self, module: nn.Module, folded: nn.Module, probe: Tensor,
                warn: bool = True) -> bool:
        w = next(module.parameters(), None)
        x = probe[:1, :, :128, :128].to(w.dtype if w is not None and w.is_floating_point()
                                        else torch.float32)
        with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
            a, b = _tensors(module(x)), _tensors(folded(x))
        scale = max(t.abs().max().item() for t in a) or 1.0
        diff = max((s - t).abs().max().item() for s, t in zip(a, b)) / scale
        if len(a) == len(b) and diff <= FOLD_TOLERANCE:
            return True
        if warn:
            warnings.warn(
                f'test_cfg.fuse_conv_bn: folding the BatchNorms of {self.name} changed '
                f'its output by {diff:.3g} of its maximum (a BatchNorm registered after a '
                f'convolution whose output it does not take?); running it unfolded')
        return False


def _tensors(x) -> list:
    """The tensors of a (nested tuple/list of) output(s), fp32."""
    if isinstance(x, Tensor):
        return [x.float()]
    return [t for item in x for t in _tensors(item)]
