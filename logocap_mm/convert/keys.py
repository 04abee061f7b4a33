"""Reference -> logocap_mm key mapping, architecture inference from the keys, expected shapes."""
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch

#: reference head module prefix -> our prefix (docs/CONTRACTS.md)
HEAD_PREFIX_MAP = (
    ('transition_cls.', 'head.heatmap_layers.'),
    ('final_layer_cls.', 'head.heatmap_final.'),
    ('transition_reg.', 'head.offset_layers.'),
    ('final_layer_reg.', 'head.offset_final.'),
    ('transition_embedding.', 'head.embedding_layers.'),
    ('joints_mlp.', 'head.local_adaptation.cmp.layers.'),
)
#: parameter renames inside the reference's AttnBatchNorm2d -> LogoCapAttnBatchNorm2d
AN_RENAMES = {
    'weight_': 'weight',
    'bias_': 'bias',
    'attn_weights.attention.0.weight': 'attn_conv.weight',
}

#: released W32 architecture (experiments/logocap-hrnet-w32-coco.yaml), MMPose HRNet ``extra``
W32_EXTRA = dict(
    stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK', num_blocks=(4, ),
                num_channels=(64, )),
    stage2=dict(num_modules=1, num_branches=2, block='BASIC', num_blocks=(4, 4),
                num_channels=(32, 64)),
    stage3=dict(num_modules=4, num_branches=3, block='BASIC', num_blocks=(4, 4, 4),
                num_channels=(32, 64, 128)),
    stage4=dict(num_modules=3, num_branches=4, block='BASIC', num_blocks=(4, 4, 4, 4),
                num_channels=(32, 64, 128, 256), multiscale_output=True))

#: released head settings (W32); W48 differs only in heatmap_channels=48
#: (``LogoCapHead`` argument names; ``cmp_kernel`` is the reference's CMP kernel size, which
#: LogoCapCMP fixes to 3)
DEFAULT_HEAD_CFG = dict(num_keypoints=17, heatmap_channels=32, offset_channels=256,
                        embed_channels=64, cmp_channels=(512, 256, 128),
                        cmp_attn_norm=(False, True, False), num_affine=20, cmp_kernel=3)


class ConversionError(ValueError):
    """Strict-conversion failure; ``missing`` / ``unexpected`` / ``mismatched`` hold the keys."""

    def __init__(self, msg: str, missing: Sequence[str] = (), unexpected: Sequence[str] = (),
                 mismatched: Sequence[str] = ()):
        super().__init__(msg)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)



# ----------------------------------------------------------------------------- loading
def unwrap_state_dict(obj, src: str = '<checkpoint>') -> 'OrderedDict[str, torch.Tensor]':
    """Return the reference state dict inside ``obj``.

    Accepts a bare ``{name: Tensor}`` dict or one wrapped under ``state_dict`` or ``model``;
    strips a ``module.`` prefix (DataParallel/DDP) from every key that has it.

    Raises:
        ValueError: not a state dict, or an already-converted logocap_mm checkpoint.
    """
    if not isinstance(obj, dict):
        raise ValueError(f'{src}: expected a state dict (dict of tensors), got '
                         f'{type(obj).__name__}')
    meta = obj.get('meta') if isinstance(obj.get('meta'), dict) else {}
    sd = obj
    for wrap in ('state_dict', 'model'):
        if isinstance(obj.get(wrap), dict):
            sd = obj[wrap]
            break
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f'{src}: not a state dict: entries {bad[:10]} are not tensors '
                         "(expected a bare state dict or one under 'state_dict' / 'model')")
    out = OrderedDict()
    for k, v in sd.items():
        out[k[len('module.'):] if k.startswith('module.') else k] = v
    ours = [k for k in out if k.startswith(('head.', 'neck.', 'data_preprocessor.'))]
    if 'converted_from' in meta or ours:
        raise ValueError(
            f'{src} is already a logocap_mm checkpoint (it has '
            f"{'meta.converted_from' if 'converted_from' in meta else repr(ours[0])}); "
            'it needs no conversion: pass it directly as --checkpoint / load_from / '
            'pose2d_weights.')
    return out



# ----------------------------------------------------------------------------- names
def map_reference_key(key: str) -> Optional[str]:
    """Our parameter name for a reference key, or ``None`` if the key has no counterpart."""
    if key.startswith('backbone.'):
        return key
    for ref_prefix, our_prefix in HEAD_PREFIX_MAP:
        if key.startswith(ref_prefix):
            rest = key[len(ref_prefix):]
            if ref_prefix == 'joints_mlp.':
                idx, _, tail = rest.partition('.')
                if not idx.isdigit():
                    return None
                rest = idx + '.' + AN_RENAMES.get(tail, tail)
            return our_prefix + rest
    return None


def _indices(keys, pattern: str) -> List[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in keys for m in [rx.match(k)] if m})


def _need(sd: Dict[str, torch.Tensor], key: str, what: str) -> torch.Tensor:
    """``sd[key]``, or a ValueError saying that ``sd`` is not a reference ``what``."""
    if key not in sd:
        raise ValueError(f'not a reference {what}: key {key!r} is missing')
    return sd[key]


def infer_hrnet_extra(sd: Dict[str, torch.Tensor]) -> dict:
    """MMPose ``HRNet`` ``extra`` dict read off the reference backbone keys.

    Raises:
        ValueError: the keys do not describe an HRNet (message names the missing key).
    """
    keys = list(sd)

    def need(k):
        return _need(sd, k, 'HRNet backbone')

    n1 = _indices(keys, r'backbone\.layer1\.(\d+)\.')
    if not n1:
        raise ValueError("not a reference HRNet backbone: no 'backbone.layer1.*' keys")
    bottleneck = 'backbone.layer1.0.conv3.weight' in sd
    extra = dict(stage1=dict(num_modules=1, num_branches=1,
                             block='BOTTLENECK' if bottleneck else 'BASIC',
                             num_blocks=(len(n1), ),
                             num_channels=(int(need('backbone.layer1.0.conv1.weight').shape[0]),
                                           )))
    for s in (2, 3, 4):
        mods = _indices(keys, rf'backbone\.stage{s}\.(\d+)\.')
        if not mods:
            raise ValueError(f"not a reference HRNet backbone: no 'backbone.stage{s}.*' keys")
        branches = _indices(keys, rf'backbone\.stage{s}\.0\.branches\.(\d+)\.')
        blocks, chans = [], []
        for b in branches:
            blocks.append(len(_indices(keys, rf'backbone\.stage{s}\.0\.branches\.{b}\.(\d+)\.')))
            chans.append(int(need(f'backbone.stage{s}.0.branches.{b}.0.conv1.weight').shape[0]))
        is_bottle = f'backbone.stage{s}.0.branches.0.0.conv3.weight' in sd
        extra[f'stage{s}'] = dict(num_modules=len(mods), num_branches=len(branches),
                                  block='BOTTLENECK' if is_bottle else 'BASIC',
                                  num_blocks=tuple(blocks), num_channels=tuple(chans))
    extra['stage4']['multiscale_output'] = True
    return extra


def infer_head_cfg(sd: Dict[str, torch.Tensor]) -> dict:
    """Head settings (see :data:`DEFAULT_HEAD_CFG`) read off the reference head keys.

    Raises:
        ValueError: a head key needed to read a setting is missing.
    """
    def need(k):
        return _need(sd, k, 'LOGO-CAP head')

    n_conv = _indices(sd, r'joints_mlp\.(\d+)\.')
    if not n_conv:
        raise ValueError("not a reference LOGO-CAP head: no 'joints_mlp.*' keys")
    num_layers = max(n_conv) // 3
    chans, use_an, num_affine, kernel = [], [], DEFAULT_HEAD_CFG['num_affine'], 3
    for i in range(num_layers):
        w = need(f'joints_mlp.{3 * i}.weight')
        chans.append(int(w.shape[0]))
        kernel = int(w.shape[-1])
        an = f'joints_mlp.{3 * i + 1}.weight_' in sd
        use_an.append(an)
        if an:
            num_affine = int(sd[f'joints_mlp.{3 * i + 1}.weight_'].shape[0])
    return dict(num_keypoints=int(need('final_layer_cls.weight').shape[0]) - 1,
                heatmap_channels=int(need('transition_cls.0.weight').shape[0]),
                offset_channels=int(need('transition_reg.0.weight').shape[0]),
                embed_channels=int(need('transition_embedding.0.weight').shape[0]),
                cmp_channels=tuple(chans), cmp_attn_norm=tuple(use_an),
                num_affine=num_affine, cmp_kernel=kernel)


# ----------------------------------------------------------------------------- shapes
def hrnet_param_shapes(extra: dict, prefix: str = 'backbone.') -> 'OrderedDict[str, tuple]':
    """Names and shapes of MMPose ``HRNet(extra)``'s state dict (built on the meta device)."""
    from .. import compat  # noqa: F401  (mmcv._ext stand-in before mmpose.models)
    from mmpose.models.backbones.hrnet import HRNet
    with torch.device('meta'):
        net = HRNet(extra=_as_mmpose_extra(extra))
    return OrderedDict((prefix + k, tuple(v.shape)) for k, v in net.state_dict().items())


def _as_mmpose_extra(extra: dict) -> dict:
    out = {}
    for name, st in extra.items():
        st = dict(st)
        for k in ('num_blocks', 'num_channels'):
            if k in st:
                st[k] = tuple(int(v) for v in st[k])
        out[name] = st
    return out


def head_param_shapes(in_channels: int, cmp_kernel: int = 3, prefix: str = 'head.',
                      **head_args) -> 'OrderedDict[str, tuple]':
    """Names and shapes of ``LogoCapHead(in_channels, **head_args)``'s state dict (built on
    the meta device, so no memory is allocated).

    ``in_channels`` = C of the concatenated backbone map (sum of the stage-4 widths);
    ``head_args``: ``LogoCapHead`` arguments (keys of :data:`DEFAULT_HEAD_CFG`).
    """
    if cmp_kernel != 3:
        raise ValueError(f'CMP kernel size {cmp_kernel} is not supported: LogoCapCMP uses '
                         '3x3 convolutions')
    from .. import compat  # noqa: F401  (mmcv._ext stand-in before mmpose.models)
    from logocap_mm.models.heads.logocap_head import LogoCapHead
    args = dict(head_args)
    # the shapes do not depend on the OKS sigmas (only needed to build a non-COCO head)
    args.setdefault('sigmas', [1.] * int(args.get('num_keypoints', 17)))
    with torch.device('meta'):
        head = LogoCapHead(in_channels, **args)
    return OrderedDict((prefix + k, tuple(v.shape)) for k, v in head.state_dict().items())


# ----------------------------------------------------------------------------- convert
def _fmt_keys(title: str, keys: Sequence[str]) -> str:
    return f'{title} ({len(keys)}):\n' + ''.join(f'  {k}\n' for k in keys)


def convert_state_dict(ref_sd: Dict[str, torch.Tensor], extra: Optional[dict] = None,
                       head_cfg: Optional[dict] = None
                       ) -> Tuple['OrderedDict[str, torch.Tensor]', dict, dict]:
    """Map a reference state dict to logocap_mm names, strictly.

    Args:
        ref_sd: reference state dict (no ``module.`` prefix; see :func:`unwrap_state_dict`).
        extra: MMPose HRNet ``extra``; default: inferred from ``ref_sd`` (W32 if that fails).
        head_cfg: head settings (keys of :data:`DEFAULT_HEAD_CFG`); default: inferred
            (released defaults if that fails).

    Returns:
        ``(state_dict, extra, head_cfg)`` with tensors in ``state_dict`` shared with ``ref_sd``.

    Raises:
        ConversionError: unmapped, missing or shape-mismatched keys (all listed).
    """
    if extra is None:
        try:
            extra = infer_hrnet_extra(ref_sd)
        except ValueError:
            extra = W32_EXTRA
    if head_cfg is None:
        try:
            head_cfg = infer_head_cfg(ref_sd)
        except ValueError:
            head_cfg = dict(DEFAULT_HEAD_CFG)
    in_channels = int(sum(extra['stage4']['num_channels']))
    expected = hrnet_param_shapes(extra)
    expected.update(head_param_shapes(in_channels, **head_cfg))

    out, unexpected, mismatched, src_of = OrderedDict(), [], [], {}
    for k, v in ref_sd.items():
        new = map_reference_key(k)
        if new is None or new not in expected:
            unexpected.append(k if new is None or new == k else f'{k} (-> {new})')
            continue
        if new in out:
            raise ConversionError(f'two reference keys map to {new!r}: {src_of[new]!r}, {k!r}')
        src_of[new] = k
        if tuple(v.shape) != expected[new]:
            mismatched.append(f'{k}: checkpoint {tuple(v.shape)} vs expected {expected[new]}'
                              + ('' if new == k else f' ({new})'))
            continue
        out[new] = v
    missing = [k for k in expected if k not in src_of]
    if unexpected or missing or mismatched:
        msg = ('checkpoint does not match the LOGO-CAP architecture (HRNet extra '
               f'{_widths(extra)}, head {head_cfg}):\n')
        if missing:
            msg += _fmt_keys('missing keys (expected, not in the checkpoint)', missing)
        if unexpected:
            msg += _fmt_keys('unexpected keys (in the checkpoint, no counterpart)', unexpected)
        if mismatched:
            msg += _fmt_keys('shape mismatches', mismatched)
        raise ConversionError(msg.rstrip('\n'), missing, unexpected, mismatched)
    # keep our canonical order (backbone then head)
    return OrderedDict((k, out[k]) for k in expected), extra, head_cfg


def _widths(extra: dict) -> str:
    return ', '.join(f"{s}: {extra[s]['num_modules']}x{tuple(extra[s]['num_blocks'])}"
                     f"{tuple(extra[s]['num_channels'])}" for s in ('stage2', 'stage3', 'stage4')
                     if s in extra)

