"""LOGO-CAP inference from an exported ONNX file (numpy, OpenCV and onnxruntime only).

    python -m logocap_rt FILE.onnx IMAGE_OR_DIR [IMAGE_OR_DIR ...] --out-dir DIR
        [--threads N] [--kpt-thr 0.05] [--pose-thr 0.05] [--no-draw]
        [--backend onnxruntime|openvino] [--batch-size N]

Writes ``DIR/<image stem>.json`` (MMPoseInferencer's ``pred_out_dir`` format: a list of
instances with ``keypoints``, ``keypoint_scores``, ``bbox``, ``bbox_score``; every pose the
model returns) and ``DIR/<image stem>.jpg`` (drawn: poses with ``bbox_score >= --pose-thr``,
keypoints with a score ``>= --kpt-thr``). Files are written atomically and never over an
input. An unreadable image is reported and skipped; the exit status is then 1.
"""
import argparse
import json
import os
import os.path as osp
import sys
import tempfile
import time

IMG_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('model', help='.onnx file written by tools/deploy/export_onnx.py')
    p.add_argument('inputs', nargs='+', help='image files and/or folders of images')
    p.add_argument('--out-dir', required=True, help='folder for the JSON files and drawings')
    p.add_argument('--threads', type=int, default=None, help='ONNX Runtime intra-op threads')
    p.add_argument('--kpt-thr', type=float, default=0.05)
    p.add_argument('--pose-thr', type=float, default=0.05)
    p.add_argument('--no-draw', action='store_true', help='write the JSON files only')
    p.add_argument('--backend', choices=('onnxruntime', 'openvino'), default='onnxruntime',
                   help='inference engine (openvino: pip install logocap-mm[openvino])')
    p.add_argument('--batch-size', type=int, default=None,
                   help="images read and run together (canvases of one size; default: the "
                   "file's batch size, export_onnx.py --batch-size)")
    return p.parse_args(argv)


def list_images(inputs):
    """Image paths of the inputs (folders: their image files, sorted, not recursive)."""
    out = []
    for p in inputs:
        if osp.isdir(p):
            out += sorted(osp.join(p, f) for f in os.listdir(p)
                          if f.lower().endswith(IMG_EXTS) and osp.isfile(osp.join(p, f)))
        elif osp.isfile(p):
            out.append(p)
        else:
            raise ValueError(f'input {p} does not exist')
    if not out:
        raise ValueError(f'no image found in {inputs}')
    return out


def write_atomic(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix='.' + osp.basename(path) + '.', suffix='.tmp',
                               dir=osp.dirname(path))
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 -> the usual permissions
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def output_paths(images, out_dir, draw):
    """image -> (json path, drawing path or None); refuses clashing stems and inputs."""
    inputs = {osp.realpath(p) for p in images}
    seen, out = {}, {}
    for img in images:
        stem = osp.splitext(osp.basename(img))[0]
        if stem in seen:
            raise ValueError(f'{img} and {seen[stem]} would both write {stem}.json in '
                             f'{out_dir}; run them separately')
        seen[stem] = img
        paths = (osp.join(out_dir, stem + '.json'),
                 osp.join(out_dir, stem + '.jpg') if draw else None)
        for q in paths:
            if q is not None and osp.realpath(q) in inputs:
                raise ValueError(f'output {q} would overwrite an input; choose another '
                                 '--out-dir')
        out[img] = paths
    return out


def write_outputs(img_path, img, inst, dt, paths, model, args):
    """The JSON file and the drawing of one image (atomically), and its log line."""
    import cv2

    from . import draw_instances
    jpath, dpath = paths[img_path]
    write_atomic(jpath, json.dumps(inst, indent=2).encode())
    if dpath:
        shown = [i for i in inst if i['bbox_score'] >= args.pose_thr]
        drawn = draw_instances(img, shown, model.meta.get('skeleton_links'),
                               args.kpt_thr)
        ok, buf = cv2.imencode('.jpg', drawn)
        if ok:
            write_atomic(dpath, buf.tobytes())
    n = sum(i['bbox_score'] >= args.pose_thr for i in inst)
    print(f'{img_path}: {n} people (bbox_score >= {args.pose_thr}), {dt * 1e3:.0f} ms')


def main(argv=None):
    args = parse_args(argv)
    from . import LogoCapONNX, read_image
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f'--batch-size must be >= 1, got {args.batch_size}')
    images = list_images(args.inputs)
    if osp.realpath(args.model) in {osp.realpath(p) for p in images}:
        raise ValueError('the model file is among the inputs')
    os.makedirs(args.out_dir, exist_ok=True)
    paths = output_paths(images, args.out_dir, not args.no_draw)
    t0 = time.perf_counter()
    model = LogoCapONNX(args.model, num_threads=args.threads, backend=args.backend)
    print(f'loaded {args.model} in {time.perf_counter() - t0:.2f} s '
          f'(adaptation={model.meta["adaptation"]}, flip={model.meta["flip_test"]}, '
          f'S={model.meta["input_size"]})')
    failed = []
    step = args.batch_size or model.batch_size
    for chunk in range(0, len(images), step):
        batch = []  # (path, image) of the readable images of this chunk
        for img_path in images[chunk:chunk + step]:
            try:
                batch.append((img_path, read_image(img_path)))
            except ValueError as e:
                failed.append((img_path, str(e)))
                print(f'FAILED {img_path}: {e}', file=sys.stderr)
        if not batch:
            continue
        try:
            t = time.perf_counter()
            results = model.predict([b[1] for b in batch], batch_size=step)
            dts = [(time.perf_counter() - t) / len(batch)] * len(batch)
        except ValueError:  # an image the model refuses: find it, run the others alone
            results, dts = [], []
            for img_path, img in batch:
                try:
                    t = time.perf_counter()
                    results.append(model(img))
                    dts.append(time.perf_counter() - t)
                except ValueError as e:
                    failed.append((img_path, str(e)))
                    print(f'FAILED {img_path}: {e}', file=sys.stderr)
                    results.append(None)
                    dts.append(0.)
        for (img_path, img), inst, dt in zip(batch, results, dts):
            if inst is not None:
                write_outputs(img_path, img, inst, dt, paths, model, args)
    if failed:
        print(f'{len(failed)} of {len(images)} images failed:', file=sys.stderr)
        for p, why in failed:
            print(f'  {p}: {why}', file=sys.stderr)
        return 1
    return 0


def run(argv=None) -> int:
    """``main`` with a refused input (ValueError) as one line on stderr and exit status 2."""
    try:
        return main(argv)
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(run())
