"""Per-stage inference speed, FLOPs and peak memory of LOGO-CAP against MMPose's DEKR.

Usage (MMPose style)::

    python tools/benchmark.py configs/logocap/w32_coco.py --device cpu \
        --persons 1 10 30 --batch-size 1 4 8 --repeats 5 --warmup 1 --out bench.json

Weights are random (seeded) unless ``--checkpoint`` is given. The decoder stages run on a
synthetic scene of exactly N people swapped in for the head's heatmaps and offsets; stages,
FLOP counting, DEKR and memory probes are described in docs/BENCHMARK.md and implemented in
:mod:`logocap_mm.benchmark`.
"""
import argparse
import json
import os
import os.path as osp

DESCRIPTION = (
    'LOGO-CAP per-stage inference benchmark (backbone, local_kems, local_kams, global, post) '
    "against MMPose's DEKR with the same backbone, input and flip setting, with FLOPs and "
    'peak memory. Weights are random (seeded by --seed) unless --checkpoint is given; the '
    'decoder runs on a synthetic scene of exactly N people, so the timings do not depend on '
    'the weights.')


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=DESCRIPTION)
    p.add_argument('config', help='LOGO-CAP config file (e.g. configs/logocap/w32_coco.py)')
    p.add_argument('--checkpoint', default=None,
                   help='weights to load (default: random weights, seeded by --seed)')
    p.add_argument('--device', default='cpu', help="'cpu' or 'cuda' ('cuda:N')")
    p.add_argument('--persons', type=int, nargs='+', default=[1, 10, 30],
                   help='people in the synthetic scenes, one timing row each (each <= the '
                        'decoder topk)')
    p.add_argument('--batch-size', type=int, nargs='+', default=[1, 4, 8],
                   help='batch sizes to time')
    p.add_argument('--no-flip', action='store_true', help='disable the flip test')
    p.add_argument('--repeats', type=int, default=5,
                   help='timed iterations (median and min are reported)')
    p.add_argument('--warmup', type=int, default=1, help='untimed iterations first')
    p.add_argument('--input-size', type=int, default=None,
                   help='square input side, a multiple of 32 (default: the config codec '
                        'input size)')
    p.add_argument('--out', default=None, help='write the numbers as JSON to this file')
    p.add_argument('--no-dekr', action='store_true', help='do not time DEKR')
    p.add_argument('--dekr-deform', default='mmcv', choices=['mmcv', 'torchvision'],
                   help="DEKR's deformable conv: mmcv (needs full mmcv) or a torchvision "
                        'substitute (timing only)')
    p.add_argument('--compare-plain', action='store_true',
                   help='also time the plain (reference) global path and compare results')
    p.add_argument('--memory', default='all', choices=['none', 'infer', 'all'],
                   help='peak-memory measurements, each in a fresh process: none, '
                        'inference only, or inference and a training step')
    p.add_argument('--memory-persons', type=int, nargs='+', default=[1, 30],
                   help='people of the inference memory rows (batch 1)')
    p.add_argument('--train-batch-size', type=int, nargs='+', default=[2, 12],
                   help='batch sizes of the training-step memory rows')
    p.add_argument('--train-input-size', type=int, default=None,
                   help='input side for the training-step memory (default: --input-size)')
    p.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    p.add_argument('--image-chunk', default=None,
                   help="override the config's test_cfg.image_chunk: 'auto' (1 image per "
                        "chunk on CPU, none on CUDA), 'none' or an int")
    p.add_argument('--variants', nargs='+', default=['fp32-contiguous'],
                   help='layout / precision variants to time: fp32-contiguous, '
                   'fp32-channels_last, bf16-channels_last, fp16-channels_last (CUDA)')
    p.add_argument('--peak', action='store_true',
                   help="also measure the device's convolution peak (fp32, bf16; fp16 on "
                   'CUDA) and give each stage as a fraction of it')
    p.add_argument('--cid', action='store_true',
                   help="also time MMPose's CID (same backbone, input, flip) at batch 1, in "
                   'its stock layout and in each variant')
    p.add_argument('--seed', type=int, default=0,
                   help='seed of the random weights, inputs and synthetic scenes')
    return p


def parse_args(argv=None):
    """``(BenchmarkOptions, --out path or None)``; a ValueError names a bad flag."""
    args = build_parser().parse_args(argv)
    # imported after parsing: ``--help`` and argparse errors need neither torch nor mmpose
    from logocap_mm.benchmark import BenchmarkOptions
    out = args.out
    opts = BenchmarkOptions(
        config=args.config, checkpoint=args.checkpoint, device=args.device,
        persons=args.persons, batch_size=args.batch_size, flip=not args.no_flip,
        repeats=args.repeats, warmup=args.warmup, input_size=args.input_size,
        dekr=not args.no_dekr, dekr_deform=args.dekr_deform,
        compare_plain=args.compare_plain, memory=args.memory,
        memory_persons=args.memory_persons, train_batch_size=args.train_batch_size,
        train_input_size=args.train_input_size, threads=args.threads,
        image_chunk=args.image_chunk, seed=args.seed, variants=args.variants,
        peak=args.peak, cid=args.cid)
    return opts, out


def _write_json(obj, path, inputs=None):
    """Write atomically through the shared output rules (:mod:`logocap_rt.outputs`)."""
    from logocap_rt.outputs import atomic_write
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    atomic_write(path, json.dumps(obj, indent=2), inputs)


def main(argv=None):
    opts, out = parse_args(argv)
    from logocap_rt.outputs import InputSet, check_output
    inputs = InputSet([opts.config, opts.checkpoint])
    if out and inputs.which(out):
        raise ValueError(f'--out {out} would overwrite an input file ({inputs.which(out)})')
    if out:
        check_output(out, inputs, '--out')
    from logocap_mm.benchmark import benchmark, markdown
    res = benchmark(opts)
    print(markdown(res))
    if out:
        _write_json(res, out, inputs)
    return res


if __name__ == '__main__':
    main()
