"""Run LOGO-CAP on images, a folder or a video with MMPose's inferencer; save drawings + JSON.

    python tools/demo.py CONFIG CHECKPOINT INPUT [--out-dir DIR] [--device cpu|cuda]
        [--adaptation full|partial|none] [--no-flip] [--pose-thr 0.05] [--kpt-thr 0.05]
        [--precision fp32|bf16|fp16] [--memory-format auto|channels_last|contiguous]
        [--fuse-conv-bn]

INPUT is an image file, a folder of images, or a video file (a progress bar is shown for
folders and videos). Under ``--out-dir`` only: ``predictions/`` (JSON, one file per image or
video, every pose the model returns, with its ``bbox_score``) and ``vis/`` (drawn images or
the drawn video).

Drawings and the printed people count only use poses with ``bbox_score >= --pose-thr``
(LOGO-CAP returns up to ``max_people`` poses above the centre threshold, as COCO evaluation
wants, many scoring ~0), and keypoints with a score ``>= --kpt-thr``. LOGO-CAP's keypoint
scores are heatmap values times the centre score, so a clear person scores ~0.1-0.5, below
MMPose's usual 0.3: the defaults are 0.05 for both.

A file that cannot be read (e.g. a truncated image) is reported and skipped; the run goes on
and exits non-zero at the end with the list of failed files.

The checkpoint must match the config's architecture: unlike ``mmengine.load_checkpoint``
(which only warns and then runs partly random weights), a checkpoint with missing,
unexpected or differently shaped parameters is refused with the keys named.
"""
import argparse
import os
import os.path as osp
import pickle
import sys

IMG_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
VIDEO_EXTS = ('.mp4', '.avi', '.mov', '.mkv', '.webm')
ADAPTATIONS = ('full', 'partial', 'none')
PRECISIONS = ('fp32', 'bf16', 'fp16')  # model.test_cfg.precision
MEMORY_FORMATS = ('auto', 'channels_last', 'contiguous')  # model.test_cfg.memory_format


class InputErrors(ValueError):
    """Some inputs failed (the others were processed); ``failed`` lists ``(path, reason)``."""

    def __init__(self, failed, total):
        self.failed = failed
        lines = [f'{len(failed)} of {total} input(s) failed:']
        lines += [f'  {p}: {why}' for p, why in failed]
        super().__init__('\n'.join(lines))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('input', help='image file, folder of images, or video file')
    p.add_argument('--out-dir', default='outputs/logocap_demo')
    p.add_argument('--device', default='cpu')
    p.add_argument('--adaptation', choices=ADAPTATIONS, default=None)
    p.add_argument('--no-flip', action='store_true')
    p.add_argument('--precision', choices=PRECISIONS, default=None,
                   help='autocast precision of the network (default: the config, fp32); '
                        'the decoder geometry stays fp32')
    p.add_argument('--memory-format', choices=MEMORY_FORMATS, default=None,
                   help="layout of the network's tensors (default: the config, 'auto')")
    p.add_argument('--fuse-conv-bn', action='store_true',
                   help='run the backbone and neck with their BatchNorms folded into the '
                        'convolutions (model.test_cfg.fuse_conv_bn)')
    p.add_argument('--pose-thr', type=float, default=0.05,
                   help='draw and count poses with bbox_score >= this (JSON keeps all)')
    p.add_argument('--kpt-thr', type=float, default=0.05,
                   help='draw keypoints with a score >= this')
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
    """An image -> ([path], 'image'); a folder -> (its images sorted, 'image');
    a video -> ([path], 'video')."""
    if osp.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.lower().endswith(IMG_EXTS))
        if not files:
            raise ValueError(f'input folder {path} has no images ({", ".join(IMG_EXTS)})')
        return [osp.join(path, f) for f in files], 'image'
    if path.lower().endswith(VIDEO_EXTS):
        return [path], 'video'
    if not path.lower().endswith(IMG_EXTS):
        raise ValueError(f'input {path} is not an image ({", ".join(IMG_EXTS)}), a video '
                         f'({", ".join(VIDEO_EXTS)}) or a folder')
    return [path], 'image'


def video_frames(path):
    """Frame count of a video (0 if OpenCV cannot tell); ValueError if it does not open."""
    import cv2
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise ValueError(f'cannot open video {path}')
        return max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    finally:
        cap.release()


def pose_filter(visualize, pose_thr):
    """Wrap ``MMPoseInferencer.visualize`` so that it draws poses with score >= pose_thr.

    The predictions themselves (and so the JSON) are not changed.
    """
    def wrapped(inputs, preds, **kwargs):
        kept = []
        for ds in preds:
            inst = ds.pred_instances
            if 'bbox_scores' in inst and len(inst):
                ds = ds.clone()
                ds.pred_instances = inst[inst.bbox_scores >= pose_thr]
            kept.append(ds)
        return visualize(inputs, kept, **kwargs)
    return wrapped


def failure_reason(path, err):
    """One line on why ``path`` failed; an existing file that does not decode says so."""
    msg = f'{type(err).__name__}: {err}'.splitlines()[0]
    if osp.isfile(path) and ('occurs when loading' in msg or 'failed to load image' in msg):
        return ('the file exists but cannot be decoded as an image (truncated or corrupt?); '
                f'{type(err).__name__} from the loader')
    return msg


def count_people(preds, pose_thr):
    return sum(1 for p in preds if p.get('bbox_score', 1.0) >= pose_thr)


def build_inferencer(args):
    from mmengine.config import Config
    from mmpose.apis import MMPoseInferencer

    cfg = Config.fromfile(args.config)
    if args.adaptation:
        cfg.model.test_cfg.adaptation = args.adaptation
    if args.no_flip:
        cfg.model.test_cfg.flip_test = False
    if args.precision:
        cfg.model.test_cfg.precision = args.precision
    if args.memory_format:
        cfg.model.test_cfg.memory_format = args.memory_format
    if args.fuse_conv_bn:
        cfg.model.test_cfg.fuse_conv_bn = True
    # inference needs no ImageNet weights: the checkpoint has the whole model
    cfg.model.backbone.pop('init_cfg', None)
    try:
        inferencer = MMPoseInferencer(pose2d=cfg, pose2d_weights=args.checkpoint,
                                      device=args.device, show_progress=False)
        check_checkpoint(inferencer.inferencer.model, args.checkpoint, args.config)
    except pickle.UnpicklingError as e:
        raise ValueError(f'checkpoint {args.checkpoint} refused by the weights-only loader '
                         f'(it holds objects that are not plain weights): {e}') from e
    inferencer.visualize = pose_filter(inferencer.visualize, args.pose_thr)
    return inferencer


def main(argv=None):
    """Returns a list of ``(input_path, predictions)``; for a video, ``predictions`` is the
    list of per-frame lists. Raises :class:`InputErrors` (after processing the rest) if
    some inputs failed."""
    args = parse_args(argv)
    for name, path in (('config', args.config), ('checkpoint', args.checkpoint),
                       ('input', args.input)):
        if not osp.exists(path):
            raise FileNotFoundError(f'{name} not found: {path}')
    inputs, kind = list_inputs(args.input)
    import logocap_mm  # noqa: F401  (registers the plugin, safe checkpoint loading)
    from mmengine.utils import ProgressBar

    inferencer = build_inferencer(args)
    os.makedirs(args.out_dir, exist_ok=True)
    out = dict(vis_out_dir=osp.join(args.out_dir, 'vis'),
               pred_out_dir=osp.join(args.out_dir, 'predictions'),
               kpt_thr=args.kpt_thr, draw_bbox=False)
    results, failed, total = [], [], 0
    if kind == 'video':
        path = inputs[0]
        n = video_frames(path)
        bar = ProgressBar(n) if n else None
        frames = []
        for result in inferencer(path, **out):
            frames.append(result['predictions'][0])
            if bar is not None:
                bar.update()
        if not frames:
            raise ValueError(f'video {path} has no readable frames')
        results.append((path, frames))
        people = [count_people(f, args.pose_thr) for f in frames]
        print(f'\n{path}: {len(frames)} frame(s), {max(people)} people at most '
              f'(pose score >= {args.pose_thr}); outputs in {args.out_dir}')
        return results
    bar = ProgressBar(len(inputs)) if len(inputs) > 1 else None
    for path in inputs:
        try:
            result = next(inferencer(path, **out))
        except Exception as e:  # noqa: BLE001 - one bad file must not stop the others
            failed.append((path, failure_reason(path, e)))
            if bar is None:
                print(f'{path}: skipped ({failed[-1][1]})', file=sys.stderr)
            continue
        finally:
            if bar is not None:
                bar.update()
        preds = result['predictions'][0]
        n = count_people(preds, args.pose_thr)
        total += n
        results.append((path, preds))
        if bar is None:
            print(f'{path}: {n} people (pose score >= {args.pose_thr})')
    print(f'\n{len(results)} image(s), {total} people (pose score >= {args.pose_thr}); '
          f'outputs in {args.out_dir}')
    if failed:
        raise InputErrors(failed, len(inputs))
    return results


if __name__ == '__main__':
    try:
        main()
    except (ValueError, FileNotFoundError, pickle.UnpicklingError) as e:
        sys.exit(f'demo.py: {e}')
