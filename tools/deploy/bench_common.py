"""What ``bench_onnx.py`` and ``bench_runtime.py`` share: their common command-line options,
the model they time, the interleaved timer, the PyTorch side of one image and the results
file (written through :mod:`logocap_rt.outputs`).
"""
import argparse
import os.path as osp
import statistics
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from logocap_rt.outputs import InputSet, atomic_write, check_output  # noqa: E402


def model_parser(doc: str, threads: int, repeats: int, persons_nargs: str = '+',
                 persons_help: str = None) -> argparse.ArgumentParser:
    """A parser with the options of both tools: ``config`` (default W32 COCO),
    ``--checkpoint``, ``--input-size``, ``--threads``, ``--persons``, ``--repeats`` (the
    tool's own defaults); a tool adds its options, then :func:`add_out`."""
    p = argparse.ArgumentParser(description=doc.split('\n\n')[0])
    p.add_argument('config', nargs='?', default=osp.join(ROOT, 'configs/logocap/w32_coco.py'))
    p.add_argument('--checkpoint', default=None)
    p.add_argument('--input-size', type=int, default=512)
    p.add_argument('--threads', type=int, default=threads)
    p.add_argument('--persons', type=int, nargs=persons_nargs, default=[1, 30],
                   help=persons_help)
    p.add_argument('--repeats', type=int, default=repeats)
    return p


def add_out(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument('--out', default=None, help='JSON results file')
    return p


def check_out(args) -> InputSet:
    """The run's inputs (config, checkpoint); ``--out`` is refused before anything is timed
    if it is one of them, a directory or not a regular file."""
    inputs = InputSet([args.config, args.checkpoint])
    if args.out:
        check_output(args.out, inputs, '--out')
    return inputs


def write_out(args, text: str, inputs: InputSet) -> None:
    """``text`` (the printed JSON) at ``--out``, atomically (nothing without ``--out``)."""
    if args.out:
        atomic_write(args.out, text, inputs)


def build_model(args, adaptation: str = None):
    """The config's model on CPU (random weights unless ``--checkpoint``, seeded, flip test)
    with its dataset meta set; returns ``(cfg, model, flip_indices)``."""
    from logocap_mm.benchmark.models import build_logocap, dataset_flip_indices, load_config
    cfg, _ = load_config(args.config)
    if adaptation is not None:
        cfg.model.test_cfg = dict(cfg.model.get('test_cfg', {}), adaptation=adaptation)
    model = build_logocap(cfg, 'cpu', args.checkpoint, flip=True, seed=0)
    flip_idx, _ = dataset_flip_indices(cfg, model.head)
    model.dataset_meta = dict(flip_indices=flip_idx, num_keypoints=model.head.num_keypoints)
    return cfg, model, flip_idx


def canvas_meta(size: int) -> dict:
    """Meta of an ``S x S`` canvas that is the image itself (O = I)."""
    import numpy as np
    return dict(input_size=(size, size), input_center=np.float32([size / 2, size / 2]),
                input_scale=np.float32([size, size]))


def timed(fns: dict, repeats: int, warm: dict = None) -> dict:
    """``{name: fn}`` -> ``{name: dict(min_ms, median_ms)}``: one warm-up call each (of
    ``warm``'s functions if given), then every function once per round, ``repeats``
    rounds, so that all see the same machine load."""
    for f in (warm or fns).values():
        f()
    ts = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            ts[k].append(time.perf_counter() - t)
    return {k: dict(min_ms=1e3 * min(v), median_ms=1e3 * statistics.median(v))
            for k, v in ts.items()}


def decode(head, hm, off, emb, canvas):
    """The head's decoder on flip-merged maps -> the first image's result."""
    return head.pose_decoder.decode(hm, off, emb, canvas_hw=canvas)[0]


def flip_pair(model, x):
    """The network on the image and its mirror as one batch -> the flip_merge arguments."""
    import torch
    hm, off, emb = model.head.forward(model.extract_feat(torch.cat([x, x.flip(-1)])))
    return (hm[:1], off[:1], emb[:1]), (hm[1:], off[1:])


def ort_image(rt, x, cmeta: dict):
    """A function timing the runtime's side of one image: the graph on ``x`` (1, 3, S, S)
    and the numpy pose NMS / people cap on its outputs; it returns the instances."""
    from logocap_rt import finalize, to_instances

    def run():
        o = {k: v[0] for k, v in rt.run(x).items()}  # the file's outputs have a batch axis
        return to_instances(finalize(o['keypoints'], o['keypoint_scores'], o['scores'],
                                     o['valid'], rt.meta), cmeta)
    return run
