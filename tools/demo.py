"""Run LOGO-CAP on images, a folder or a video with MMPose's inferencer; save drawings + JSON.

    python tools/demo.py CONFIG CHECKPOINT INPUT [--out-dir DIR] [--device cpu|cuda]
        [--adaptation full|partial|none] [--no-flip] [--pose-thr 0.05] [--kpt-thr 0.05]
        [--precision fp32|bf16|fp16] [--memory-format auto|channels_last|contiguous]
        [--fuse-conv-bn] [--max-pixels N] [--camera N] [--track] [--smooth] [--max-frames N]

INPUT is an image file, a folder of images, a video file, a camera index (``0``) or a video
URL (a progress bar is shown for folders and videos). Under ``--out-dir`` only, named after
the input's full file name (so ``a.jpg`` and ``a.png`` of one folder keep both results):
``predictions/a.jpg.json`` (JSON, every pose the model returns, with its ``bbox_score``;
for a video ``predictions/clip.mp4.json``, one entry per frame) and ``vis/a.jpg`` (the
drawing, in the input's format; for a video ``vis/clip.mp4``). Outputs are written
atomically and never over an input (e.g. an input that lies in ``DIR/vis``) or over
anything that is not a regular file: such a run is refused before it starts.

Drawings and the printed people count only use poses with ``bbox_score >= --pose-thr``
(LOGO-CAP returns up to ``max_people`` poses above the centre threshold, as COCO evaluation
wants, many scoring ~0), and keypoints with a score ``>= --kpt-thr``. LOGO-CAP's keypoint
scores are heatmap values times the centre score, so a clear person scores ~0.1-0.5, below
MMPose's usual 0.3: the defaults are 0.05 for both.

An image that cannot be read (truncated, corrupt, over the ``--max-pixels`` limit, which is
checked from the file header before decoding) is reported and skipped; the run goes on and
exits 1 at the end with the list of failed files. Ctrl-C stops the run: for a video the
frames done are kept as ``vis/clip.partial.mp4`` and ``predictions/clip.mp4.partial.json``
(a complete earlier result is not replaced); the exit status is then 130.

Videos, cameras (``--camera N`` instead of INPUT) and streams: ``--track`` gives every pose a
``track_id`` in the JSON (stable across frames; -1 = not tracked: a pose under the pose
threshold) and draws each track in its own colour with its id (our drawing on top of the
inferencer's predictions); ``--smooth`` also smooths the tracked keypoints (One-Euro; the
detected ones stay in ``keypoints_raw``); ``--max-frames N`` stops after N frames. Files show a
progress line, cameras and streams the frames per second.

The checkpoint must match the config's architecture: unlike ``mmengine.load_checkpoint``
(which only warns and then runs partly random weights), a checkpoint with missing,
unexpected or differently shaped parameters is refused with the keys named.
"""
import argparse
import os
import os.path as osp
import pickle
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:  # runnable from a clone
    sys.path.insert(0, ROOT)

from logocap_rt.deps import MissingDependency, require  # noqa: E402
from logocap_rt.images import ENV_MAX_PIXELS, max_pixels, read_image  # noqa: E402
from logocap_rt.outputs import (InputSet, atomic_write, check_out_dir,  # noqa: E402
                                check_output, json_text, result_names)
from logocap_rt.video import VIDEO_EXTS, drawn_video_name, is_video  # noqa: E402
from logocap_rt.video_track import (VideoOptions, add_arguments,  # noqa: E402
                                    check_arguments)

IMG_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
INTERRUPTED = 130
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


class Interrupted(Exception):
    """Ctrl-C stopped the run after the outputs of the inputs / frames done were written."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('input', nargs='?',
                   help='image file, folder of images, video file, camera index or URL')
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
    p.add_argument('--max-pixels', type=int, default=None,
                   help='refuse images and video frames with more pixels (read from the '
                        f'header, before decoding; default: ${ENV_MAX_PIXELS} or 178956970; '
                        '0: no limit)')
    p.add_argument('--pose-thr', type=float, default=0.05,
                   help='draw and count poses with bbox_score >= this (JSON keeps all)')
    p.add_argument('--kpt-thr', type=float, default=0.05,
                   help='draw keypoints with a score >= this')
    add_arguments(p)
    args = p.parse_args(argv)
    if (args.input is None) == (args.camera is None):
        p.error('give INPUT or --camera N (one of them)')
    if args.camera is not None:
        args.input = str(args.camera)
    return check_arguments(args)


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
    # silent: the inferencer has already logged the loading of this file
    ckpt = _load_checkpoint(checkpoint, map_location='cpu', logger='silent')
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
    a video file, camera index or URL -> ([path], 'video')."""
    if osp.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.lower().endswith(IMG_EXTS)
                       and osp.isfile(osp.join(path, f)))
        if not files:
            raise ValueError(f'input folder {path} has no images ({", ".join(IMG_EXTS)})')
        return [osp.join(path, f) for f in files], 'image'
    if is_video(path):
        return [path], 'video'
    if not path.lower().endswith(IMG_EXTS):
        raise ValueError(f'input {path} is not an image ({", ".join(IMG_EXTS)}), a video '
                         f'({", ".join(VIDEO_EXTS)}) or a folder')
    return [path], 'image'


def output_paths(inputs, kind, out_dir, files):
    """input -> (predictions JSON path, drawing path), every path checked up front."""
    out = {}
    for src, name in result_names(inputs).items():
        vis = drawn_video_name(name) if kind == 'video' else name
        paths = (osp.join(out_dir, 'predictions', name + '.json'),
                 osp.join(out_dir, 'vis', vis))
        for q in paths:
            check_output(q, files)
        out[src] = paths
    return out


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


def one_line(err):
    """The first line of an error (with its type unless it is a ValueError)."""
    msg = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), '')
    return msg if type(err) is ValueError else f'{type(err).__name__}: {msg}'


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


def import_stack():
    """The MMPose stack, or a one-line :class:`MissingDependency` naming the extra."""
    for mod in ('torch', 'mmengine', 'mmcv', 'mmpose.apis'):
        require(mod, 'mmpose,lite', 'by tools/demo.py')
    import logocap_mm  # noqa: F401  (registers the plugin, safe checkpoint loading)


def infer(inferencer, img, kpt_thr):
    """One (H, W, 3) BGR image -> (instances, drawing (H, W, 3) BGR)."""
    res = next(inferencer(img, return_vis=True, kpt_thr=kpt_thr, draw_bbox=False))
    return res['predictions'][0], res['visualization'][0][..., ::-1]


def write_image_result(img_path, preds, drawn, paths, files):
    import cv2
    atomic_write(paths[0], json_text(preds), files)
    ext = osp.splitext(paths[1])[1] or '.jpg'
    ok, buf = cv2.imencode(ext, drawn)
    if not ok:
        raise ValueError(f'OpenCV cannot encode the drawing of {img_path} as {ext}')
    atomic_write(paths[1], buf.tobytes(), files)


def run_video(inferencer, path, paths, files, args):
    from logocap_rt import video
    meta = inferencer.inferencer.model.dataset_meta or {}
    opts = VideoOptions(args, path, meta.get('sigmas'))
    links = meta.get('skeleton_links')

    def infer_frame(frame):
        preds, drawn = infer(inferencer, frame, args.kpt_thr)
        if not args.track:
            return preds, drawn
        preds = opts.track(preds)
        shown = [p for p in preds if p.get('bbox_score', 1.0) >= args.pose_thr]
        return preds, opts.draw(frame, shown, links, args.kpt_thr)

    try:
        run = video.process_video(path, infer_frame, paths[0], paths[1], files,
                                  args.max_pixels, opts.progress, opts.opener)
    finally:
        opts.close()
    people = [count_people(f, args.pose_thr) for f in run.frames]
    written = ', '.join(p for p in (run.json_path, run.video_path) if p) or 'none'
    if run.interrupted:
        done = f'{len(run.frames)} of {run.total}' if run.total else str(len(run.frames))
        raise Interrupted(f'{path}: interrupted after {done} frame(s); partial outputs: '
                          f'{written}')
    print(f'\n{path}: {len(run.frames)} frame(s), {max(people)} people at most '
          f'(pose score >= {args.pose_thr}); outputs: {written}')
    if run.errors:
        raise InputErrors([(path, e) for e in run.errors], 1)
    return [(path, run.frames)]


def main(argv=None):
    """Returns a list of ``(input_path, predictions)``; for a video, ``predictions`` is the
    list of per-frame lists. Raises :class:`InputErrors` (after processing the rest) if
    some inputs failed, :class:`Interrupted` after Ctrl-C (outputs of the work done are
    written)."""
    args = parse_args(argv)
    for name, path in (('config', args.config), ('checkpoint', args.checkpoint),
                       ('input', args.input)):
        stream = name == 'input' and (path.isdigit() or '://' in path)  # camera, URL
        if not stream and not osp.exists(path):
            raise FileNotFoundError(f'{name} not found: {path}')
    args.max_pixels = max_pixels(args.max_pixels)
    inputs, kind = list_inputs(args.input)
    files = InputSet(inputs + [args.config, args.checkpoint])
    if osp.exists(args.out_dir) and not osp.isdir(args.out_dir):
        raise ValueError(f'--out-dir {args.out_dir} exists and is not a directory')
    paths = output_paths(inputs, kind, args.out_dir, files)
    import_stack()
    from mmengine.utils import ProgressBar

    inferencer = build_inferencer(args)
    for sub in ('vis', 'predictions'):
        check_out_dir(osp.join(args.out_dir, sub), what='output folder')
    if kind == 'video':
        try:
            return run_video(inferencer, inputs[0], paths[inputs[0]], files, args)
        except (ValueError, Interrupted):
            raise
        except Exception as e:  # noqa: BLE001 - reported as a failed input, not a traceback
            raise InputErrors([(inputs[0], one_line(e))], 1) from e
    results, failed, total = [], [], 0
    bar = ProgressBar(len(inputs)) if len(inputs) > 1 else None
    try:
        for path in inputs:
            try:
                img = read_image(path, args.max_pixels)
                preds, drawn = infer(inferencer, img, args.kpt_thr)
                write_image_result(path, preds, drawn, paths[path], files)
            except Exception as e:  # noqa: BLE001 - one bad file must not stop the others
                failed.append((path, one_line(e)))
                if bar is None:
                    print(f'{path}: skipped ({failed[-1][1]})', file=sys.stderr)
                continue
            finally:
                if bar is not None:
                    bar.update()
            n = count_people(preds, args.pose_thr)
            total += n
            results.append((path, preds))
            if bar is None:
                print(f'{path}: {n} people (pose score >= {args.pose_thr})')
    except KeyboardInterrupt:
        raise Interrupted(f'interrupted after {len(results) + len(failed)} of {len(inputs)} '
                          f'image(s); outputs of those done are in {args.out_dir}') from None
    print(f'\n{len(results)} image(s), {total} people (pose score >= {args.pose_thr}); '
          f'outputs in {args.out_dir}')
    if failed:
        raise InputErrors(failed, len(inputs))
    return results


def run(argv=None) -> int:
    """``main`` with its refusals as one line (or the list of failed inputs) on stderr:
    exit 0, 1 (some inputs failed), 2 (refused, missing dependency) or 130 (Ctrl-C)."""
    try:
        main(argv)
    except InputErrors as e:
        print(f'demo.py: {e}', file=sys.stderr)
        return 1
    except Interrupted as e:
        print(f'demo.py: {e}', file=sys.stderr)
        return INTERRUPTED
    except KeyboardInterrupt:
        print('demo.py: interrupted', file=sys.stderr)
        return INTERRUPTED
    except (ValueError, FileNotFoundError, MissingDependency, pickle.UnpicklingError) as e:
        print(f'demo.py: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(run())
