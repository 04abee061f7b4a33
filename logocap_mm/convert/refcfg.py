"""Reading the architecture and test settings off a reference experiment yaml."""
import os.path as osp
import math
from typing import Tuple

from .keys import DEFAULT_HEAD_CFG, W32_EXTRA


def _int(field: str, v) -> int:
    """``v`` as an int, or a ``ValueError`` naming the yaml ``field`` (no nan / inf / text)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f'reference config: {field} must be an integer, got {v!r}')
    if isinstance(v, float) and not (math.isfinite(v) and v.is_integer()):
        raise ValueError(f'reference config: {field} must be a finite integer, got {v!r}')
    return int(v)


def _float(field: str, v) -> float:
    """``v`` as a finite float, or a ``ValueError`` naming the yaml ``field``."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f'reference config: {field} must be a number, got {v!r}')
    if not math.isfinite(float(v)):
        raise ValueError(f'reference config: {field} must be a finite number, got {v!r} '
                         '(.nan / .inf are not allowed)')
    return float(v)


def _ints(field: str, vs) -> tuple:
    if not isinstance(vs, (list, tuple)):
        raise ValueError(f'reference config: {field} must be a list of integers, got {vs!r}')
    return tuple(_int(f'{field}[{i}]', v) for i, v in enumerate(vs))


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
    stem = _int('MODEL.EXTRA.STEM_INPLANES', ex.get('STEM_INPLANES', 64))
    extra['stage1']['num_channels'] = (stem, )
    for s in (2, 3, 4):
        st = ex.get(f'STAGE{s}')
        if not isinstance(st, dict):
            raise ValueError(f'reference config: MODEL.EXTRA.STAGE{s} is missing')
        for field in ('NUM_MODULES', 'NUM_BLOCKS', 'NUM_CHANNELS'):
            if field not in st:
                raise ValueError(f'reference config: MODEL.EXTRA.STAGE{s}.{field} is missing')
        blocks = _ints(f'MODEL.EXTRA.STAGE{s}.NUM_BLOCKS', st['NUM_BLOCKS'])
        chans = _ints(f'MODEL.EXTRA.STAGE{s}.NUM_CHANNELS', st['NUM_CHANNELS'])
        nb = _int(f'MODEL.EXTRA.STAGE{s}.NUM_BRANCHES', st.get('NUM_BRANCHES', len(chans)))
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
        n_mod = _int(f'MODEL.EXTRA.STAGE{s}.NUM_MODULES', st['NUM_MODULES'])
        extra[f'stage{s}'] = dict(num_modules=n_mod, num_branches=nb,
                                  block=block, num_blocks=blocks, num_channels=chans)
    extra['stage4']['multiscale_output'] = True

    cmp = ex.get('CONV_MSG_PASSING', {}) or {}
    chans = _ints('MODEL.EXTRA.CONV_MSG_PASSING.DIM_CONVOLUTION',
                  cmp.get('DIM_CONVOLUTION', DEFAULT_HEAD_CFG['cmp_channels']))
    use_an = tuple(bool(v) for v in cmp.get('USE_AN', DEFAULT_HEAD_CFG['cmp_attn_norm']))
    ksize = cmp.get('KSIZE')
    if ksize is not None:
        ksize = _ints('MODEL.EXTRA.CONV_MSG_PASSING.KSIZE', ksize)
    if ksize is not None and len(set(ksize)) != 1:
        raise ValueError('reference config: MODEL.EXTRA.CONV_MSG_PASSING.KSIZE must use one '
                         f'kernel size for all layers, got {ksize}')
    if bool(ex.get('AN_FOR_ALL', False)):
        raise ValueError('reference config: MODEL.EXTRA.AN_FOR_ALL must be False (the reference '
                         'model ignores it; use CONV_MSG_PASSING.USE_AN)')
    k = num_keypoints_from_ref_config(cfg)
    hm = _get(ex, 'MULTI_LEVEL_OUTPUT_HEATMAP.NUM_CHANNELS', [32])
    reg = _get(ex, 'MULTI_LEVEL_OUTPUT_REGRESSION.NUM_CHANNELS', [256])
    hm = _ints('MODEL.EXTRA.MULTI_LEVEL_OUTPUT_HEATMAP.NUM_CHANNELS', hm)
    reg = _ints('MODEL.EXTRA.MULTI_LEVEL_OUTPUT_REGRESSION.NUM_CHANNELS', reg)
    if not hm or not reg:
        raise ValueError('reference config: MULTI_LEVEL_OUTPUT_*.NUM_CHANNELS must not be empty')
    head_cfg = dict(num_keypoints=k, heatmap_channels=hm[0],
                    offset_channels=reg[0],
                    embed_channels=_int('MODEL.EXTRA.CONV_MSG_PASSING.DIM_EMBEDDING',
                                   cmp.get('DIM_EMBEDDING', 64)),
                    cmp_channels=chans, cmp_attn_norm=use_an,
                    num_affine=_int('MODEL.EXTRA.AN_NUM_AFFINE', ex.get('AN_NUM_AFFINE', 20)),
                    cmp_kernel=ksize[0] if ksize else 3)
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
    n = _int('DATASET.NUM_JOINTS', _get(cfg, 'DATASET.NUM_JOINTS', 17))
    return n - 1 if is_merged_dump(cfg) else n


def test_settings_from_ref_config(cfg: dict) -> dict:
    """Test-time settings of a reference yaml, with the reference's defaults where absent.

    Returns dict(input_size, topk, kem_size, global_size, global_sigma, adaptation,
    nms_dist_ratio, nms_num_joints, flip_test). ``global_size`` = GLOBAL_HM_SIZE + 1 (97 for 96),
    ``kem_size`` = 2 * KSIZE + 1; the reference always flips (TEST.FLIP_TEST is ignored).
    """
    s = _int('DATASET.INPUT_SIZE', _get(cfg, 'DATASET.INPUT_SIZE', 512))
    level = str(_get(cfg, 'TEST.ADAPTATION_LEVEL', 'full'))
    if level not in ('full', 'partial', 'none'):
        raise ValueError("reference config: TEST.ADAPTATION_LEVEL must be one of 'full', "
                         f"'partial', 'none', got {level!r}")
    scale = _get(cfg, 'TEST.SCALE_FACTOR', [1])
    if not isinstance(scale, (list, tuple)) or list(scale) != [1]:
        raise ValueError('reference config: TEST.SCALE_FACTOR must be [1] (multi-scale test is '
                         f'not supported), got {scale}')
    return dict(
        input_size=s,
        topk=_int('MODEL.DECODER.TOPK_CENTER', _get(cfg, 'MODEL.DECODER.TOPK_CENTER', 30)),
        kem_size=2 * _int('MODEL.DECODER.KSIZE', _get(cfg, 'MODEL.DECODER.KSIZE', 5)) + 1,
        global_size=_int('MODEL.DECODER.GLOBAL_HM_SIZE',
                         _get(cfg, 'MODEL.DECODER.GLOBAL_HM_SIZE', 96)) + 1,
        global_sigma=_float('MODEL.DECODER.SIGMA', _get(cfg, 'MODEL.DECODER.SIGMA', 16)),
        adaptation=level,
        nms_dist_ratio=_float('TEST.INSTANCE_NMS.SCORE_THRESHOLD',
                              _get(cfg, 'TEST.INSTANCE_NMS.SCORE_THRESHOLD', 0.05)),
        nms_num_joints=_int('TEST.INSTANCE_NMS.NUM_JOINTS',
                            _get(cfg, 'TEST.INSTANCE_NMS.NUM_JOINTS', 8)),
        flip_test=True)


