"""The facts an exported LOGO-CAP ONNX file carries in its ``metadata_props``.

Every key is ``logocap_mm.<name>`` and every value is JSON, so the runtime needs no config:
the canvas geometry (input size, size factor, rounding, limits), the normalisation, the
keypoint meta (count, flip pairs, sigmas, names, skeleton), the decoder settings the graph
was traced with (adaptation level, flip test, top-k) and those the runtime applies (pose NMS,
people cap). numpy-free and torch-free.
"""
import json
from typing import Dict, Mapping

from .checks import RULES, check_canvas, check_value

__all__ = ['PREFIX', 'FORMAT', 'REQUIRED', 'PRECISIONS', 'INPUT_NAME', 'OUTPUT_NAMES', 'encode',
           'decode', 'check']

PREFIX = 'logocap_mm.'
FORMAT = 1
INPUT_NAME = 'input'
OUTPUT_NAMES = ('keypoints', 'keypoint_scores', 'scores', 'valid')

# name -> (type check, description) of every required key
REQUIRED = {
    'format': (int, 'metadata format version'),
    'plugin_version': (str, 'logocap_mm version that exported the file'),
    'num_keypoints': (int, 'keypoint count K'),
    'flip_indices': (list, 'flip permutation of the keypoints (K,)'),
    'sigmas': (list, 'OKS sigmas (K,)'),
    'input_size': (int, 'canvas short side S'),
    'size_factor': (int, 'canvas sides are multiples of it'),
    'round_mode': (str, "long-side rounding ('reference' | 'ceil')"),
    'max_long_side': (int, 'largest canvas side'),
    'min_side': (int, 'smallest canvas side'),
    'pad_val': (list, 'border value of the warp (3,)'),
    'mean': (list, 'per-channel mean (3,), network channel order'),
    'std': (list, 'per-channel std (3,)'),
    'bgr_to_rgb': (bool, 'swap BGR (OpenCV order) to RGB before normalising'),
    'adaptation': (str, "adaptation level in the graph ('full' | 'partial' | 'none')"),
    'flip_test': (bool, 'flip test in the graph'),
    'topk': (int, 'padded slots T of the outputs'),
    'pose_nms': (bool, 'apply the pose NMS'),
    'nms_dist_ratio': (float, 'pose NMS distance ratio'),
    'nms_num_joints': (int, 'pose NMS joint count'),
    'max_people': (int, 'people cap per image'),
    'stride': (int, 'network output stride'),
}
OPTIONAL = ('keypoint_names', 'skeleton_links', 'dataset_name', 'flip_mode', 'trim_slots',
            'precision', 'calib_images', 'int8_cmp', 'int8_cmp_convs', 'batch_size')
PRECISIONS = ('fp32', 'int8')  # 'precision' of the network (absent: fp32)


def encode(meta: Mapping) -> Dict[str, str]:
    """``{name: value}`` -> ``{'logocap_mm.name': json}`` (checked first)."""
    check(dict(meta), '<export>')
    return {PREFIX + k: json.dumps(v) for k, v in meta.items()}


def decode(props: Mapping[str, str], source: str) -> Dict:
    """ONNX ``metadata_props`` (a mapping) -> the checked facts.

    Raises:
        ValueError: the file has no logocap_mm metadata (another model, or an export that
            lost it), misses keys (named), or holds a bad value.
    """
    ours = {k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)}
    if not ours:
        raise ValueError(
            f'{source}: not a logocap_mm ONNX export (no "{PREFIX}*" metadata); export the '
            'model with tools/deploy/export_onnx.py')
    meta = {}
    for k, v in ours.items():
        try:
            meta[k] = json.loads(v)
        except ValueError:
            raise ValueError(f'{source}: metadata {PREFIX}{k} is not JSON: {v!r}') from None
    check(meta, source)
    return meta


def check(meta: Dict, source: str) -> None:
    """Refuse missing keys (all named), wrong types, bad values and inconsistent sizes.

    The settings shared with the PyTorch side (canvas geometry, normalisation, decoder
    and NMS settings) are checked with the same rules (:mod:`logocap_rt.checks`): e.g.
    ``std`` must be > 0, ``max_people`` >= 1, ``nms_dist_ratio`` finite and >= 0,
    ``input_size`` / ``max_long_side`` at most 8192.
    """
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ValueError(f'{source}: logocap_mm metadata lacks {", ".join(missing)}; '
                         're-export the model with tools/deploy/export_onnx.py')
    for k, (typ, what) in REQUIRED.items():
        v = meta[k]
        if k in RULES:
            meta[k] = check_value(k, v, f'{source}: metadata {PREFIX}{k} ({what})')
            continue
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) if typ is float \
            else isinstance(v, typ) and (typ is bool or not isinstance(v, bool))
        if not ok:
            raise ValueError(f'{source}: metadata {PREFIX}{k} ({what}) must be a '
                             f'{typ.__name__}, got {v!r}')
    if meta['format'] != FORMAT:
        raise ValueError(f'{source}: metadata format {meta["format"]} is not supported by '
                         f'this runtime (format {FORMAT}); re-export the model')
    K = meta['num_keypoints']
    if sorted(meta['flip_indices']) != list(range(K)) or len(meta['sigmas']) != K:
        raise ValueError(f'{source}: flip_indices must be a permutation of range({K}) and '
                         f'sigmas must have {K} entries')
    check_canvas(meta['input_size'], meta['size_factor'], meta['max_long_side'],
                 meta['min_side'], f'{source}: metadata {PREFIX}')
    for k in ('mean', 'std', 'pad_val'):
        if len(meta[k]) != 3:
            raise ValueError(f'{source}: metadata {PREFIX}{k} must have 3 entries')
    if meta['adaptation'] not in ('full', 'partial', 'none'):
        raise ValueError(f'{source}: unknown adaptation {meta["adaptation"]!r}')
    bs = meta.get('batch_size', 1)
    if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
        raise ValueError(f'{source}: metadata {PREFIX}batch_size must be a positive int, '
                         f'got {bs!r}')
    if meta.get('precision', 'fp32') not in PRECISIONS:
        raise ValueError(f'{source}: metadata {PREFIX}precision must be one of {PRECISIONS}, '
                         f'got {meta["precision"]!r}')
