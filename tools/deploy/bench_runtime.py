"""The runtime's engines side by side: PyTorch (default settings), ONNX Runtime fp32 / INT8,
OpenVINO fp32 / INT8, and batched throughput, in one run.

    python tools/deploy/bench_runtime.py [CONFIG] [--input-size 512] [--threads 1]
        [--persons 1 30] [--repeats 3] [--batches 1 4 8] [--batch-people 0|30] [--workers W]
        [--calib DIR] [--out FILE.json]

Builds the model (random weights unless ``--checkpoint``: speed does not depend on them),
exports the fp32 graph once and quantises it (``--calib``: real images through the
runtime's preprocessing; the decoder stays fp32). The number of people N is set through a
constant centre channel, as ``tools/deploy/bench_onnx.py`` does (the N = 30 files are copies
with another bias of that channel, a float32 initializer in both files). Per N it times,
alternately repeat by repeat so that every engine sees the same load, one image on an
``S x S`` canvas, flip test on:

* ``pytorch``: backbone + heads + flip merge, then the decoder on a synthetic scene of N
  people (fast global path, slots trimmed), as ``bench_onnx.py``, in the model's default
  test-time plan (what ``predict`` runs: on CPU channels_last with BatchNorms folded);
  ``pytorch_contiguous``: the same with the network as written (contiguous, unfolded);
* ``ort_fp32`` / ``ort_int8``: ONNX Runtime, the whole graph + the numpy pose NMS;
* ``ov_fp32`` / ``ov_int8``: OpenVINO (CPU plugin, f32 precision hint) on the same files.

Then the throughput on ``--batch-images`` random ``S x S`` images: files exported with
``--batch-size`` B, images/s of ``LogoCapONNX.predict`` at each B (ONNX Runtime and, with
``--batch-openvino``, OpenVINO), with ``--workers W`` also the batch-1 file with W runs in
flight (``predict(workers=W)``, sessions of ``--threads // W`` threads), and that their
poses equal batch 1's; ``--batch-people``: 0 valid centres (the network and an empty
decoder) or ``topk`` (every slot valid: the batched files run the global stage on all).
Per image above, preprocessing (the same numpy code everywhere) is not timed; in the
throughput rows it is (a normalisation here). Ratios are of the minima.
"""
import json
import os
import os.path as osp
import shutil
import sys
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from bench_common import (ROOT, add_out, build_model, canvas_meta, check_out,  # noqa: E402
                          decode, flip_pair, model_parser, ort_image, timed, write_out)


def parse_args(argv=None):
    p = model_parser(__doc__, threads=1, repeats=3, persons_nargs='*',
                     persons_help='people per image (1 and/or 30; none: only the batch timing)')
    p.add_argument('--batches', type=int, nargs='*', default=[1, 4, 8])
    p.add_argument('--batch-images', type=int, default=8)
    p.add_argument('--batch-repeats', type=int, default=2)
    p.add_argument('--batch-people', type=int, default=0,
                   help='people per image in the throughput rows: 0 (no valid centre: '
                   'the network and an empty decoder; default) or the decoder topk')
    p.add_argument('--workers', type=int, nargs='*', default=[], metavar='W',
                   help='also time the batch-1 file with W runs at once (predict(workers=W); '
                   'each session gets --threads // W threads)')
    p.add_argument('--calib', default=osp.join(ROOT, 'tests', 'data', 'coco'),
                   help='calibration images for INT8 (default: the bundled COCO images)')
    p.add_argument('--calib-count', type=int, default=8)
    p.add_argument('--int8-cmp', type=int, nargs='*', default=[], metavar='N',
                   help="also time INT8 files whose CMP's first N convolutions are quantised "
                   "(one file per N, rows int8_cmpN; the int8 row is the default, N = 1)")
    p.add_argument('--no-openvino', action='store_true')
    p.add_argument('--batch-openvino', action='store_true',
                   help='time the batched files with OpenVINO too')
    args = add_out(p).parse_args(argv)
    if any(w < 1 for w in args.workers):
        p.error(f'--workers values must be >= 1, got {args.workers}')
    if args.workers and 1 not in args.batches:
        p.error('--workers needs batch 1 among --batches (its file and its baseline)')
    if any(n < 0 for n in args.int8_cmp):
        p.error(f'--int8-cmp values must be >= 0, got {args.int8_cmp}')
    return args


def set_centre_bias(src, dst, bias):
    """Copy ``src`` with the head's last-convolution bias (K+1,) replaced by ``bias``."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    m = onnx.load(src)
    hits = 0
    for init in m.graph.initializer:
        if init.name.endswith('heatmap_final.bias'):
            init.CopyFrom(numpy_helper.from_array(np.asarray(bias, np.float32), init.name))
            hits += 1
    if hits != 1:
        raise ValueError(f'{src}: {hits} initializers named *heatmap_final.bias')
    onnx.save(m, dst)


def max_pose_diff(a, b):
    """(same pose count, max |d keypoint| px) of two instance lists."""
    import numpy as np
    if len(a) != len(b):
        return False, float('inf')
    if not a:
        return True, 0.
    return True, float(np.abs(np.array([p['keypoints'] for p in a]) -
                              np.array([p['keypoints'] for p in b])).max())


def main(argv=None):
    args = parse_args(argv)
    inputs = check_out(args)
    tmp = tempfile.mkdtemp(prefix='logocap_bench_rt_')
    try:
        return run(args, tmp, inputs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp, inputs=None):
    import torch

    from logocap_mm.deploy.export import export_model
    from logocap_mm.deploy.quantize import quantize_int8
    from logocap_rt import LogoCapONNX
    from logocap_mm.benchmark import synthetic_scene
    torch.set_num_threads(args.threads)
    use_ov, ov_version = not args.no_openvino, None
    if use_ov:
        try:
            import openvino
            ov_version = openvino.__version__
        except ImportError:
            use_ov, ov_version = False, None
    cfg, model, flip_idx = build_model(args)
    head = model.head
    # PyTorch's default plan runs on a copy (the plan switches the copy's layout; the
    # exports below read the model as written)
    import copy

    from logocap_mm.models.precision import FP32, resolve_plan, use_plan
    model_d = copy.deepcopy(model)
    plan = resolve_plan(model_d.test_cfg, 'cpu')
    import onnxruntime as ort
    S, K = args.input_size, head.num_keypoints
    out = dict(config=args.config, input_size=S, threads=args.threads, flip=True,
               torch=torch.__version__, onnxruntime=ort.__version__, openvino=ov_version,
               load_before=os.getloadavg(), cpus=os.cpu_count(), rows=[], batch=[],
               pytorch_plan=dict(channels_last=plan.channels_last, dtype=str(plan.dtype),
                                 fuse_conv_bn=plan.fuse_conv_bn))
    x = torch.randn(1, 3, S, S, generator=torch.Generator().manual_seed(0))
    xn = x.numpy()
    cmeta = canvas_meta(S)

    # one export and one quantisation: the N-people variants differ only in the bias of
    # the centre channel of the head's last convolution, a float32 initializer in both
    # files (the INT8 file keeps the network's last layers in float32)
    for n in args.persons:
        if n not in (1, head.pose_decoder.topk):
            raise ValueError(f'--persons: 1 and {head.pose_decoder.topk} are supported')
    if args.batch_people not in (0, head.pose_decoder.topk):
        raise ValueError(f'--batch-people: 0 and {head.pose_decoder.topk} are supported')
    with torch.no_grad():
        head.heatmap_final.weight[K].zero_()
        head.heatmap_final.bias[K] = 0.
    fp32 = osp.join(tmp, 'fp32_1.onnx')
    res = export_model(model, cfg, fp32, input_size=S)
    int8 = osp.join(tmp, 'int8_1.onnx')
    cmp_files = {f'int8_cmp{c}': (c, osp.join(tmp, f'int8_cmp{c}_1.onnx'))
                 for c in args.int8_cmp}
    t = time.perf_counter()
    if args.persons:
        quantize_int8(fp32, int8, args.calib, args.calib_count)
        for c, path in cmp_files.values():
            quantize_int8(fp32, path, args.calib, args.calib_count, cmp=c)
        out.update(export_s=res['seconds'], quantize_s=time.perf_counter() - t,
                   onnx_mb=dict(fp32=osp.getsize(fp32) / 2 ** 20,
                                int8=osp.getsize(int8) / 2 ** 20))
    for n in args.persons:
        files = dict(fp32=fp32, int8=int8, **{k: p for k, (_, p) in cmp_files.items()})
        if n != 1:
            with torch.no_grad():
                head.heatmap_final.bias[K] = 1.
            for k, p in list(files.items()):
                files[k] = osp.join(tmp, f'{k}_{n}.onnx')
                set_centre_bias(p, files[k], head.heatmap_final.bias.detach().numpy())
        rts = {f'ort_{k}': LogoCapONNX(p, num_threads=args.threads) for k, p in files.items()}
        if use_ov:
            rts.update({f'ov_{k}': LogoCapONNX(p, num_threads=args.threads,
                                               backend='openvino')
                        for k, p in files.items()})
        fns = {k: ort_image(rt, xn, cmeta) for k, rt in rts.items()}
        with torch.no_grad():
            hm, off, emb = head.flip_merge(*flip_pair(model, x), flip_idx)
            sc = synthetic_scene(1, n, hm.shape[-2:], K, seed=0)
            hm_n, off_n = sc['heatmaps'].to(hm), sc['offsets'].to(off)

            def torch_image(m, plan):
                def run():
                    with torch.no_grad(), use_plan(plan):
                        _, _, e2 = m.head.flip_merge(*flip_pair(m, x), flip_idx)
                        m.head._to_instances(decode(m.head, hm_n, off_n, e2, [(S, S)])[0])
                return run
            fns = dict(pytorch=torch_image(model_d, plan),
                       pytorch_contiguous=torch_image(model, FP32), **fns)
            t = timed(fns, args.repeats)
        o = rts['ort_fp32'].run(xn)
        poses = {k: f() for k, f in fns.items() if not k.startswith('pytorch')}
        row = dict(persons=n, ort_valid=int(o['valid'].sum()), times=t,
                   poses={k: len(v) for k, v in poses.items()})
        if use_ov:
            row['ov_vs_ort_fp32'] = max_pose_diff(poses['ort_fp32'], poses['ov_fp32'])
        base = t['ort_fp32']['min_ms']
        row['ratios_to_ort_fp32'] = {k: v['min_ms'] / base for k, v in t.items()}
        row['ratios_to_pytorch'] = {k: v['min_ms'] / t['pytorch']['min_ms']
                                    for k, v in t.items()}
        out['rows'].append(row)
        print(f'N={n} ({row["ort_valid"]} valid slots): ' +
              ', '.join(f'{k} {v["min_ms"]:.0f} ms' for k, v in t.items()) +
              ' | /ort_fp32: ' + ', '.join(f'{k} {v:.2f}' for k, v in
                                           row['ratios_to_ort_fp32'].items()), flush=True)
        del rts, fns
    with torch.no_grad():
        head.heatmap_final.bias[K] = 0. if args.batch_people == 0 else 1.
    if args.batches:
        one = fp32
        if args.batch_people:  # the batch-1 file with the centre bias of N = topk people
            one = osp.join(tmp, f'fp32_1_{args.batch_people}.onnx')
            set_centre_bias(fp32, one, head.heatmap_final.bias.detach().numpy())
        out['batch_people'] = args.batch_people
        bench_batches(args, out, model, cfg, S, tmp, one, use_ov and args.batch_openvino)
    out['load_after'] = os.getloadavg()
    text = json.dumps(out, indent=2)
    print(text)
    write_out(args, text, inputs)
    return 0


def bench_batches(args, out, model, cfg, S, tmp, one_path, use_ov):
    """images/s of ``predict`` on ``--batch-images`` canvases at each batch size."""
    import numpy as np
    import torch

    from logocap_mm.deploy.export import export_model
    from logocap_rt import LogoCapONNX
    rng = np.random.default_rng(0)
    # S x S images: the canvas is the image itself, preprocessing is a normalisation
    imgs = list(rng.integers(0, 256, (args.batch_images, S, S, 3), dtype=np.uint8))
    rts, workers = {}, {}
    for b in args.batches:
        path = one_path if b == 1 else osp.join(tmp, f'fp32_b{b}.onnx')
        if b != 1:
            with torch.no_grad():
                export_model(model, cfg, path, input_size=S, batch_size=b)
        rts[f'ort_b{b}'] = LogoCapONNX(path, num_threads=args.threads)
        if use_ov:
            rts[f'ov_b{b}'] = LogoCapONNX(path, num_threads=args.threads, backend='openvino')
    for w in args.workers:  # the batch-1 file, w runs at once of threads // w threads each
        rts[f'ort_b1_w{w}'] = LogoCapONNX(one_path, num_threads=max(1, args.threads // w))
        workers[f'ort_b1_w{w}'] = w

    fns = {k: (lambda rt=rt, w=workers.get(k, 1): rt.predict(imgs, workers=w))
           for k, rt in rts.items()}
    # warm-up: one run of each file's own batch (session arenas), not the whole set
    warm = {k: (lambda rt=rt: rt.predict(imgs[:rt.batch_size])) for k, rt in rts.items()}
    t = timed(fns, args.batch_repeats, warm)
    res = {k: f() for k, f in fns.items()}
    for k, v in t.items():
        eng, b = k.split('_b')
        b, w = (b.split('_w') + ['1'])[:2]
        ref = res[f'{eng}_b1']
        same = [max_pose_diff(a, c) for a, c in zip(ref, res[k])]
        out['batch'].append(dict(engine=eng, batch=int(b), workers=int(w), images=len(imgs),
                                 threads_per_run=rts[k].num_threads, **v,
                                 images_per_s=len(imgs) / v['min_ms'] * 1e3,
                                 speedup=t[f'{eng}_b1']['min_ms'] / v['min_ms'],
                                 same_poses=all(s[0] for s in same),
                                 max_kpt_diff_px=max(s[1] for s in same)))
        r = out['batch'][-1]
        print(f'{eng} batch {b}, {w} worker(s) of {r["threads_per_run"]} thread(s): '
              f'{r["images_per_s"]:.3f} images/s (x{r["speedup"]:.2f}), '
              f'same poses {r["same_poses"]}, max diff {r["max_kpt_diff_px"]:.1e} px',
              flush=True)


if __name__ == '__main__':
    sys.exit(main())
