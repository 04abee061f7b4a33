"""Convert checkpoints of the LOGO-CAP reference implementation (cherubicXN/logocap) to logocap_mm.

Key mapping (reference ``Model`` -> MMPose ``BottomupPoseEstimator`` with ``HRNet`` backbone,
``FeatureMapProcessor(concat=True)`` neck (no parameters) and ``LogoCapHead``):

* ``backbone.*`` -> ``backbone.*`` **unchanged**: the reference's HigherHRNet-style backbone
  (``conv1/bn1/conv2/bn2``, ``layer1``, ``transition{1,2,3}``, ``stage{2,3,4}.<m>.branches /
  fuse_layers``) has exactly MMPose ``HRNet``'s parameter names and shapes (checked key by key
  against an ``HRNet`` built from the same ``extra``).
* ``transition_cls`` -> ``head.heatmap_layers``, ``final_layer_cls`` -> ``head.heatmap_final``,
  ``transition_reg`` -> ``head.offset_layers``, ``final_layer_reg`` -> ``head.offset_final``,
  ``transition_embedding`` -> ``head.embedding_layers``, ``joints_mlp.N`` -> ``head.cmp.layers.N``;
  inside attentive-norm layers ``weight_`` -> ``weight``, ``bias_`` -> ``bias``,
  ``attn_weights.attention.0.weight`` -> ``attn_conv.weight``.

The conversion is strict: every reference key must map, every expected key must be present and
every shape must match, otherwise :class:`ConversionError` lists the offending keys.
The expected backbone keys come from MMPose's ``HRNet`` (built on the ``meta`` device, so no
memory is allocated); the expected head keys from :func:`head_param_shapes` (docs/CONTRACTS.md).
"""
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

__all__ = [
    'ConversionError', 'load_reference_state_dict', 'unwrap_state_dict', 'map_reference_key',
    'infer_hrnet_extra', 'infer_head_cfg', 'hrnet_param_shapes', 'head_param_shapes',
    'convert_state_dict', 'load_ref_config', 'arch_from_ref_config', 'coco_dataset_meta',
    'make_override_config', 'convert_checkpoint', 'DEFAULT_HEAD_CFG', 'W32_EXTRA',
]

#: reference head module prefix -> our prefix (docs/CONTRACTS.md)
HEAD_PREFIX_MAP = (
    ('transition_cls.', 'head.heatmap_layers.'),
    ('final_layer_cls.', 'head.heatmap_final.'),
    ('transition_reg.', 'head.offset_layers.'),
    ('final_layer_reg.', 'head.offset_final.'),
    ('transition_embedding.', 'head.embedding_layers.'),
    ('joints_mlp.', 'head.cmp.layers.'),
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
DEFAULT_HEAD_CFG = dict(num_keypoints=17, heatmap_channels=32, offset_channels=256,
                        embed_dim=64, cmp_channels=(512, 256, 128),
                        use_attn_norm=(False, True, False), num_affine=20, cmp_kernel=3)

_BN_SUFFIXES = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')


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


def load_reference_state_dict(src: str, unsafe_load: bool = False):
    """``torch.load`` a reference checkpoint (``weights_only=True`` unless ``unsafe_load``)
    and :func:`unwrap_state_dict` it."""
    if not osp.isfile(src):
        raise FileNotFoundError(f'checkpoint not found: {src}')
    try:
        obj = torch.load(src, map_location='cpu', weights_only=not unsafe_load)
    except Exception as e:  # pickle with non-tensor globals
        if unsafe_load:
            raise
        raise ValueError(
            f'{src}: torch.load(weights_only=True) refused it ({type(e).__name__}: '
            f'{str(e).splitlines()[0]}). If you trust the file, rerun with --unsafe-load.') from e
    return unwrap_state_dict(obj, src)


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


def infer_hrnet_extra(sd: Dict[str, torch.Tensor]) -> dict:
    """MMPose ``HRNet`` ``extra`` dict read off the reference backbone keys.

    Raises:
        ValueError: the keys do not describe an HRNet (message names the missing key).
    """
    keys = list(sd)

    def need(k):
        if k not in sd:
            raise ValueError(f'not a reference HRNet backbone: key {k!r} is missing')
        return sd[k]

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
        if k not in sd:
            raise ValueError(f'not a reference LOGO-CAP head: key {k!r} is missing')
        return sd[k]

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
                embed_dim=int(need('transition_embedding.0.weight').shape[0]),
                cmp_channels=tuple(chans), use_attn_norm=tuple(use_an),
                num_affine=num_affine, cmp_kernel=kernel)


# ----------------------------------------------------------------------------- shapes
def hrnet_param_shapes(extra: dict, prefix: str = 'backbone.') -> 'OrderedDict[str, tuple]':
    """Names and shapes of MMPose ``HRNet(extra)``'s state dict (built on the meta device)."""
    from . import compat  # noqa: F401  (mmcv._ext stand-in before mmpose.models)
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


def _bn(name: str, c: int) -> List[Tuple[str, tuple]]:
    return [(f'{name}.{s}', () if s == 'num_batches_tracked' else (c, )) for s in _BN_SUFFIXES]


def head_param_shapes(in_channels: int, num_keypoints: int = 17, heatmap_channels: int = 32,
                      offset_channels: int = 256, embed_dim: int = 64,
                      cmp_channels: Sequence[int] = (512, 256, 128),
                      use_attn_norm: Sequence[bool] = (False, True, False),
                      num_affine: int = 20, cmp_kernel: int = 3,
                      prefix: str = 'head.') -> 'OrderedDict[str, tuple]':
    """Names and shapes of ``LogoCapHead``'s state dict (docs/CONTRACTS.md).

    ``in_channels`` = C of the concatenated backbone map (sum of the stage-4 widths);
    K = ``num_keypoints`` (heatmaps have K+1 channels, the last is the centre).
    """
    if len(cmp_channels) != len(use_attn_norm):
        raise ValueError(f'cmp_channels {tuple(cmp_channels)} and use_attn_norm '
                         f'{tuple(use_attn_norm)} must have the same length')
    k, p = num_keypoints, prefix
    t = [(f'{p}heatmap_layers.0.weight', (heatmap_channels, in_channels, 1, 1))]
    t += _bn(f'{p}heatmap_layers.1', heatmap_channels)
    t += [(f'{p}heatmap_final.weight', (k + 1, heatmap_channels, 1, 1)),
          (f'{p}heatmap_final.bias', (k + 1, ))]
    t += [(f'{p}offset_layers.0.weight', (offset_channels, in_channels, 1, 1))]
    t += _bn(f'{p}offset_layers.1', offset_channels)
    t += [(f'{p}offset_final.weight', (2 * k, offset_channels, 1, 1)),
          (f'{p}offset_final.bias', (2 * k, ))]
    t += [(f'{p}embedding_layers.0.weight', (embed_dim, in_channels, 1, 1))]
    t += _bn(f'{p}embedding_layers.1', embed_dim)
    c_in = k * embed_dim
    for i, (c, an) in enumerate(zip(cmp_channels, use_attn_norm)):
        t.append((f'{p}cmp.layers.{3 * i}.weight', (c, c_in, cmp_kernel, cmp_kernel)))
        norm = f'{p}cmp.layers.{3 * i + 1}'
        if an:
            t += [(f'{norm}.weight', (num_affine, c)), (f'{norm}.bias', (num_affine, c)),
                  (f'{norm}.running_mean', (c, )), (f'{norm}.running_var', (c, )),
                  (f'{norm}.num_batches_tracked', ()),
                  (f'{norm}.attn_conv.weight', (num_affine, c, 1, 1))]
        else:
            t += _bn(norm, c)
        c_in = c
    last = 3 * len(cmp_channels)
    t += [(f'{p}cmp.layers.{last}.weight', (k, c_in, 1, 1)),
          (f'{p}cmp.layers.{last}.bias', (k, ))]
    return OrderedDict(t)


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


# ----------------------------------------------------------------------------- reference yaml
def load_ref_config(path: str) -> dict:
    """Parse a reference experiment yaml (or a ``cfg.dump()``) with PyYAML."""
    import yaml
    if not osp.isfile(path):
        raise FileNotFoundError(f'reference config not found: {path}')
    with open(path) as f:
        cfg = yaml.safe_load(f)
    if not isinstance(cfg, dict) or 'MODEL' not in cfg:
        raise ValueError(f'{path}: not a reference experiment yaml (no MODEL section)')
    return cfg


def _get(cfg: dict, path: str, default=None):
    cur = cfg
    for part in path.split('.'):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def arch_from_ref_config(cfg: dict) -> Tuple[dict, dict]:
    """``(extra, head_cfg)`` from a parsed reference yaml (MODEL.EXTRA, MODEL.NUM_JOINTS).

    Raises:
        ValueError: a required field is missing or malformed (named in the message).
    """
    ex = _get(cfg, 'MODEL.EXTRA')
    if not isinstance(ex, dict):
        raise ValueError('reference config: MODEL.EXTRA is missing')
    extra = dict(stage1=dict(W32_EXTRA['stage1']))
    stem = int(ex.get('STEM_INPLANES', 64))
    extra['stage1']['num_channels'] = (stem, )
    for s in (2, 3, 4):
        st = ex.get(f'STAGE{s}')
        if not isinstance(st, dict):
            raise ValueError(f'reference config: MODEL.EXTRA.STAGE{s} is missing')
        for field in ('NUM_MODULES', 'NUM_BLOCKS', 'NUM_CHANNELS'):
            if field not in st:
                raise ValueError(f'reference config: MODEL.EXTRA.STAGE{s}.{field} is missing')
        blocks = tuple(int(v) for v in st['NUM_BLOCKS'])
        chans = tuple(int(v) for v in st['NUM_CHANNELS'])
        nb = int(st.get('NUM_BRANCHES', len(chans)))
        if not (len(blocks) == len(chans) == nb == s):
            raise ValueError(f'reference config: MODEL.EXTRA.STAGE{s}: NUM_BRANCHES / NUM_BLOCKS '
                             f'/ NUM_CHANNELS must all have {s} entries, got {nb}, {blocks}, '
                             f'{chans}')
        block = str(st.get('BLOCK', 'BASIC')).upper()
        if block not in ('BASIC', 'BOTTLENECK'):
            raise ValueError(f"reference config: MODEL.EXTRA.STAGE{s}.BLOCK must be 'BASIC' or "
                             f"'BOTTLENECK', got {block!r}")
        fuse = str(st.get('FUSE_METHOD', 'SUM')).upper()
        if fuse != 'SUM':
            raise ValueError(f"reference config: MODEL.EXTRA.STAGE{s}.FUSE_METHOD must be 'SUM', "
                             f'got {fuse!r}')
        extra[f'stage{s}'] = dict(num_modules=int(st['NUM_MODULES']), num_branches=nb,
                                  block=block, num_blocks=blocks, num_channels=chans)
    extra['stage4']['multiscale_output'] = True

    cmp = ex.get('CONV_MSG_PASSING', {}) or {}
    chans = tuple(int(v) for v in cmp.get('DIM_CONVOLUTION', DEFAULT_HEAD_CFG['cmp_channels']))
    use_an = tuple(bool(v) for v in cmp.get('USE_AN', DEFAULT_HEAD_CFG['use_attn_norm']))
    ksize = cmp.get('KSIZE')
    if ksize is not None and len(set(int(k) for k in ksize)) != 1:
        raise ValueError('reference config: MODEL.EXTRA.CONV_MSG_PASSING.KSIZE must use one '
                         f'kernel size for all layers, got {ksize}')
    if bool(ex.get('AN_FOR_ALL', False)):
        raise ValueError('reference config: MODEL.EXTRA.AN_FOR_ALL must be False (the reference '
                         'model ignores it; use CONV_MSG_PASSING.USE_AN)')
    k = num_keypoints_from_ref_config(cfg)
    hm = _get(ex, 'MULTI_LEVEL_OUTPUT_HEATMAP.NUM_CHANNELS', [32])
    reg = _get(ex, 'MULTI_LEVEL_OUTPUT_REGRESSION.NUM_CHANNELS', [256])
    head_cfg = dict(num_keypoints=int(k), heatmap_channels=int(hm[0]),
                    offset_channels=int(reg[0]), embed_dim=int(cmp.get('DIM_EMBEDDING', 64)),
                    cmp_channels=chans, use_attn_norm=use_an,
                    num_affine=int(ex.get('AN_NUM_AFFINE', 20)),
                    cmp_kernel=int(ksize[0]) if ksize else 3)
    return extra, head_cfg


def is_merged_dump(cfg: dict) -> bool:
    """True for a ``cfg.dump()`` of the merged yacs config (it holds default-only keys such as
    ``DIST_BACKEND`` and ``RANK``), False for an experiment file as passed to ``--cfg``."""
    return 'DIST_BACKEND' in cfg and 'RANK' in cfg


def num_keypoints_from_ref_config(cfg: dict) -> int:
    """K (keypoints without the centre). The reference's ``update_config`` adds the centre to
    ``DATASET.NUM_JOINTS`` when ``DATASET.WITH_CENTER``; a merged dump already holds K + 1."""
    if not bool(_get(cfg, 'DATASET.WITH_CENTER', True)):
        raise ValueError('reference config: DATASET.WITH_CENTER must be True (LOGO-CAP predicts '
                         'a centre heatmap)')
    n = int(_get(cfg, 'DATASET.NUM_JOINTS', 17))
    return n - 1 if is_merged_dump(cfg) else n


def test_settings_from_ref_config(cfg: dict) -> dict:
    """Test-time settings of a reference yaml, with the reference's defaults where absent.

    Returns dict(input_size, topk, kem_size, global_size, global_sigma, adaptation,
    nms_dist_ratio, nms_num_joints, flip_test). ``global_size`` = GLOBAL_HM_SIZE + 1 (97 for 96),
    ``kem_size`` = 2 * KSIZE + 1; the reference always flips (TEST.FLIP_TEST is ignored).
    """
    s = _get(cfg, 'DATASET.INPUT_SIZE', 512)
    level = str(_get(cfg, 'TEST.ADAPTATION_LEVEL', 'full'))
    if level not in ('full', 'partial', 'none'):
        raise ValueError("reference config: TEST.ADAPTATION_LEVEL must be one of 'full', "
                         f"'partial', 'none', got {level!r}")
    scale = _get(cfg, 'TEST.SCALE_FACTOR', [1])
    if list(scale) != [1]:
        raise ValueError('reference config: TEST.SCALE_FACTOR must be [1] (multi-scale test is '
                         f'not supported), got {scale}')
    return dict(
        input_size=int(s),
        topk=int(_get(cfg, 'MODEL.DECODER.TOPK_CENTER', 30)),
        kem_size=2 * int(_get(cfg, 'MODEL.DECODER.KSIZE', 5)) + 1,
        global_size=int(_get(cfg, 'MODEL.DECODER.GLOBAL_HM_SIZE', 96)) + 1,
        global_sigma=float(_get(cfg, 'MODEL.DECODER.SIGMA', 16)),
        adaptation=level,
        nms_dist_ratio=float(_get(cfg, 'TEST.INSTANCE_NMS.SCORE_THRESHOLD', 0.05)),
        nms_num_joints=int(_get(cfg, 'TEST.INSTANCE_NMS.NUM_JOINTS', 8)),
        flip_test=True)


def default_base_config() -> str:
    """Absolute path of this repository's ``configs/logocap/w32_coco.py``."""
    return osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                    'configs', 'logocap', 'w32_coco.py')


def make_override_config(ref_cfg: dict, base: Optional[str] = None,
                         source: str = '<reference yaml>') -> str:
    """Text of an MMPose config that inherits ``base`` and overrides it to match ``ref_cfg``.

    ``base`` defaults to this repository's ``configs/logocap/w32_coco.py`` (absolute path).
    Overrides (argument names of ``LogoCapHead`` / ``LogoCapDecoder``):

    * ``model.backbone.extra`` (HRNet stages, widths, blocks);
    * ``model.head``: ``in_channels`` (sum of the stage-4 widths), ``num_keypoints``,
      ``heatmap_channels``, ``offset_channels``, ``embed_channels``, ``cmp_channels``,
      ``cmp_attn_norm``, ``num_affine``, ``metainfo`` (MODEL.TEMPLATE), ``decoder`` (the codec
      at DATASET.INPUT_SIZE, stride 4) and ``pose_decoder`` (topk, center_thr, kem_size,
      kem_radius, window_size, window_sigma, convex_lambda, nms_dist_ratio, nms_num_joints,
      max_people);
    * ``model.test_cfg``: flip_test (always True: the reference always flips),
      flip_mode='reference', adaptation (TEST.ADAPTATION_LEVEL);
    * the top-level ``codec`` and the train / val / test pipelines (``LogoCapResize`` at
      DATASET.INPUT_SIZE for testing; the training pipeline at the same size).

    Raises:
        ValueError: a field of ``ref_cfg`` is missing or unsupported (named in the message).
    """
    extra, head = arch_from_ref_config(ref_cfg)
    t = test_settings_from_ref_config(ref_cfg)
    if head['cmp_kernel'] != 3:
        raise ValueError('reference config: CONV_MSG_PASSING.KSIZE other than 3 is not '
                         f"supported by LogoCapCMP, got {head['cmp_kernel']}")
    template = str(_get(ref_cfg, 'MODEL.TEMPLATE', 'coco')).lower()
    if template not in ('coco', 'crowdpose', 'ochuman'):
        raise ValueError("reference config: MODEL.TEMPLATE must be one of 'coco', "
                         f"'crowdpose', 'ochuman', got {template!r}")
    base = base or default_base_config()
    s = t['input_size']
    hs = s // 4
    in_channels = int(sum(extra['stage4']['num_channels']))

    def stage(st):
        items = ', '.join(f'{k}={v!r}' for k, v in st.items())
        return f'dict({items})'

    stages = ',\n            '.join(f'{name}={stage(extra[name])}'
                                    for name in ('stage1', 'stage2', 'stage3', 'stage4'))
    lines = [
        f'# Generated by tools/convert_official_ckpt.py from {source}.',
        "# Overrides the inherited config so that it builds the reference experiment's",
        '# architecture and test settings.',
        f'_base_ = [{base!r}]',
        '',
        f'input_size = {s}',
        f'heatmap_size = {hs}',
        "codec = dict(type='LogoCapCodec', input_size=(input_size, input_size),",
        '             heatmap_size=(heatmap_size, heatmap_size))',
        '',
        'model = dict(',
        '    backbone=dict(',
        '        extra=dict(',
        f'            {stages})),',
        '    head=dict(',
        f'        in_channels={in_channels},',
        f"        num_keypoints={head['num_keypoints']},",
        f"        heatmap_channels={head['heatmap_channels']},",
        f"        offset_channels={head['offset_channels']},",
        f"        embed_channels={head['embed_dim']},",
        f"        cmp_channels={tuple(head['cmp_channels'])!r},",
        f"        cmp_attn_norm={tuple(head['use_attn_norm'])!r},",
        f"        num_affine={head['num_affine']},",
        f"        metainfo='configs/_base_/datasets/{template}.py',",
        '        decoder=codec,',
        '        pose_decoder=dict(',
        f"            topk={t['topk']},",
        '            center_thr=0.01,',
        f"            kem_size={t['kem_size']},",
        f"            kem_radius={float((t['kem_size'] - 1) // 2)!r},",
        f"            window_size={t['global_size']},",
        f"            window_sigma={t['global_sigma']!r},",
        '            convex_lambda=0.75,',
        f"            nms_dist_ratio={t['nms_dist_ratio']!r},",
        f"            nms_num_joints={t['nms_num_joints']},",
        f"            max_people={t['topk']})),",
        '    test_cfg=dict(',
        f"        flip_test={t['flip_test']!r},",
        "        flip_mode='reference',",
        f"        adaptation={t['adaptation']!r}))",
        '',
        'train_pipeline = [',
        "    dict(type='LoadImage'),",
        "    dict(type='BottomupRandomAffine', input_size=(input_size, input_size),",
        "         shift_factor=0.2, scale_factor=(0.75, 1.5), rotate_factor=30,",
        "         scale_type='short'),",
        "    dict(type='RandomFlip', direction='horizontal', prob=0.5),",
        "    dict(type='GenerateTarget', encoder=codec),",
        "    dict(type='BottomupGetHeatmapMask'),",
        "    dict(type='PackPoseInputs'),",
        ']',
        'val_pipeline = [',
        "    dict(type='LoadImage', color_type='color_ignore_orientation'),",
        "    dict(type='LogoCapResize', input_size=input_size, size_factor=64,",
        "         round_mode='reference'),",
        "    dict(type='PackPoseInputs',",
        "         meta_keys=('id', 'img_id', 'img_path', 'crowd_index', 'ori_shape',",
        "                    'img_shape', 'input_size', 'input_center', 'input_scale',",
        "                    'flip', 'flip_direction', 'flip_indices', 'raw_ann_info',",
        "                    'skeleton_links')),",
        ']',
        'train_dataloader = dict(dataset=dict(pipeline=train_pipeline))',
        'val_dataloader = dict(dataset=dict(pipeline=val_pipeline))',
        'test_dataloader = dict(dataset=dict(pipeline=val_pipeline))',
        '',
    ]
    return '\n'.join(lines)


# ----------------------------------------------------------------------------- metadata
def _plain(obj):
    """numpy -> Python lists/scalars, recursively (checkpoint meta must load with
    ``torch.load(weights_only=True)`` without any allow-list)."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj


def coco_dataset_meta(template: str = 'coco') -> dict:
    """MMPose's dataset metainfo (``configs/_base_/datasets/<template>.py``) as plain Python."""
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    allowed = ('coco', 'crowdpose', 'ochuman')
    if template not in allowed:
        raise ValueError(f'dataset template must be one of {allowed}, got {template!r}')
    import mmpose
    rel = f'configs/_base_/datasets/{template}.py'
    path = osp.join(osp.dirname(mmpose.__file__), '.mim', rel)
    return _plain(parse_pose_metainfo(dict(from_file=path if osp.isfile(path) else rel)))


# ----------------------------------------------------------------------------- top level
def convert_checkpoint(src: str, dst: str, ref_config: Optional[str] = None,
                       out_config: Optional[str] = None, base: Optional[str] = None,
                       unsafe_load: bool = False) -> dict:
    """Convert ``src`` (reference checkpoint) to the mmengine checkpoint ``dst``.

    With ``ref_config`` the architecture comes from that yaml (and must match the weights);
    otherwise it is inferred from the keys. ``out_config`` (needs ``ref_config``) writes the
    MMPose config from :func:`make_override_config`.

    Returns:
        dict(num_keys, extra, head_cfg, dst, out_config).
    """
    if out_config and not ref_config:
        raise ValueError('--out-config needs --ref-config (the reference experiment yaml)')
    ref_sd = load_reference_state_dict(src, unsafe_load=unsafe_load)
    extra = head_cfg = cfg = None
    template = 'coco'
    if ref_config:
        cfg = load_ref_config(ref_config)
        extra, head_cfg = arch_from_ref_config(cfg)
        template = str(_get(cfg, 'MODEL.TEMPLATE', 'coco')).lower()
    sd, extra, head_cfg = convert_state_dict(ref_sd, extra, head_cfg)
    meta = dict(dataset_meta=coco_dataset_meta(template),
                converted_from=osp.abspath(src),
                converter='logocap_mm tools/convert_official_ckpt.py')
    if ref_config:
        meta['ref_config'] = osp.abspath(ref_config)
    out_dir = osp.dirname(osp.abspath(dst))
    os.makedirs(out_dir, exist_ok=True)
    torch.save(dict(state_dict=OrderedDict((k, v.contiguous()) for k, v in sd.items()),
                    meta=meta), dst)
    if out_config:
        text = make_override_config(cfg, base=base, source=osp.basename(ref_config))
        os.makedirs(osp.dirname(osp.abspath(out_config)), exist_ok=True)
        with open(out_config, 'w') as f:
            f.write(text)
    return dict(num_keys=len(sd), extra=extra, head_cfg=head_cfg, dst=dst,
                out_config=out_config)
