"""Export a LOGO-CAP model (network, flip test and decoder) as one ONNX graph.

    python tools/deploy/export_onnx.py CONFIG CHECKPOINT --out FILE.onnx [--input-size S]
        [--no-flip] [--adaptation full|partial|none] [--opset N] [--batch-size N]
        [--int8 --calib DIR [--calib-count N] [--int8-cmp [N]]]

The graph takes the normalised input canvas (1, 3, H, W) (H, W dynamic multiples of 64) and
returns padded poses in the canvas (keypoints (T, K, 2), keypoint_scores (T, K), scores (T,),
valid (T,), T = 30); the model's facts (keypoints, flip pairs, sigmas, input size,
normalisation, adaptation level, plugin version) are stored in the file's metadata for
``tools/deploy/onnx_infer.py``. One scale; batch 1 or a fixed batch of N canvases.
``--int8`` quantises the network (static INT8, calibrated on the images of ``--calib``
through the runtime's preprocessing); the decoder stays float32.
"""
import argparse
import os.path as osp
import sys
import tempfile
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--out', required=True, help='the .onnx file to write')
    p.add_argument('--input-size', type=int, default=None,
                   help="canvas short side S (default: the config's LogoCapResize)")
    p.add_argument('--no-flip', action='store_true', help='export without the flip test')
    p.add_argument('--adaptation', choices=('full', 'partial', 'none'), default=None,
                   help="adaptation level (default: the config's)")
    p.add_argument('--opset', type=int, default=18, help='ONNX opset (>= 17)')
    p.add_argument('--padded-slots', action='store_true',
                   help='run the local adaptation on all 30 slots (a graph without '
                   'data-dependent shapes, e.g. for runtimes without them); default: on the '
                   'valid slots only')
    p.add_argument('--batch-size', type=int, default=1,
                   help='canvases per run (1..64; > 1: a fixed batch, for folders and video)')
    p.add_argument('--int8', action='store_true',
                   help='quantise the network to INT8 (static, calibrated on --calib); the '
                   'decoder stays float32')
    p.add_argument('--calib', default=None, help='folder of calibration images (--int8)')
    p.add_argument('--calib-count', type=int, default=32,
                   help='calibration images used (evenly spread over the folder)')
    p.add_argument('--int8-cmp', nargs='?', const=-1, default=1, type=int, metavar='N',
                   help="how many of the CMP's convolutions are quantised: its first N "
                   "(default 1, the largest; 0: the CMP stays float32) or, with no N, all but "
                   "the last (fastest with many people, least accurate)")
    p.add_argument('--scales', type=float, nargs='+', default=None,
                   help='test scales; only a single scale (1) is supported')
    args = p.parse_args(argv)
    if args.int8_cmp < -1:
        p.error(f'--int8-cmp N must be >= 0, got {args.int8_cmp}')
    return args


def import_stack():
    """torch, the MMPose stack, onnx and onnxscript, or a one-line MissingDependency."""
    from logocap_rt.deps import require
    for mod in ('torch', 'mmengine', 'mmcv', 'mmpose'):
        require(mod, 'mmpose,lite,deploy', 'to export')
    for mod in ('onnx', 'onnxscript'):
        require(mod, 'deploy', 'to export')


def main(argv=None):
    args = parse_args(argv)
    import_stack()
    if args.int8:
        from logocap_mm.deploy.quantize import calibration_images
        if not args.calib:
            raise ValueError('--int8 needs --calib DIR (a folder of calibration images)')
        calibration_images(args.calib, args.calib_count)  # refuse before the slow export
    elif args.calib:
        raise ValueError('--calib is only used with --int8')
    from logocap_mm.deploy.export import export_onnx
    with tempfile.TemporaryDirectory(prefix='logocap_export_') as tmp:
        # --int8: the fp32 export in a temporary folder, then its quantised copy at --out
        out = osp.join(tmp, 'fp32.onnx') if args.int8 else args.out
        res = export_onnx(args.config, args.checkpoint, out, input_size=args.input_size,
                          flip=False if args.no_flip else None, adaptation=args.adaptation,
                          opset=args.opset, batch_size=args.batch_size, scales=args.scales,
                          trim_slots=not args.padded_slots)
        m = res['metadata']
        print(f'exported in {res["seconds"]:.1f} s (K={m["num_keypoints"]}, '
              f'S={m["input_size"]}, adaptation={m["adaptation"]}, flip={m["flip_test"]}, '
              f'batch {m["batch_size"]})')
        if args.int8:
            from logocap_mm.deploy.quantize import quantize_int8
            t = time.perf_counter()
            q = quantize_int8(out, args.out, args.calib, args.calib_count,
                              cmp=True if args.int8_cmp == -1 else args.int8_cmp)
            print(f'INT8: {len(q["nodes"])} network nodes quantised, calibrated on '
                  f'{len(q["calib_images"])} images of {args.calib} in '
                  f'{time.perf_counter() - t:.1f} s')
    print(f'wrote {args.out}')
    return 0


def run(argv=None) -> int:
    """``main`` with a refusal or a missing dependency as one line on stderr, exit 2."""
    from logocap_rt.deps import MissingDependency
    try:
        return main(argv)
    except (ValueError, MissingDependency) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(run())
