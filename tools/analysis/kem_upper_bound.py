"""KEM upper-bound analysis (LOGO-CAP paper, Fig. 2: 60.1 / 88.9 / 70.0 AP on COCO).

    python tools/analysis/kem_upper_bound.py CONFIG CHECKPOINT --out-dir DIR
        [--cfg-options k=v ...] [--device cpu] [--max-images N]

One pass over the config's test set; per image the same network outputs are decoded three
ways and each set of poses is scored with MMPose's ``CocoMetric`` (the config's
``test_evaluator``):

* ``none``   the centre-offset initial poses P0 ('none');
* ``upper``  the best pose inside the local KEMs: every initial pose is matched to a ground
  truth person (argmax over persons of the mean over labelled keypoints of the window-max OKS, :func:`logocap_mm.models.utils.matching.match_kem_targets`), and every keypoint
  moves to its KEM candidate with the highest OKS against that person (it stays at P0 when no
  candidate beats P0 or the keypoint is unlabelled). Scores are those of ``none``, so the
  difference to ``none`` is localisation only;
* ``full``   LOGO-CAP's output (local KAMs + global adaptation).

Writes ``DIR/kem_upper_bound.json`` (all CocoMetric numbers per level),
``DIR/kem_upper_bound.png`` (bar plot of the three APs) and CocoMetric's predictions
``DIR/preds_{none,upper,full}.keypoints.json``, and prints a markdown table. Outputs follow
:mod:`logocap_rt.outputs`: checked before the model runs (never the config, the checkpoint,
a directory or a device), written atomically.
"""
import argparse
import copy
import io
import json
import os.path as osp
import sys
import tempfile
import time
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:  # runnable from a clone
    sys.path.insert(0, ROOT)

from logocap_rt.outputs import (InputSet, atomic_write, check_out_dir,  # noqa: E402
                                check_output, json_text)

LEVELS = ('none', 'upper', 'full')
LABELS = {'none': 'centre-offset poses\n(none)', 'upper': 'best pose in KEMs\n(upper bound)',
          'full': 'LOGO-CAP\n(full)'}
PAPER = {'none': 60.1, 'upper': 88.9, 'full': 70.0}


# ----------------------------------------------------------------------------- core
def best_kem_poses(kem: Tensor, gt_kpts: Tensor, gt_vis: Tensor, gt_area: Tensor,
                   sigmas) -> Tuple[Tensor, Tensor, Tensor]:
    """Best pose inside the KEMs against the matched ground truth.

    Args:
        kem: (B, T, s, s, K, 2) KEM candidates in I (centre (s//2, s//2) = P0).
        gt_kpts: (B, G, K, 2) GT keypoints in I (G >= 1; padding slots with vis 0).
        gt_vis: (B, G, K) > 0 where labelled.
        gt_area: (B, G) person areas in I.
        sigmas: (K,) OKS sigmas.

    Returns:
        poses (B, T, K, 2) in I, assigned (B, T) long GT index, oks (B, T, K) per-keypoint OKS
        of the chosen candidate (0 for unlabelled keypoints).
    """
    from logocap_mm.models.utils.matching import kem_oks, match_kem_targets
    B, T, s, _, K, _ = kem.shape
    if T == 0:
        return kem.new_zeros(B, 0, K, 2), kem.new_zeros(B, 0, dtype=torch.long), \
            kem.new_zeros(B, 0, K)
    S = kem_oks(kem, gt_kpts, gt_vis, gt_area, sigmas)              # (B, T, G, K, s, s)
    match = match_kem_targets(S, gt_vis, gate=0.)
    sj = match.oks_joints.flatten(-2)                           # (B, T, K, s*s)
    c = (s // 2) * s + s // 2
    val, idx = sj.max(-1)
    idx = torch.where(val > sj[..., c], idx, torch.full_like(idx, c))  # ties keep P0
    pts = kem.permute(0, 1, 4, 2, 3, 5).reshape(B, T, K, s * s, 2)
    poses = pts.gather(3, idx[..., None, None].expand(B, T, K, 1, 2))[..., 0, :]
    return poses, match.assigned, sj.gather(-1, idx[..., None])[..., 0]


def gt_in_input_frame(data_samples, num_keypoints: int, device, dtype):
    """Ground truth of a test batch mapped O -> I with the samples' resize meta.

    Uses ``raw_ann_info`` (non-crowd persons with labelled keypoints) and
    ``input_center``/``input_scale``/``input_size`` (I = (O - c + scale/2) / scale * size,
    the inverse of MMPose's bottom-up I -> O mapping). Returns (B, G, K, 2), (B, G, K),
    (B, G) with G >= 1 (all-zero padding)."""
    K = num_keypoints
    items = []
    for ds in data_samples:
        meta = ds.metainfo
        for key in ('raw_ann_info', 'input_center', 'input_scale', 'input_size'):
            if key not in meta:
                raise ValueError(f'data sample metainfo lacks {key!r}: add it to the test '
                                 "pipeline's PackPoseInputs meta_keys")
        anns = meta['raw_ann_info']
        anns = anns if isinstance(anns, list) else [anns]
        anns = [a for a in anns if not a.get('iscrowd', 0) and a.get('num_keypoints', 0) > 0]
        c = np.asarray(meta['input_center'], np.float64).reshape(2)
        sc = np.asarray(meta['input_scale'], np.float64).reshape(2)
        sz = np.asarray(meta['input_size'], np.float64).reshape(2)
        kp = np.asarray([a['keypoints'] for a in anns], np.float64).reshape(-1, K, 3)
        xy = (kp[..., :2] - c + 0.5 * sc) / sc * sz
        area = np.asarray([a['area'] for a in anns], np.float64) * np.prod(sz / sc)
        items.append((xy, (kp[..., 2] > 0).astype(np.float64), area))
    from logocap_mm.models.utils.matching import pad_ground_truth
    return pad_ground_truth(items, K, device, dtype)


def levels_from_trace(decoder, trace: Dict[str, Tensor], gt, sigmas: Sequence[float]
                      ) -> Dict[str, List[Dict[str, Tensor]]]:
    """'none', 'upper' and 'full' results of one traced 'full' decode of the pipeline.

    Args:
        decoder: the head's ``LogoCapDecoder``.
        trace: its ``decode(..., adaptation='full', trace=True)`` trace (B images).
        gt: (kpts (B, G, K, 2), vis (B, G, K), area (B, G)) in I.

    Returns:
        per level the per-image results of the pipeline's finalize stage: P0 ('none'), the
        best KEM point per keypoint against the matched GT ('upper', keypoint values of
        'none'), and the LOGO-CA keypoints ('full').
    """
    if trace.get('level') != 'full':
        raise ValueError("the KEM upper bound needs a 'full' decode (test_cfg.adaptation)")
    K = decoder.num_keypoints
    poses, cs, valid = trace['poses'], trace['center_scores'], trace['valid']
    hr = trace['heatmaps_up'][:, :K]
    kp0, vals0 = decoder.refine('none', hr, poses)
    gk, gv, ga = (t.to(poses) for t in gt)
    ub, _, _ = best_kem_poses(trace['kem'], gk, gv, ga, sigmas)
    out = dict(none=(kp0, vals0), upper=(ub, vals0), full=(trace['keypoints'], trace['values']))
    return {lv: decoder.finalize(decoder.scores(kp, v, cs, valid)) for lv, (kp, v) in
            out.items()}


# ----------------------------------------------------------------------------- tool
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--out-dir', required=True)
    p.add_argument('--device', default='cpu')
    p.add_argument('--max-images', type=int, default=None,
                   help='evaluate only the first N test images (smoke runs)')
    p.add_argument('--cfg-options', nargs='+', default=None,
                   help='override config settings, key=value (as mim test)')
    return p.parse_args(argv)


def output_paths(out_dir: str) -> Dict[str, str]:
    """The files the tool writes under ``out_dir`` (summary, plot, per-level predictions)."""
    paths = dict(json=osp.join(out_dir, 'kem_upper_bound.json'),
                 png=osp.join(out_dir, 'kem_upper_bound.png'))
    paths.update({lv: osp.join(out_dir, f'preds_{lv}.keypoints.json') for lv in LEVELS})
    return paths


def check_outputs(out_dir: str, inputs: InputSet) -> Dict[str, str]:
    """Refuse (``ValueError``) before any work an ``out_dir`` that is not a writable folder
    or an output that is an input, a directory or not a regular file; returns the paths."""
    check_out_dir(out_dir)
    paths = output_paths(out_dir)
    for p in paths.values():
        check_output(p, inputs)
    return paths


def write_results(out_dir: str, summary: dict, title: str, inputs: InputSet,
                  preds_dir: str = None) -> Dict[str, str]:
    """Write the summary JSON, the bar plot PNG and (from ``preds_dir``, where CocoMetric
    wrote them) the per-level predictions through :mod:`logocap_rt.outputs`."""
    paths = check_outputs(out_dir, inputs)
    atomic_write(paths['json'], json_text(summary, sort_keys=True), inputs)
    atomic_write(paths['png'], plot_png(summary['ap'], title), inputs)
    for lv in LEVELS:
        src = osp.join(preds_dir, osp.basename(paths[lv])) if preds_dir else None
        if src and osp.isfile(src):
            with open(src, 'rb') as f:
                atomic_write(paths[lv], f.read(), inputs)
    return paths


def plot_png(aps: Dict[str, float], title: str) -> bytes:
    """Bar plot of the three APs (and the paper's values) as PNG bytes."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    vals = [100 * aps[lv] for lv in LEVELS]
    bars = ax.bar([LABELS[lv] for lv in LEVELS], vals,
                  color=['#8c8c8c', '#4c9be8', '#e8804c'])
    for b, v in zip(bars, vals):
        ax.text(b.get_x() + b.get_width() / 2, v + 1, f'{v:.1f}', ha='center')
    ax.scatter(range(3), [PAPER[lv] for lv in LEVELS], marker='_', s=900, color='k',
               label='paper, COCO val subset (Fig. 2)', zorder=3)
    ax.set_ylim(0, 105)
    ax.set_ylabel('AP (OKS)')
    ax.set_title(title, fontsize=9)
    ax.legend(loc='upper right', fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=100)
    plt.close(fig)
    return buf.getvalue()


def main(argv=None):
    args = parse_args(argv)
    for name, path in (('config', args.config), ('checkpoint', args.checkpoint)):
        if not osp.exists(path):
            raise ValueError(f'{name} not found: {path}')
    if args.max_images is not None and args.max_images < 1:
        raise ValueError(f'--max-images must be >= 1, got {args.max_images}')
    inputs = InputSet([args.config, args.checkpoint])
    check_outputs(args.out_dir, inputs)
    import logocap_mm  # noqa: F401  (registers the plugin)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        opts = {}
        for kv in args.cfg_options:
            if '=' not in kv:
                raise ValueError(f'--cfg-options entries must be key=value, got {kv!r}')
            k, v = kv.split('=', 1)
            try:
                v = json.loads(v)
            except ValueError:
                pass
            opts[k] = v
        cfg.merge_from_dict(opts)
    init_default_scope(cfg.get('default_scope', 'mmpose'))
    with tempfile.TemporaryDirectory(prefix='logocap_kem_ub_') as preds_dir:
        return _run(args, cfg, inputs, preds_dir)


def _run(args, cfg, inputs: InputSet, preds_dir: str) -> dict:
    """The pass over the test set; CocoMetric writes its predictions into ``preds_dir``."""
    from mmengine.dataset import pseudo_collate
    from mmengine.evaluator import Evaluator
    from mmengine.runner import Runner
    from mmpose.apis import init_model
    from mmpose.registry import METRICS
    model = init_model(cfg, args.checkpoint, device=args.device)
    head = model.head
    if not hasattr(head, 'pose_decoder'):
        raise ValueError(f'the model head ({type(head).__name__}) is not a LogoCapHead')
    model.test_cfg = dict(model.test_cfg or {}, adaptation='full')
    dec = head.pose_decoder
    loader_cfg = copy.deepcopy(cfg.test_dataloader)
    loader_cfg['num_workers'] = 0
    loader_cfg['persistent_workers'] = False
    loader = Runner.build_dataloader(loader_cfg)
    dataset = loader.dataset
    n_img = len(dataset) if args.max_images is None else min(args.max_images, len(dataset))
    evaluators = {}
    for lv in LEVELS:
        mcfg = copy.deepcopy(cfg.test_evaluator)
        mcfg = mcfg[0] if isinstance(mcfg, (list, tuple)) else mcfg
        mcfg['outfile_prefix'] = osp.join(preds_dir, f'preds_{lv}')
        ev = Evaluator(METRICS.build(mcfg))
        ev.dataset_meta = dataset.metainfo
        evaluators[lv] = ev
    seen = 0
    t0 = time.time()
    with torch.no_grad():
        for data_batch in loader:
            if seen >= n_img:
                break
            bs = len(data_batch['data_samples'])
            if seen + bs > n_img:
                keep = n_img - seen
                data_batch = pseudo_collate([
                    dict(inputs=data_batch['inputs'][i], data_samples=data_batch['data_samples'][i])
                    for i in range(keep)])
                bs = keep
            data = model.data_preprocessor(data_batch, False)
            samples = data['data_samples']
            base = copy.deepcopy(samples)
            gt = gt_in_input_frame(samples, head.num_keypoints,
                                   data['inputs'].device, data['inputs'].dtype)
            with dec.tracing() as traces:   # one trace per image chunk of the estimator
                model.predict(data['inputs'], samples)
            outputs = {lv: [] for lv in LEVELS}
            i = 0
            for tr in traces:
                n = tr['poses'].shape[0]
                res = levels_from_trace(dec, tr, tuple(t[i:i + n] for t in gt), head.sigmas)
                for lv in LEVELS:
                    outputs[lv].extend(res[lv])
                i += n
            for lv in LEVELS:
                inst = [head._to_instances(d) for d in outputs[lv]]
                out = model.add_pred_to_datasample(inst, None, copy.deepcopy(base))
                evaluators[lv].process(data_samples=out, data_batch=data_batch)
            seen += bs
    if seen == 0:
        raise ValueError('the test set is empty')
    results = {lv: evaluators[lv].evaluate(seen) for lv in LEVELS}
    aps = {lv: float(results[lv]['coco/AP']) for lv in LEVELS}
    summary = dict(config=args.config, checkpoint=args.checkpoint, images=seen,
                   device=args.device, seconds=round(time.time() - t0, 1),
                   torch=torch.__version__, ap=aps,
                   metrics={lv: {k: float(v) for k, v in results[lv].items()}
                            for lv in LEVELS},
                   paper_coco_fig2=PAPER)
    write_results(args.out_dir, summary, f'{osp.basename(args.config)}: {seen} images',
                  inputs, preds_dir)
    print('\n| poses | AP | AP50 | AP75 | AR |\n|---|---|---|---|---|')
    for lv in LEVELS:
        m = results[lv]
        print(f"| {lv} | {100 * m['coco/AP']:.1f} | {100 * m['coco/AP .5']:.1f} | "
              f"{100 * m['coco/AP .75']:.1f} | {100 * m['coco/AR']:.1f} |")
    print(f'\nwritten: {args.out_dir}/kem_upper_bound.json, kem_upper_bound.png')
    return summary


if __name__ == '__main__':
    main()
    sys.exit(0)
