"""End-to-end ``predict`` time of LOGO-CAP per precision and memory format (one JSON).

    python tools/device/timing.py --device cuda --out T.json [--config configs/logocap/w32_coco.py]
        [--batch-size 1 8] [--persons 1 30] [--precisions fp32 fp16]
        [--formats contiguous channels_last channels_last+fused default]

The model (random weights, flip test) runs ``model.predict`` on a preprocessed random
batch; the head's flip-merged maps are replaced by the benchmark's synthetic N-person scene
(heatmaps and offsets; the embedding is the network's), so that exactly N people reach the
local and global adaptation. Every row is timed in the same run (median and min of
``--repeats`` after ``--warmup``; CUDA synchronised), with the ratio to the contiguous fp32
row of the same batch and people.
"""
import argparse
import copy
import json
import os
import os.path as osp
import statistics
import sys
import time

import numpy as np
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from logocap_rt.outputs import InputSet, atomic_write, check_output, json_text  # noqa: E402


def write_json(path: str, info: dict, inputs: InputSet = None) -> str:
    """``info`` as JSON at ``path`` through the shared output rules (atomic; never an input,
    a directory or a device)."""
    return atomic_write(path, json_text(info, indent=1), inputs)


def build(config, device):
    """The config's model (seeded random weights, flip test, one chunk) and its flip pairs."""
    from logocap_mm.benchmark.models import build_logocap, dataset_flip_indices, load_config
    cfg, _ = load_config(config)
    model = build_logocap(cfg, device, flip=True, seed=0)
    model.test_cfg = dict(model.test_cfg, image_chunk=None)
    return model, dataset_flip_indices(cfg, model.head)[0]


def samples(B, size, flip):
    from mmpose.structures import PoseDataSample
    return [PoseDataSample(metainfo=dict(
        input_size=(size, size), input_center=np.array([size / 2, size / 2]),
        input_scale=np.array([size, size], np.float32), ori_shape=(size, size),
        img_shape=(size, size), flip_indices=flip)) for _ in range(B)]


class Injected:
    """Replace the flip-merged head maps by a scene (the network still runs)."""

    def __init__(self, head, scene):
        self.head, self.scene = head, scene

    def __enter__(self):
        orig = self.head.flip_merge

        def flip_merge(out, out_flip, *a, **k):
            hm, off, emb = orig(out, out_flip, *a, **k)
            return (self.scene['heatmaps'].to(hm), self.scene['offsets'].to(off), emb)
        self.head.flip_merge = flip_merge
        return self

    def __exit__(self, *exc):
        del self.head.flip_merge
        return False


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default='configs/logocap/w32_coco.py')
    p.add_argument('--device', default='cuda')
    p.add_argument('--out', required=True)
    p.add_argument('--input-size', type=int, default=512)
    p.add_argument('--batch-size', type=int, nargs='+', default=[1, 8])
    p.add_argument('--persons', type=int, nargs='+', default=[1, 30])
    p.add_argument('--precisions', nargs='+', default=None,
                   help='default: fp32 fp16 on CUDA (+ bf16 where supported), fp32 bf16 on CPU')
    p.add_argument('--formats', nargs='+',
                   default=['contiguous', 'channels_last', 'channels_last+fused'],
                   help="test_cfg.memory_format values; '+fused' adds fuse_conv_bn=True (else "
                        "False); 'default' leaves both at their defaults ('auto')")
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--warmup', type=int, default=2)
    args = p.parse_args(argv)
    inputs = InputSet([args.config])
    check_output(args.out, inputs, '--out')  # before the timing, not after it
    device = torch.device(args.device)
    cuda = device.type == 'cuda'
    precs = args.precisions or (
        ['fp32', 'fp16'] + (['bf16'] if cuda and torch.cuda.is_bf16_supported() else [])
        if cuda else ['fp32', 'bf16'])
    size = args.input_size
    model, flip = build(args.config, device)
    head = model.head
    K = head.num_keypoints
    from logocap_mm.benchmark.scene import synthetic_scene as scene_fn
    h = size // head.stride
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rows = []
    load0 = os.getloadavg()
    for B in args.batch_size:
        x = torch.randn(B, 3, size, size, generator=torch.Generator().manual_seed(B)).to(device)
        ds = samples(B, size, flip)
        for N in args.persons:
            scene = scene_fn(B, N, (h, h), K, seed=N)
            for prec in precs:
                for fmt in args.formats:
                    layout, _, fused = fmt.partition('+')
                    tc = {k: v for k, v in model.test_cfg.items()
                          if k not in ('memory_format', 'fuse_conv_bn')}
                    if fmt != 'default':  # 'default': the test_cfg defaults of both
                        tc.update(memory_format=layout, fuse_conv_bn=fused == 'fused')
                    model.test_cfg = dict(tc, precision=prec)
                    ts, found = [], None
                    with torch.no_grad(), Injected(head, scene):
                        for i in range(args.warmup + args.repeats):
                            sync()
                            t = time.perf_counter()
                            out = model.predict(x, copy.deepcopy(ds))
                            sync()
                            if i >= args.warmup:
                                ts.append((time.perf_counter() - t) * 1e3)
                            found = [len(o.pred_instances) for o in out]
                    rows.append(dict(batch_size=B, persons=N, precision=prec, memory_format=fmt,
                                     median_ms=statistics.median(ts), min_ms=min(ts),
                                     per_image_ms=statistics.median(ts) / B,
                                     poses_returned=found))
                    print(json.dumps(rows[-1]), flush=True)
    for r in rows:
        base = next(q for q in rows if q['batch_size'] == r['batch_size'] and
                    q['persons'] == r['persons'] and q['precision'] == 'fp32' and
                    q['memory_format'] == 'contiguous') if 'fp32' in precs and \
            'contiguous' in args.formats else None
        if base is not None:
            r['vs_fp32_contiguous'] = r['median_ms'] / base['median_ms']
    info = dict(device=str(device), torch=torch.__version__, threads=torch.get_num_threads(),
                input_size=size, flip=True, config=args.config, load_before=load0,
                load_after=os.getloadavg(), repeats=args.repeats, warmup=args.warmup,
                gpu=torch.cuda.get_device_name(device) if cuda else None, rows=rows)
    write_json(args.out, info, inputs)
    return 0


if __name__ == '__main__':
    sys.exit(main())
