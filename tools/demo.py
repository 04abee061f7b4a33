"""Run LOGO-CAP on an image or a folder with MMPose's inferencer and save visualisations.

    python tools/demo.py CONFIG CHECKPOINT INPUT [--out-dir DIR] [--device cpu|cuda]
        [--adaptation full|partial|none] [--no-flip] [--kpt-thr 0.3]

INPUT is an image file or a folder of images (a progress bar is shown for folders).
Predictions (JSON, one file per image) and drawn images are written under ``--out-dir``
(``vis/`` and ``predictions/``) only.

The checkpoint must match the config's architecture: unlike ``mmengine.load_checkpoint``
(which only warns and then runs partly random weights), a checkpoint with missing,
unexpected or differently shaped parameters is refused with the keys named.
"""
import argparse
import os
import os.path as osp
import sys

IMG_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
ADAPTATIONS = ('full', 'partial', 'none')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('input', help='image file or folder')
    p.add_argument('--out-dir', default='outputs/logocap_demo')
    p.add_argument('--device', default='cpu')
    p.add_argument('--adaptation', choices=ADAPTATIONS, default=None)
    p.add_argument('--no-flip', action='store_true')
    p.add_argument('--kpt-thr', type=float, default=0.3)
    return p.parse_args(argv)


def _fmt(keys, limit=8):
    keys = sorted(keys)
    more = f' ... (+{len(keys) - limit} more)' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def compare_state_dicts(model_state, ckpt_state):
    """Keys a checkpoint lacks, has in excess, or holds with another shape.

    Args:
        model_state (dict): ``model.state_dict()``.
        ckpt_state (dict): the checkpoint's state dict (``'module.'`` prefixes removed).

    Returns:
        tuple: ``(missing, unexpected, mismatched)``; ``mismatched`` is a list of
        ``(key, checkpoint_shape, model_shape)``.
    """
    missing = [k for k in model_state if k not in ckpt_state]
    unexpected = [k for k in ckpt_state if k not in model_state]
    mismatched = [(k, tuple(ckpt_state[k].shape), tuple(v.shape))
                  for k, v in model_state.items()
                  if k in ckpt_state and hasattr(ckpt_state[k], 'shape')
                  and tuple(ckpt_state[k].shape) != tuple(v.shape)]
    return missing, unexpected, mismatched


def check_checkpoint(model, checkpoint, config_name='the config'):
    """Raise a ValueError naming the keys if ``checkpoint`` is not for ``model``'s architecture.

    Loads through mmengine (``torch.load(weights_only=True)`` with logocap_mm's allow-list).
    """
    from mmengine.runner.checkpoint import _load_checkpoint
    ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    if not isinstance(ckpt, dict):
        raise ValueError(f'checkpoint {checkpoint} holds a {type(ckpt).__name__}, expected a '
                         'dict with a "state_dict" (an MMPose/mmengine checkpoint)')
    state = ckpt.get('state_dict', ckpt)
    state = {(k[7:] if k.startswith('module.') else k): v for k, v in state.items()}
    missing, unexpected, mismatched = compare_state_dicts(model.state_dict(), state)
    if missing or unexpected or mismatched:
        lines = [f'checkpoint {checkpoint} does not match the architecture of {config_name} '
                 '(a checkpoint of another model or config?):']
        if missing:
            lines.append(f'  missing keys ({len(missing)}): {_fmt(missing)}')
        if unexpected:
            lines.append(f'  unexpected keys ({len(unexpected)}): {_fmt(unexpected)}')
        if mismatched:
            shown = [f'{k} {c} in checkpoint vs {m} in model' for k, c, m in mismatched[:8]]
            more = f' ... (+{len(mismatched) - 8} more)' if len(mismatched) > 8 else ''
            lines.append(f'  shape mismatches ({len(mismatched)}): ' + '; '.join(shown) + more)
        raise ValueError('\n'.join(lines))


def list_inputs(path):
    """An image file -> [path]; a folder -> its images, sorted."""
    if osp.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.lower().endswith(IMG_EXTS))
        if not files:
            raise ValueError(f'input folder {path} has no images ({", ".join(IMG_EXTS)})')
        return [osp.join(path, f) for f in files]
    if not path.lower().endswith(IMG_EXTS):
        raise ValueError(f'input {path} is not an image ({", ".join(IMG_EXTS)}) or a folder')
    return [path]


def main(argv=None):
    """Returns a list of ``(image_path, predictions)`` (MMPoseInferencer's per-image dicts)."""
    args = parse_args(argv)
    for name, path in (('config', args.config), ('checkpoint', args.checkpoint),
                       ('input', args.input)):
        if not osp.exists(path):
            raise FileNotFoundError(f'{name} not found: {path}')
    inputs = list_inputs(args.input)
    import logocap_mm  # noqa: F401  (registers the plugin, safe checkpoint loading)
    from mmengine.config import Config
    from mmengine.utils import ProgressBar
    from mmpose.apis import MMPoseInferencer

    cfg = Config.fromfile(args.config)
    if args.adaptation:
        cfg.model.test_cfg.adaptation = args.adaptation
    if args.no_flip:
        cfg.model.test_cfg.flip_test = False
    # inference needs no ImageNet weights: the checkpoint has the whole model
    cfg.model.backbone.pop('init_cfg', None)
    inferencer = MMPoseInferencer(pose2d=cfg, pose2d_weights=args.checkpoint,
                                  device=args.device, show_progress=False)
    check_checkpoint(inferencer.inferencer.model, args.checkpoint, args.config)

    os.makedirs(args.out_dir, exist_ok=True)
    bar = ProgressBar(len(inputs)) if len(inputs) > 1 else None
    results, total = [], 0
    for path in inputs:
        result = next(inferencer(path, vis_out_dir=osp.join(args.out_dir, 'vis'),
                                 pred_out_dir=osp.join(args.out_dir, 'predictions'),
                                 kpt_thr=args.kpt_thr, draw_bbox=False))
        preds = result['predictions'][0]
        total += len(preds)
        results.append((path, preds))
        if bar is not None:
            bar.update()
        else:
            print(f'{path}: {len(preds)} people')
    print(f'\n{len(inputs)} image(s), {total} people; outputs in {args.out_dir}')
    return results


if __name__ == '__main__':
    try:
        main()
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f'demo.py: {e}')
