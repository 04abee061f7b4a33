"""A whole benchmark run: LOGO-CAP stage by stage (and DEKR) on synthetic N-person scenes.

The backbone cost does not depend on the image content, so the input is a seeded random
image; the backbone is timed once per repeat and batch size and its outputs feed the
decoder stages of every N. After the timed backbone the head's heatmaps and offsets are
replaced by :func:`~logocap_mm.benchmark.scene.synthetic_scene` of exactly N people (a
tensor swap outside every timed region; the embedding stays the network's), and the run
checks that the decoder finds exactly N centres and that the timed decode (through the
pipeline's ``on_stage`` hook) equals the decode without a hook. Peak memory is measured in fresh processes
(:mod:`logocap_mm.benchmark.memory`).
"""
import gc
import os
import platform

import torch

from logocap_mm.models.precision import use_plan
from .cid import build_cid, run_cid
from .dekr import build_dekr, time_dekr
from .flops import count_flops, decoder_stage_flops
from .memory import measure_memory
from .models import build_logocap, dataset_flip_indices, load_config
from .options import BenchmarkOptions
from .scene import synthetic_scene
from .stages import (STAGES, check_staged_equals_decoder, compare_fast_plain,
                     run_backbone, run_decoder_stages)
from .peak import fraction_of_peak, measure_peak
from .timing import StageTimer, median_min
from .variants import VARIANTS, plan_for

__all__ = ['benchmark']


def _device_name(device):
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores'


def _time_batch(opts, model, fi, device, x, scenes, canvas, chunk):
    """Timed repeats of one batch size: per N, the stage times and CPU times (lists over
    repeats), the plain global times, the valid centres found, and the network outputs."""
    head = model.head
    B = x.shape[0]
    persons = opts.persons
    times = {N: {s: [] for s in STAGES} for N in persons}
    cpu = {N: {s: [] for s in STAGES} for N in persons}
    plain = {N: [] for N in persons}
    found = {}
    with torch.no_grad():
        for i in range(opts.warmup + opts.repeats):
            timer = StageTimer(device)
            timer.start()
            feats = [run_backbone(model, x[c:c + chunk], opts.flip, fi)
                     for c in range(0, B, chunk)]
            timer.lap('backbone')
            for N in persons:
                sc = scenes[N]
                t2 = StageTimer(device)
                t2.start()
                nvalid = []
                for j, c in enumerate(range(0, B, chunk)):
                    _, nv = run_decoder_stages(head, sc['heatmaps'][c:c + chunk],
                                               sc['offsets'][c:c + chunk], feats[j][2],
                                               canvas[c:c + chunk], t2)
                    nvalid.append(nv)
                if i >= opts.warmup:
                    times[N]['backbone'].append(timer.times['backbone'])
                    cpu[N]['backbone'].append(timer.cpu_times['backbone'])
                    for s in STAGES[1:]:
                        times[N][s].append(t2.times[s])
                        cpu[N][s].append(t2.cpu_times[s])
                found[N] = [int(v) for v in torch.cat(nvalid)]
                if opts.compare_plain:
                    t3 = StageTimer(device)
                    t3.start()
                    for j, c in enumerate(range(0, B, chunk)):
                        run_decoder_stages(head, sc['heatmaps'][c:c + chunk],
                                           sc['offsets'][c:c + chunk], feats[j][2],
                                           canvas[c:c + chunk], t3, fast=False)
                    if i >= opts.warmup:
                        plain[N].append(t3.times['global'])
    outs = tuple(torch.cat([f[k] for f in feats]) for k in range(3))
    return times, cpu, plain, found, outs


def _row(opts, B, N, chunk, times, cpu, plain, found, fl, fl_plain_global, err):
    row = dict(batch_size=B, persons=N, persons_found=found, flip=opts.flip,
               image_chunk=chunk, stages_ms={s: median_min(times[s]) for s in STAGES})
    R = opts.repeats
    row['total_ms'] = median_min([sum(times[s][r] for s in STAGES) for r in range(R)])
    # process CPU time summed over threads (wall time on an idle machine is about
    # cpu_ms / threads when the threads are busy)
    row['cpu_ms'] = {s: median_min(cpu[s]) for s in STAGES}
    row['cpu_total_ms'] = median_min([sum(cpu[s][r] for s in STAGES) for r in range(R)])
    med = {s: row['stages_ms'][s]['median'] for s in STAGES}
    row['per_image_ms'] = row['total_ms']['median'] / B
    row['after_backbone_share'] = 1 - med['backbone'] / row['total_ms']['median']
    row['gflop'] = fl
    row['gflops_per_s'] = {s: (fl[s] / (med[s] / 1e3) if med[s] > 0 else 0.)
                           for s in STAGES}
    row['global_gflop_plain'] = fl_plain_global
    row['global_gflops_plain_equiv'] = fl_plain_global / (med['global'] / 1e3)
    row['staged_vs_decoder_max_abs_diff'] = err
    if opts.compare_plain:
        row['global_plain_ms'] = median_min(plain)
    return row


def _add_dekr(rows, dekr_rows):
    for row in rows:
        d = dekr_rows[row['persons']]
        row['dekr_per_image_ms'] = d['total_ms']['median']
        row['dekr_total_ms'] = d['total_ms']['median'] * row['batch_size']
        row['dekr_persons_found'] = d['persons_found']
        row['ratio_to_dekr'] = row['per_image_ms'] / d['total_ms']['median']
        row['dekr_cpu_ms_per_image'] = d['cpu_ms']['median']
        row['cpu_ratio_to_dekr'] = (row['cpu_total_ms']['median'] / row['batch_size'] /
                                    d['cpu_ms']['median'])


def _cid_rows(opts, cfg, device, size, rows, in_channels):
    """MMPose's CID with CONFIG's backbone, input and flip, at batch 1 per N: in its stock
    layout and precision, and in each variant; batch-1 rows get ``ratio_to_cid`` (same
    variant)."""
    model, msg = build_cid(device, backbone=cfg.model.backbone, input_size=size,
                           flip=opts.flip, seed=opts.seed, in_channels=in_channels)
    if model is None:
        return dict(available=False, message=msg)
    x1 = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    runs = {'stock': dict(precision='fp32', memory_format='contiguous')}
    runs.update({v: VARIANTS[v] for v in opts.variants})
    out = {name: {str(N): run_cid(model, x1, N, repeats=opts.repeats, warmup=opts.warmup,
                                  **kw) for N in opts.persons}
           for name, kw in runs.items()}
    for row in rows:
        c = out[row['variant']][str(row['persons'])]
        if row['batch_size'] == 1:
            row['ratio_to_cid'] = row['per_image_ms'] / c['median_ms']
    del model
    return dict(available=True, message=msg, per_image=out)


def _variant_rows(opts, model, fi, device, size, K, h, w, chunk_cfg, variant, peak):
    """The timed rows of every batch size and N in one layout / precision variant (the
    current network plan)."""
    head, rows = model.head, []
    precision = VARIANTS[variant]['precision']
    for B in opts.batch_size:
        x = torch.randn(B, 3, size, size, generator=torch.Generator().manual_seed(B)
                        ).to(device)
        scenes = {N: {k: v.to(device) for k, v in
                      synthetic_scene(B, N, (h, w), K, seed=opts.seed + N).items()}
                  for N in opts.persons}
        canvas = [(size, size)] * B
        chunk = chunk_cfg or B   # the estimator's test_cfg.image_chunk
        times, cpu, plain, found, (_, _, emb) = _time_batch(
            opts, model, fi, device, x, scenes, canvas, chunk)
        # FLOPs and checks, once per (B, N), untimed
        with torch.no_grad():
            fl_backbone = count_flops(lambda: run_backbone(model, x, opts.flip, fi))
            for N in opts.persons:
                if any(f != N for f in found[N]):
                    raise RuntimeError(f'synthetic scene of {N} people gave {found[N]} '
                                       'valid centres')
                sc = scenes[N]
                args = (head, sc['heatmaps'], sc['offsets'], emb, canvas)
                fl = decoder_stage_flops(*args)
                fl['backbone'] = fl_backbone
                row = _row(opts, B, N, chunk, times[N], cpu[N], plain[N], found[N],
                           fl, decoder_stage_flops(*args, fast=False)['global'],
                           check_staged_equals_decoder(*args))
                if opts.compare_plain:
                    row['global_fast_vs_plain'] = compare_fast_plain(*args)
                row['variant'] = variant
                if peak is not None and precision in peak:
                    row['fraction_of_peak'] = fraction_of_peak(row['gflops_per_s'], peak,
                                                               precision)
                rows.append(row)
        del emb
    return rows


def benchmark(opts: BenchmarkOptions) -> dict:
    """Run the benchmark; returns the JSON-able result (keys: see docs/BENCHMARK.md).

    Weights are random (seeded) unless ``opts.checkpoint`` is given.
    """
    from logocap_mm.models.pose_estimators import LogoCapPoseEstimator
    device = torch.device(opts.device)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    cfg, size = load_config(opts.config, opts.input_size)
    model = build_logocap(cfg, device, opts.checkpoint, opts.flip, opts.seed)
    head = model.head
    dec = head.pose_decoder
    K, stride = head.num_keypoints, head.stride
    try:
        fi, fi_source = dataset_flip_indices(cfg, head)
    except ValueError:
        if opts.flip:
            raise
        fi, fi_source = list(range(K)), 'none (flip test off)'
    if max(opts.persons) > dec.topk:
        raise ValueError(f'--persons must be <= the decoder topk ({dec.topk}), '
                         f'got {list(opts.persons)}')
    if size % stride:
        raise ValueError(f'--input-size {size} must be a multiple of the head stride {stride}')
    h = w = size // stride
    dekr, dekr_msg = (None, 'DEKR not requested (--no-dekr)')
    if opts.dekr:
        dekr, dekr_msg = build_dekr(cfg, device, opts.flip, size, opts.dekr_deform,
                                    opts.seed, stride, K)
    chunk_value = opts.image_chunk_value()
    if chunk_value != 'config':
        model.test_cfg['image_chunk'] = chunk_value
    chunk_cfg = LogoCapPoseEstimator.image_chunk(device, model.test_cfg)
    rows = []
    load_start = os.getloadavg()
    peak = measure_peak(device) if opts.peak else None
    for variant in opts.variants:
        with use_plan(plan_for(variant, device)):
            rows += _variant_rows(opts, model, fi, device, size, K, h, w, chunk_cfg, variant,
                                  peak)
    cid = _cid_rows(opts, cfg, device, size, rows, head.in_channels) if opts.cid else None
    # DEKR at batch 1, same input / flip / people
    dekr_rows = {}
    if dekr is not None:
        x1 = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1)
                         ).to(device)
        for N in opts.persons:
            sc = synthetic_scene(1, N, (h, w), K, seed=opts.seed + N)
            dekr_rows[N] = time_dekr(dekr, x1, sc, opts.repeats, opts.warmup, device, fi)
        _add_dekr(rows, dekr_rows)
        del dekr
    gc.collect()
    memory = measure_memory(opts)
    deform = ' with torchvision deform_conv2d substitute' \
        if opts.dekr_deform == 'torchvision' else ''
    return dict(
        config=opts.config, checkpoint=opts.checkpoint, device=str(device),
        device_name=_device_name(device), torch_version=torch.__version__,
        num_threads=torch.get_num_threads(), input_size=size, stride=stride,
        flip=opts.flip, flip_indices=fi, flip_indices_source=fi_source,
        repeats=opts.repeats, warmup=opts.warmup, random_weights=not opts.checkpoint,
        load_avg_start=load_start, load_avg_end=os.getloadavg(),
        global_fast_path=bool(dec.fast),
        dekr=dict(available=bool(dekr_rows),
                  message=dekr_msg if not dekr_rows else 'timed' + deform,
                  deform_backend=opts.dekr_deform if dekr_rows else None,
                  per_image_ms={str(N): v['total_ms'] for N, v in dekr_rows.items()}),
        variants=list(opts.variants), peak=peak, cid=cid,
        results=rows, memory=memory)
