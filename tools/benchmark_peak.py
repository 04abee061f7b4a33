"""The network stage (W32 flip pair) in PyTorch's layouts and on ONNX Runtime against the
machine's peak throughput, all timed in one run.

    python tools/benchmark_peak.py [CONFIG] [--input-size 512] [--threads 2] [--repeats 5]
        [--int8] [--onnx LABEL=NETWORK.onnx ...] [--out peak.json]

The peak is the best GFLOP/s of several convolutions and a GEMM (PyTorch and ONNX Runtime
kernels); every entry is timed once per round, rounds interleaved, with the same thread
count (:mod:`logocap_mm.benchmark.fractions`). ``--int8`` adds a static INT8 (QDQ) copy of
the ONNX network graph; ``--onnx`` further network graphs with the input ``input``
(1, 3, S, S). Random weights.
"""
import argparse
import os
import os.path as osp
import shutil
import sys
import tempfile

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config', nargs='?', default=osp.join(ROOT, 'configs/logocap/w32_coco.py'))
    p.add_argument('--input-size', type=int, default=512)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--repeats', type=int, default=5, help='interleaved rounds')
    p.add_argument('--min-time', type=float, default=0.5,
                   help='seconds per sample of a peak kernel (repeated calls)')
    p.add_argument('--int8', action='store_true',
                   help='also time a static INT8 (QDQ) copy of the ONNX network graph')
    p.add_argument('--onnx', nargs='*', default=[], metavar='LABEL=FILE',
                   help='further network graphs to time (input "input" (1, 3, S, S))')
    p.add_argument('--out', default=None, help='JSON results file')
    return p.parse_args(argv)


def table(res: dict) -> str:
    pk = res['peak']
    lines = [f"peak {pk['gflops']:.0f} GFLOP/s ({pk['kernel']}); network stage "
             f"{res['gflop']:.1f} GFLOP; {res['threads']} threads, best of {res['repeats']} "
             f"interleaved rounds, load {res['load_before'][0]:.1f} -> "
             f"{res['load_after'][0]:.1f}",
             '', '| entry | ms | GFLOP/s | of peak |', '|---|---:|---:|---:|']
    for k, v in res['stages'].items():
        lines.append(f"| {k} | {v['ms']:.0f} | {v['gflops_per_s']:.0f} | "
                     f"{100 * v['fraction']:.0f}% |")
    for k, v in pk['by_kernel'].items():
        lines.append(f"| peak candidate: {k} | | {v['max_gflops']:.0f} | "
                     f"{100 * v['max_gflops'] / pk['gflops']:.0f}% |")
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    extra = {}
    for item in args.onnx:
        label, sep, path = item.partition('=')
        if not sep or not osp.isfile(path):
            raise ValueError(f'--onnx {item!r}: expected LABEL=FILE of an existing file')
        extra[label] = path
    from logocap_rt.outputs import InputSet, atomic_write, check_output, json_text
    inputs = InputSet([args.config, *extra.values()])
    if args.out:  # refused before the timing, not after it
        check_output(args.out, inputs, '--out')
    import torch

    from logocap_mm.benchmark.fractions import measure_fractions
    from logocap_mm.benchmark.models import build_logocap, dataset_flip_indices, load_config
    torch.set_num_threads(args.threads)
    cfg, _ = load_config(args.config)
    model = build_logocap(cfg, 'cpu', None, flip=True, seed=0)
    fi, _ = dataset_flip_indices(cfg, model.head)
    tmp = tempfile.mkdtemp(prefix='logocap_peak_')
    try:
        res = measure_fractions(model, fi, args.input_size, args.threads, tmp, args.repeats,
                                extra, int8=args.int8, min_time=args.min_time)
    finally:
        shutil.rmtree(tmp)
    res.update(config=args.config, input_size=args.input_size, torch=torch.__version__,
               cpus=os.cpu_count())
    print(table(res))
    if args.out:
        atomic_write(args.out, json_text(res), inputs)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)
