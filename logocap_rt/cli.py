"""LOGO-CAP inference from an exported ONNX file (numpy, OpenCV and onnxruntime only).

    python -m logocap_rt FILE.onnx INPUT [INPUT ...] --out-dir DIR
        [--threads N] [--kpt-thr 0.05] [--pose-thr 0.05] [--no-draw] [--max-pixels N]
        [--camera N] [--track] [--smooth] [--max-frames N] [--backend onnxruntime|openvino]
        [--workers W]

INPUT: image files, folders (their images, not recursive), video files, a camera index
(``0``) or a video URL. Outputs are named after the input's full file name, so ``a.jpg``
and ``a.png`` keep separate results: ``DIR/a.jpg.json`` (MMPoseInferencer's
``pred_out_dir`` format: a list of instances with ``keypoints``, ``keypoint_scores``,
``bbox``, ``bbox_score``; every pose the model returns) and the drawing ``DIR/a.jpg``
(poses with ``bbox_score >= --pose-thr``, keypoints with a score ``>= --kpt-thr``). A video
``clip.mp4`` gives ``DIR/clip.mp4.json`` (``[{"frame_id", "instances"}, ...]``) and the
drawn ``DIR/clip.mp4``. Files are written atomically, never over an input or over anything
that is not a regular file. ``--workers W`` processes W images at once, in threads (for
throughput on folders; each engine run uses ``--threads``, by default the CPU count // W
when W > 1); videos run one at a time. An image that fails is reported and skipped; the
run goes on, summarises and exits 1. Ctrl-C during a video keeps the frames done (``DIR/clip.partial.mp4``,
``DIR/clip.mp4.partial.json``) and exits 130. Refused arguments: one line, exit 2.

Videos, cameras (``--camera N``, or ``0`` as an input) and streams: ``--track`` gives every
pose a ``track_id`` (stable across frames; -1 = not tracked: a pose under ``--pose-thr``) and
draws each track in its own colour with its id; ``--smooth`` also smooths the tracked keypoints
(One-Euro; the detected ones stay in ``keypoints_raw``); ``--max-frames N`` stops after N
frames. A progress line (files) or the frames per second (cameras, streams) is shown on stderr.
"""
import argparse
import os
import os.path as osp
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from .deps import MissingDependency
from .images import ENV_MAX_PIXELS, max_pixels, read_image
from .outputs import (InputSet, atomic_write, check_out_dir, check_output, json_text,
                      result_names)
from .video import drawn_video_name, is_video, process_video
from .video_track import VideoOptions, add_arguments, check_arguments

IMG_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
INTERRUPTED = 130


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('model', help='.onnx file written by tools/deploy/export_onnx.py')
    p.add_argument('inputs', nargs='*',
                   help='image or video files, folders of images, a camera index, a URL')
    p.add_argument('--out-dir', required=True, help='folder for the JSON files and drawings')
    p.add_argument('--threads', type=int, default=None, help='ONNX Runtime intra-op threads')
    p.add_argument('--kpt-thr', type=float, default=0.05)
    p.add_argument('--pose-thr', type=float, default=0.05)
    p.add_argument('--no-draw', action='store_true', help='write the JSON files only')
    p.add_argument('--max-pixels', type=int, default=None,
                   help='refuse images and video frames with more pixels (read from the '
                        f'header, before decoding; default: ${ENV_MAX_PIXELS} or 178956970; '
                        '0: no limit)')
    p.add_argument('--backend', choices=('onnxruntime', 'openvino'), default='onnxruntime',
                   help='inference engine (openvino: pip install logocap-mm[openvino])')
    p.add_argument('--workers', type=int, default=1,
                   help='images processed at once, in threads (default 1; with W > 1 '
                        'and no --threads, each run gets the CPU count // W threads)')
    add_arguments(p)
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error(f'--workers must be >= 1, got {args.workers}')
    if args.camera is not None:
        args.inputs.append(str(args.camera))
    if not args.inputs:
        p.error('give at least one INPUT or --camera N')
    return check_arguments(args)


def list_inputs(inputs):
    """Input list: folders -> their image files (sorted, not recursive); files, camera
    indices and URLs as given; the same file twice is kept once."""
    out, seen = [], set()
    for p in inputs:
        if osp.isdir(p):
            found = sorted(osp.join(p, f) for f in os.listdir(p)
                           if f.lower().endswith(IMG_EXTS) and osp.isfile(osp.join(p, f)))
        elif osp.isfile(p) or p.isdigit() or '://' in p:
            found = [p]
        else:
            raise ValueError(f'input {p} does not exist')
        for f in found:
            key = f if (f.isdigit() or '://' in f) else osp.realpath(f)
            if key not in seen:
                seen.add(key)
                out.append(f)
    if not out:
        raise ValueError(f'no image found in {inputs}')
    return out


def output_paths(inputs, out_dir, draw, files=None):
    """input -> (json path, drawing path or None), every path checked (:mod:`.outputs`)."""
    files = files if files is not None else InputSet(inputs)
    out, taken = {}, {}
    for src, name in result_names(inputs).items():
        video = is_video(src)
        paths = (osp.join(out_dir, name + '.json'),
                 osp.join(out_dir, drawn_video_name(name) if video else name)
                 if draw else None)
        for q in paths:
            if q is not None:
                check_output(q, files)
                if q.casefold() in taken:
                    raise ValueError(f'{src} and {taken[q.casefold()]} would both write {q}; '
                                     'run them separately')
                taken[q.casefold()] = src
        out[src] = paths
    return out


def _one_line(err: BaseException) -> str:
    """The first line of an error (with its type unless it is a ValueError)."""
    msg = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), '')
    return msg if type(err) is ValueError else f'{type(err).__name__}: {msg}'


def _image(model, src, paths, args, files, draw_instances):
    import cv2
    img = read_image(src, args.max_pixels)
    t = time.perf_counter()
    inst = model(img)
    dt = time.perf_counter() - t
    jpath, dpath = paths
    atomic_write(jpath, json_text(inst), files)
    if dpath:
        shown = [i for i in inst if i['bbox_score'] >= args.pose_thr]
        drawn = draw_instances(img, shown, model.meta.get('skeleton_links'), args.kpt_thr)
        ext = osp.splitext(dpath)[1] or '.jpg'
        ok, buf = cv2.imencode(ext, drawn)
        if not ok:
            raise ValueError(f'OpenCV cannot encode the drawing as {ext}')
        atomic_write(dpath, buf.tobytes(), files)
    n = sum(i['bbox_score'] >= args.pose_thr for i in inst)
    print(f'{src}: {n} people (bbox_score >= {args.pose_thr}), {dt * 1e3:.0f} ms')


def _video(model, src, paths, args, files, draw_instances):
    links = model.meta.get('skeleton_links')
    opts = VideoOptions(args, src, model.meta.get('sigmas'))
    draw = opts.draw if args.track else draw_instances

    def infer(frame):
        inst = opts.track(model(frame))
        if paths[1] is None:
            return inst, None
        shown = [i for i in inst if i['bbox_score'] >= args.pose_thr]
        return inst, draw(frame, shown, links, args.kpt_thr)

    try:
        run = process_video(src, infer, paths[0], paths[1], files, args.max_pixels,
                            opts.progress, opts.opener)
    finally:
        opts.close()
    done = f'{len(run.frames)} of {run.total}' if run.total else f'{len(run.frames)}'
    written = ', '.join(p for p in (run.json_path, run.video_path) if p)
    if run.interrupted:
        print(f'{src}: interrupted after {done} frame(s); partial outputs: '
              f'{written or "none"}', file=sys.stderr)
    else:
        print(f'{src}: {len(run.frames)} frame(s); outputs: {written}')
    return run


def _run_inputs(model, inputs, paths, args, files, draw_instances):
    """Every input in order (images ``--workers`` at a time) -> (failures as (input,
    reason), interrupted, inputs done)."""
    failed, done = [], 0
    pool = ThreadPoolExecutor(args.workers) if args.workers > 1 else None
    pending: deque = deque()  # (input, future) of the images in flight, oldest first

    def fail(src, e):
        failed.append((src, _one_line(e)))
        print(f'FAILED {src}: {failed[-1][1]}', file=sys.stderr)

    def settle(limit):
        nonlocal done
        while len(pending) > limit:
            src, fut = pending.popleft()
            try:
                fut.result()
            except Exception as e:  # noqa: BLE001 - one bad input must not stop the others
                fail(src, e)
            done += 1

    interrupted = False
    try:
        for src in inputs:
            try:
                if is_video(src):
                    settle(0)  # the images before it first, then the video by itself
                    run = _video(model, src, paths[src], args, files, draw_instances)
                    failed += [(src, e) for e in run.errors]
                    if run.interrupted:
                        interrupted = True
                        break
                elif pool is not None:
                    pending.append((src, pool.submit(_image, model, src, paths[src], args,
                                                     files, draw_instances)))
                    settle(2 * args.workers)
                    continue
                else:
                    _image(model, src, paths[src], args, files, draw_instances)
            except Exception as e:  # noqa: BLE001 - one bad input must not stop the others
                fail(src, e)
            done += 1
        settle(0)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        done += _stop(pool, pending)
    return failed, interrupted, done


def _stop(pool, pending) -> int:
    """Drop the images not started, let the started ones finish (their files are written
    whole); the number of those that succeeded."""
    if pool is None:
        return 0
    for _, fut in pending:
        fut.cancel()
    pool.shutdown(wait=True)
    ok = sum(1 for _, f in pending if not f.cancelled() and f.exception() is None)
    pending.clear()
    return ok


def main(argv=None):
    """Returns the exit status: 0, 1 (some inputs failed) or 130 (interrupted)."""
    args = parse_args(argv)
    args.max_pixels = max_pixels(args.max_pixels)
    from . import LogoCapONNX, draw_instances
    inputs = list_inputs(args.inputs)
    if InputSet(inputs).which(args.model) is not None:
        raise ValueError(f'the model file {args.model} is among the inputs')
    files = InputSet(inputs + [args.model])
    check_out_dir(args.out_dir)
    paths = output_paths(inputs, args.out_dir, not args.no_draw, files)
    t0 = time.perf_counter()
    threads = args.threads
    if threads is None and args.workers > 1:
        threads = max(1, (os.cpu_count() or 1) // args.workers)
    model = LogoCapONNX(args.model, num_threads=threads, backend=args.backend)
    print(f'loaded {args.model} in {time.perf_counter() - t0:.2f} s '
          f'(adaptation={model.meta["adaptation"]}, flip={model.meta["flip_test"]}, '
          f'S={model.meta["input_size"]})')
    failed, interrupted, done = _run_inputs(model, inputs, paths, args, files,
                                            draw_instances)
    if interrupted:
        print(f'interrupted: {done} of {len(inputs)} input(s) done', file=sys.stderr)
    if failed:
        print(f'{len(failed)} of {len(inputs)} input(s) failed:', file=sys.stderr)
        for p, why in failed:
            print(f'  {p}: {why}', file=sys.stderr)
    elif not interrupted:
        print(f'{done} input(s) done; outputs in {args.out_dir}')
    return INTERRUPTED if interrupted else (1 if failed else 0)


def run(argv=None) -> int:
    """``main`` with a refused input (ValueError) or a missing optional dependency as one
    line on stderr and exit status 2."""
    try:
        return main(argv)
    except (ValueError, MissingDependency) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return INTERRUPTED


if __name__ == '__main__':
    sys.exit(run())
