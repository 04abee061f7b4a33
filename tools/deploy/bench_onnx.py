"""ONNX Runtime (CPU) against the PyTorch model (default settings, fp32), per image.

    python tools/deploy/bench_onnx.py [CONFIG] [--checkpoint CKPT] [--input-size 512]
        [--threads 2] [--persons 1 30] [--repeats 5] [--peers cid rtmo-s rtmo-m rtmo-l]
        [--out bench_onnx.json]

One run: builds the model (random weights unless ``--checkpoint``; speed does not depend on
them), exports it (``export_model``, timed), then times on one ``S x S`` canvas, flip test on:

* PyTorch: backbone + heads (image and mirror as one batch) + flip merge, then the decoder
  (fast global path, slots trimmed to the valid centres) on a synthetic scene of exactly N
  people swapped in for the heatmaps and offsets (as ``tools/benchmark.py`` does); the
  network as written (contiguous fp32), and with ``--torch-default`` also in the plan that
  ``predict`` uses by default (``test_cfg.memory_format='auto'``: channels_last on CPU);
* ONNX Runtime: the whole graph (network, flip, decoder) and the numpy pose NMS / people cap
  on its outputs. The graph decodes the network's own centre map, so N is set through the
  centre channel (constant 0: only the best slot is kept, so the graph's stages run on one
  slot, whose pose score is 0 and which is then not returned; constant 1: all 30), one
  export per N.

``--peers``: MMPose's CID (W32, 512, flip) and RTMO-s/-m/-l (640) exported to ONNX and run
on ONNX Runtime for the same N (:mod:`logocap_mm.benchmark.peers_onnx`: the network in the
graph, NMS and keypoint decoding in numpy), with their published COCO AP from MMPose's
model-zoo metafiles.

Everything with the same number of intra-op threads, run alternately repeat by repeat (every
model once per round, same load); ratios are of the minima. Also: the runtime's cold start (a fresh
process in which torch, mmcv, mmengine and mmpose cannot be imported, as on a deployment
machine: imports and session creation, then the first image) and the export time. Preprocessing (the
canvas warp, identical code on both sides) is not in the per-image times.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from bench_common import (ROOT, add_out, build_model, canvas_meta, check_out,  # noqa: E402
                          decode, flip_pair, model_parser, ort_image, timed, write_out)


def parse_args(argv=None):
    p = model_parser(__doc__, threads=2, repeats=5)
    p.add_argument('--adaptation', default='full', choices=('full', 'partial', 'none'))
    p.add_argument('--onnx', default=None, help='where to write the exported file '
                   '(default: a temporary file, removed afterwards)')
    p.add_argument('--torch-default', action='store_true',
                   help="also time PyTorch with the network in the test_cfg's plan, as "
                   "predict() runs it (CPU default: channels_last); the plain PyTorch side "
                   'runs it as written (contiguous fp32)')
    p.add_argument('--peers', nargs='*', default=[],
                   choices=('cid', 'rtmo-s', 'rtmo-m', 'rtmo-l'),
                   help='also time these MMPose models exported to ONNX (same runtime, '
                   'threads and rounds)')
    return add_out(p).parse_args(argv)


# a fresh process as on a deployment machine: torch, mmcv, mmengine, mmpose not importable
COLD = r'''
import sys, time
t0 = time.perf_counter()
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'mmcv', 'mmengine', 'mmpose', 'torchvision'):
            raise ImportError(name)
sys.meta_path.insert(0, Block())
from logocap_mm.deploy import LogoCapONNX
import numpy as np
m = LogoCapONNX(sys.argv[1], num_threads=int(sys.argv[2]))
t1 = time.perf_counter()
m(np.zeros((int(sys.argv[3]), int(sys.argv[3]), 3), np.uint8))
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
'''


def main(argv=None):
    args = parse_args(argv)
    inputs = check_out(args)
    if args.onnx:
        from logocap_rt.outputs import check_output, same_file
        check_output(args.onnx, inputs, '--onnx')
        if args.out and same_file(args.out, args.onnx):
            raise ValueError(f'--out and --onnx are the same file ({args.out})')
    import numpy as np
    import torch

    from logocap_mm.benchmark import synthetic_scene
    from logocap_mm.deploy import LogoCapONNX
    from logocap_mm.deploy.export import export_model
    torch.set_num_threads(args.threads)
    cfg, model, flip_idx = build_model(args, args.adaptation)
    head = model.head

    tmpdir = tempfile.mkdtemp(prefix='logocap_bench_')
    S = args.input_size
    out = dict(config=args.config, input_size=S, threads=args.threads, flip=True,
               adaptation=args.adaptation, torch=torch.__version__,
               load_before=os.getloadavg(), cpus=os.cpu_count())
    import onnxruntime as ort
    out['onnxruntime'] = ort.__version__
    x = torch.randn(1, 3, S, S, generator=torch.Generator().manual_seed(0))
    xn = x.numpy()
    scene_fn = synthetic_scene
    cmeta = canvas_meta(S)
    K = head.num_keypoints
    fns, found, ort_valid, paths = {}, {}, {}, []
    if args.torch_default:   # a copy: its layout is not switched between rounds
        import copy

        from logocap_mm.models.precision import resolve_plan, use_plan
        model_d = copy.deepcopy(model)
        plan = resolve_plan(model_d.test_cfg, 'cpu')
        out['torch_default_plan'] = dict(channels_last=plan.channels_last,
                                         dtype=str(plan.dtype),
                                         fuse_conv_bn=plan.fuse_conv_bn)
    for n in args.persons:
        # the ONNX graph runs on the network's own centre map: a constant centre channel
        # gives exactly n valid slots (0 -> only the first slot, 1 -> every top-k peak)
        if n not in (1, head.pose_decoder.topk):
            raise ValueError(f'--persons: the ONNX side supports 1 and '
                             f'{head.pose_decoder.topk}, got {n}')
        with torch.no_grad():
            head.heatmap_final.weight[K].zero_()
            head.heatmap_final.bias[K] = 0. if n == 1 else 1.
        path = args.onnx or osp.join(tmpdir, f'model_{n}.onnx')
        res = export_model(model, cfg, path, input_size=S, inputs=inputs)
        out.setdefault('export_s', res['seconds'])
        out['onnx_mb'] = osp.getsize(path) / 2 ** 20
        paths.append(path)
        rt = LogoCapONNX(path, num_threads=args.threads)
        ort_valid[n] = int(rt.run(xn)['valid'].sum())

        with torch.no_grad():
            hm, off, emb = model.head.flip_merge(*flip_pair(model, x), flip_idx)
            sc = scene_fn(1, n, hm.shape[-2:], K, seed=0)
            hm_n, off_n = sc['heatmaps'].to(hm), sc['offsets'].to(off)
            found[n] = len(decode(head, hm_n, off_n, emb, [(S, S)])[0]['scores'])

        def torch_image(hm_n=hm_n, off_n=off_n):
            with torch.no_grad():
                _, _, e2 = model.head.flip_merge(*flip_pair(model, x), flip_idx)
                head._to_instances(decode(head, hm_n, off_n, e2, [(S, S)])[0])

        fns[('torch', n)], fns[('ort', n)] = torch_image, ort_image(rt, xn, cmeta)
        if args.torch_default:
            def default_image(hm_n=hm_n, off_n=off_n):
                # the network as predict() runs it: the test_cfg's plan (CPU: channels_last)
                with torch.no_grad(), use_plan(plan):
                    _, _, e2 = model_d.head.flip_merge(*flip_pair(model_d, x), flip_idx)
                    model_d.head._to_instances(decode(model_d.head, hm_n, off_n, e2,
                                                       [(S, S)])[0])
            fns[('torch_default', n)] = default_image
    peers = {}
    if args.peers:
        from logocap_mm.benchmark.peers_onnx import build_peer, published_ap
        out['peers_published_ap'] = published_ap()
        for name in args.peers:
            t0 = time.perf_counter()
            runs, (pw, ph) = build_peer(name, tmpdir, args.persons, args.threads)
            peers[name] = dict(export_s=time.perf_counter() - t0, input=[pw, ph])
            xp = np.random.RandomState(0).randn(1, 3, ph, pw).astype(np.float32)
            for n, run in runs.items():
                peers[name].setdefault('poses', {})[n] = len(run(xp)['keypoints'])
                fns[(name, n)] = (lambda run=run, xp=xp: run(xp))
            print(f'{name}: exported in {peers[name]["export_s"]:.0f} s', flush=True)
    out['load_before_timing'] = os.getloadavg()
    t = timed(fns, args.repeats)
    rows = []
    for n in args.persons:
        t_pt, t_ort = t[('torch', n)], t[('ort', n)]
        row = dict(persons=n, torch_poses=found[n], ort_valid=ort_valid[n], torch=t_pt,
                   ort=t_ort, ratio=t_ort['min_ms'] / t_pt['min_ms'])
        if args.torch_default:
            row['torch_default'] = t[('torch_default', n)]
            row['ratio_to_default'] = t_ort['min_ms'] / t[('torch_default', n)]['min_ms']
        for name in args.peers:
            row[name] = dict(t[(name, n)], poses=peers[name]['poses'][n],
                             ratio_to_ours=t[(name, n)]['min_ms'] / t_ort['min_ms'])
        rows.append(row)
        print(f'N={n}: PyTorch {t_pt["min_ms"]:.0f} ms, ORT {t_ort["min_ms"]:.0f} ms '
              f'(x{row["ratio"]:.2f}, min of {args.repeats})' +
              (f', PyTorch default {row["torch_default"]["min_ms"]:.0f} ms (ORT '
               f'x{row["ratio_to_default"]:.2f})' if args.torch_default else '') +
              ''.join(f', {k} {t[(k, n)]["min_ms"]:.0f} ms' for k in args.peers), flush=True)
    out['peers'] = peers
    for p in os.listdir(tmpdir):
        if p.endswith('.onnx') and osp.join(tmpdir, p) not in paths:
            os.remove(osp.join(tmpdir, p))
    path = paths[-1]
    out['rows'] = rows
    cold = subprocess.run([sys.executable, '-c', COLD, path, str(args.threads), str(S)],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    if cold.returncode == 0:
        load_s, first_s = (float(v) for v in cold.stdout.split()[-2:])
        out['cold_start'] = dict(import_and_session_s=load_s, first_image_s=first_s)
    out['load_after'] = os.getloadavg()
    if not args.onnx:
        for p in paths:
            os.remove(p)
    os.rmdir(tmpdir)
    text = json.dumps(out, indent=2)
    print(text)
    write_out(args, text, inputs)
    return 0


if __name__ == '__main__':
    sys.exit(main())
