"""End-to-end time of MMPose's ``inference_bottomup`` under several test-time plans.

    python tools/benchmark_e2e.py [CONFIG] [--checkpoint CKPT] [--image IMG]
        [--variant NAME=KEY=VALUE[,KEY=VALUE...] ...] [--threads 2] [--rounds 3]
        [--out e2e.json]

What a user's call costs, preprocessing, network and decoding included: every variant is a
model built from the same config and weights (seeded random weights unless ``--checkpoint``)
with its own ``model.test_cfg`` overrides; one warm-up call each, then ``--rounds`` rounds in
which every variant runs the image once (interleaved, so a change of load hits all of them).
Prints the best and median ms per variant, the ratio of each best to the first variant's, and
the largest keypoint difference from the first variant's poses (same poses expected).

Default variants: ``contiguous`` (``memory_format='contiguous'``, ``fuse_conv_bn=False``:
the network as written) and ``default`` (no override: the CPU default plan). The canvas is the
config's (``LogoCapResize``'s ``input_size`` short side).
"""
import argparse
import os
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

DEFAULT_VARIANTS = ('contiguous=memory_format=contiguous,fuse_conv_bn=False', 'default=')


def parse_variant(text: str):
    """``'NAME=KEY=VALUE,KEY=VALUE'`` -> ``(NAME, {KEY: value})``; values are Python
    literals (``False``, ``'bf16'``, 2) or bare words (``contiguous``)."""
    import ast
    name, sep, rest = text.partition('=')
    if not sep or not name:
        raise ValueError(f'--variant must look like NAME=KEY=VALUE[,KEY=VALUE], got {text!r}')
    opts = {}
    for item in filter(None, rest.split(',')):
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise ValueError(f'--variant {name}: {item!r} is not KEY=VALUE')
        try:
            opts[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            opts[key] = value
    return name, opts


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config', nargs='?', default=osp.join(ROOT, 'configs/logocap/w32_coco.py'))
    p.add_argument('--checkpoint', default=None)
    p.add_argument('--image', default=osp.join(ROOT, 'tests/data/coco/000000196141.jpg'))
    p.add_argument('--variant', dest='variants', action='append', default=None,
                   help='NAME=KEY=VALUE[,KEY=VALUE...] test_cfg overrides (repeatable; '
                   'default: contiguous and default)')
    p.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--out', default=None, help='JSON results file')
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error(f'--rounds must be >= 1, got {args.rounds}')
    if args.threads is not None and args.threads < 1:
        p.error(f'--threads must be >= 1, got {args.threads}')
    try:
        args.variants = [parse_variant(v) for v in (args.variants or DEFAULT_VARIANTS)]
    except ValueError as e:
        p.error(str(e))
    if len({n for n, _ in args.variants}) != len(args.variants):
        p.error('--variant names must differ')
    return args


def main(argv=None):
    args = parse_args(argv)
    from logocap_rt.outputs import InputSet, atomic_write, check_output, json_text
    inputs = InputSet([args.config, args.image, args.checkpoint])
    if args.out:
        check_output(args.out, inputs, '--out')
    import copy
    import time

    import numpy as np
    import torch
    from mmpose.apis import inference_bottomup, init_model

    from logocap_mm.benchmark.models import load_config
    from logocap_rt.images import read_image
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg, size = load_config(args.config)
    img = read_image(args.image)
    models = {}
    for name, opts in args.variants:
        c = copy.deepcopy(cfg)  # (Config.copy is shallow: one variant's options would leak)
        c.model.setdefault('test_cfg', {}).update(opts)
        torch.manual_seed(0)  # the same random weights for every variant
        models[name] = init_model(c, args.checkpoint, device='cpu')
    first = args.variants[0][0]
    times = {n: [] for n in models}
    poses = {}
    load_before = os.getloadavg()
    with torch.inference_mode():
        for name, m in models.items():  # warm-up (and the plan's one-time folding)
            poses[name] = inference_bottomup(m, img)[0].pred_instances
        for _ in range(args.rounds):
            for name, m in models.items():
                t = time.perf_counter()
                inference_bottomup(m, img)
                times[name].append(1e3 * (time.perf_counter() - t))
    load_after = os.getloadavg()
    ref = poses[first]
    rows = {}
    for name, ts in times.items():
        p = poses[name]
        same = len(p) == len(ref)
        diff = (float(np.abs(np.asarray(p.keypoints) - np.asarray(ref.keypoints)).max())
                if same and len(p) else 0.0)
        rows[name] = dict(best_ms=min(ts), median_ms=float(np.median(ts)), samples_ms=ts,
                          ratio=min(ts) / min(times[first]), poses=len(p),
                          max_kpt_diff_px=diff if same else None,
                          test_cfg=dict(args.variants)[name],
                          model_test_cfg=dict(models[name].test_cfg))
    res = dict(config=args.config, image=args.image, input_size=size,
               threads=torch.get_num_threads(), rounds=args.rounds, torch=torch.__version__,
               load_before=load_before, load_after=load_after, variants=rows)
    print(f'{osp.basename(args.config)}, input {size}, {res["threads"]} thread(s), '
          f'best of {args.rounds} interleaved rounds, load {load_before[0]:.2f} -> '
          f'{load_after[0]:.2f}\n')
    print(f'| variant | best ms | median ms | x {first} | poses | max keypoint diff px |')
    print('|---|---:|---:|---:|---:|---:|')
    for name, r in rows.items():
        d = 'n/a (count differs)' if r['max_kpt_diff_px'] is None else \
            f"{r['max_kpt_diff_px']:.2g}"
        print(f"| {name} | {r['best_ms']:.0f} | {r['median_ms']:.0f} | {r['ratio']:.2f} | "
              f"{r['poses']} | {d} |")
    if args.out:
        atomic_write(args.out, json_text(res), inputs)
    return res


if __name__ == '__main__':
    try:
        main()
    except ValueError as e:
        sys.exit(f'benchmark_e2e.py: {e}')
