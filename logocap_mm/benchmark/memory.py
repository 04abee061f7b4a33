"""Peak-memory probes, each in a fresh process.

CUDA: ``max_memory_allocated`` above the allocation before the run. CPU: the peak RSS
(``VmHWM`` after resetting it with ``/proc/self/clear_refs``; fallback
``resource.getrusage(...).ru_maxrss``) above the RSS after set-up.

A measurement is a worker spec: ``infer:MODE:B:N`` (MODE ``backbone`` or ``full``, batch B,
N synthetic people) or ``train:B`` (one forward, backward and Adam step at batch B).
:func:`measure_memory` runs each in a fresh Python process (:func:`memory_worker` with the
options as JSON) and reads the one ``BENCH_WORKER {json}`` line it prints.
"""
import gc
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from .models import build_logocap, dataset_flip_indices, load_config
from .options import BenchmarkOptions
from .scene import synthetic_scene
from .stages import run_backbone, run_decoder_stages

__all__ = ['memory_worker', 'measure_memory']

_PREFIX = 'BENCH_WORKER '
_WORKER_CODE = ('import json, sys; from logocap_mm.benchmark.memory import memory_worker, '
                'BenchmarkOptions; memory_worker(BenchmarkOptions(**json.loads(sys.argv[1])), '
                'sys.argv[2])')


def _proc_status_mb(key):
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1]) / 1024.
    except OSError:
        pass
    return None


def _malloc_trim():
    """Give freed heap pages back to the OS (glibc), so a later peak is not hidden in
    memory that the allocator kept."""
    try:
        import ctypes
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss_peak() -> float:
    """Peak RSS (MiB) since the last reset: VmHWM, else ``ru_maxrss``."""
    hwm = _proc_status_mb('VmHWM')
    if hwm is not None:
        return hwm
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024. if sys.platform != 'darwin' else r / 2 ** 20


def _rss_base() -> float:
    """Reset the peak-RSS mark to the current RSS (Linux ``/proc/self/clear_refs`` 5) and
    return the current RSS (MiB); without /proc, the ``ru_maxrss`` high-water mark."""
    gc.collect()
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        now = _proc_status_mb('VmRSS')
        if now is not None:
            return now
    except OSError:
        pass
    return _rss_peak()


def _train_samples(model, batch, size, persons, seed, flip_indices):
    """Packed training samples with LOGO-CAP targets for N synthetic people per image."""
    from mmengine.structures import InstanceData, PixelData
    from mmpose.registry import KEYPOINT_CODECS
    from mmpose.structures import PoseDataSample
    head = model.head
    K, stride = head.num_keypoints, head.stride
    ccfg = dict(type='LogoCapCodec', input_size=(size, size),
                heatmap_size=(size // stride, size // stride))
    if getattr(head, 'decoder', None) is not None and hasattr(head.decoder, 'sigma'):
        ccfg['sigma'] = head.decoder.sigma
    codec = KEYPOINT_CODECS.build(ccfg)     # targets at the training input size
    scene = synthetic_scene(batch, persons, (size // stride, size // stride), K, seed=seed)
    out = []
    for b in range(batch):
        kp = scene['keypoints'][b].numpy() * stride
        vis = np.ones(kp.shape[:2], np.float32)
        span = kp.max(1) - kp.min(1)
        area = (span[:, 0] * span[:, 1] * 0.6).astype(np.float32)
        enc = codec.encode(kp, vis, area)
        ds = PoseDataSample()
        ds.set_metainfo(dict(input_size=(size, size), flip_indices=list(flip_indices)))
        ds.gt_instances = InstanceData(keypoints=kp.astype(np.float32),
                                       keypoints_visible=vis, areas=area)
        ds.gt_fields = PixelData(**{k: torch.from_numpy(np.asarray(v)) for k, v in
                                    enc.items() if k in ('heatmaps', 'heatmap_weights',
                                                         'displacements',
                                                         'displacement_weights')})
        out.append(ds)
    return out


def _start(cuda, device):
    gc.collect()
    if cuda:
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        return base
    return _rss_base()


def _cuda_peak(device, base):
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2 ** 20, base / 2 ** 20


def _infer(opts, cfg, size, device, mode, B, N):
    cuda = device.type == 'cuda'
    model = build_logocap(cfg, device, opts.checkpoint, opts.flip, opts.seed)
    head = model.head
    fi = dataset_flip_indices(cfg, head)[0] if opts.flip else None
    x = torch.randn(B, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    hw = (size // head.stride, size // head.stride)
    scene = synthetic_scene(B, N, hw, head.num_keypoints, seed=opts.seed)
    hm_s, off_s = scene['heatmaps'].to(device), scene['offsets'].to(device)
    canvas = [(size, size)] * B
    base = _start(cuda, device)
    dec_delta = peak_bb = base_dec = None
    with torch.no_grad():
        hm, off, emb = run_backbone(model, x, opts.flip, fi)
        if mode == 'full':
            hm, off = hm_s, off_s
            if not cuda:
                peak_bb = _rss_peak()
                _malloc_trim()
                base_dec = _rss_base()
                run_decoder_stages(head, hm, off, emb, canvas)
                dec_delta = _rss_peak() - base_dec
            else:
                run_decoder_stages(head, hm, off, emb, canvas)
    if cuda:
        peak, base = _cuda_peak(device, base)
    elif mode == 'full':
        peak = max(peak_bb, base_dec + dec_delta)
    else:
        peak = _rss_peak()
    return dict(mode=mode, batch_size=B, persons=N, base_mb=base, peak_mb=peak,
                delta_mb=peak - base, decoder_own_delta_mb=dec_delta)


def _train(opts, cfg, size, device, B):
    cuda = device.type == 'cuda'
    tsize = opts.train_input_size or size
    model = build_logocap(cfg, device, None, opts.flip, opts.seed).train()
    fi = dataset_flip_indices(cfg, model.head)[0]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(B, 3, tsize, tsize, generator=torch.Generator().manual_seed(1)
                    ).to(device)
    samples = _train_samples(model, B, tsize, 10, opts.seed, fi)
    for ds in samples:
        ds.gt_fields = ds.gt_fields.to(device)
    base = _start(cuda, device)
    t0 = time.perf_counter()
    losses = model(x, samples, mode='loss')
    loss = sum(v for v in losses.values())
    opt.zero_grad()
    loss.backward()
    opt.step()
    if cuda:
        peak, base = _cuda_peak(device, base)
    else:
        peak = _rss_peak()
    return dict(mode='train', batch_size=B, input_size=tsize, persons=10,
                step_ms=(time.perf_counter() - t0) * 1e3, loss=float(loss.detach()),
                base_mb=base, peak_mb=peak, delta_mb=peak - base)


def memory_worker(opts: BenchmarkOptions, spec: str) -> dict:
    """One measurement in this process (meant to be a fresh one); prints and returns it.

    Args:
        opts: the run's options; spec: ``infer:MODE:B:N`` or ``train:B`` (module docstring).
    """
    device = torch.device(opts.device)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    cfg, size = load_config(opts.config, opts.input_size)
    kind, *rest = spec.split(':')
    try:
        if kind == 'infer' and len(rest) == 3 and rest[0] in ('backbone', 'full'):
            res = _infer(opts, cfg, size, device, rest[0], int(rest[1]), int(rest[2]))
        elif kind == 'train' and len(rest) == 1:
            res = _train(opts, cfg, size, device, int(rest[0]))
        else:
            raise ValueError
    except ValueError as e:
        if str(e):
            raise
        raise ValueError(f"unknown memory worker spec {spec!r} (expected "
                         "'infer:backbone|full:B:N' or 'train:B')") from None
    out = dict(worker=spec, **res)
    print(_PREFIX + json.dumps(out), flush=True)
    return out


def _spawn_worker(opts: BenchmarkOptions, spec: str) -> dict:
    pkg_root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [pkg_root] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    cmd = [sys.executable, '-c', _WORKER_CODE, json.dumps(opts.to_dict()), spec]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in p.stdout.splitlines():
        if line.startswith(_PREFIX):
            return json.loads(line[len(_PREFIX):])
    return dict(worker=spec, error=(p.stderr or p.stdout)[-2000:])


def measure_memory(opts: BenchmarkOptions) -> dict:
    """Inference rows (backbone only and full, batch 1, ``opts.memory_persons``) and, for
    ``opts.memory == 'all'``, training-step rows (``opts.train_batch_size``)."""
    res = dict(unit='MiB', kind='cuda max_memory_allocated' if opts.device != 'cpu'
               else 'peak RSS (VmHWM after a clear_refs reset; ru_maxrss fallback) above '
               'the RSS after set-up, fresh process per row', inference=[],
               train=[])
    if opts.memory == 'none':
        return res
    for N in opts.memory_persons:
        row = dict(persons=N)
        for mode in ('backbone', 'full'):
            row[mode] = _spawn_worker(opts, f'infer:{mode}:1:{N}')
        b, f = row['backbone'].get('delta_mb'), row['full'].get('delta_mb')
        if b and f is not None:
            row['logocap_added_mb'] = f - b
            row['logocap_added_ratio'] = (f - b) / b
        res['inference'].append(row)
    if opts.memory == 'all':
        for B in opts.train_batch_size:
            res['train'].append(_spawn_worker(opts, f'train:{B}'))
    return res
