"""COCO keypoint AP of exported files (fp32 / INT8, any backend) on a config's test set.

    python tools/deploy/eval_onnx.py CONFIG FILE.onnx [FILE.onnx ...] [--backend openvino]
        [--threads 1] [--limit N] [--out results.json]

Every file runs through the torch-free runtime (``LogoCapONNX``: the same preprocessing,
graph and pose NMS as ``onnx_infer.py``) on the images of the config's
``test_dataloader`` annotation file (``val_dataloader`` if there is none), and MMPose's
``CocoMetric`` built from the config's ``test_evaluator`` (``val_evaluator``) scores every
pose, as ``mim test`` does for the PyTorch model. Prints one table row per file (AP, AP .5,
AP .75, AR) and the time per image.
"""
import argparse
import os.path as osp
import sys
import tempfile
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('models', nargs='+')
    p.add_argument('--backend', default='onnxruntime', choices=('onnxruntime', 'openvino'))
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--limit', type=int, default=None,
                   help='first N val images only (a smoke run: the others count as missed)')
    p.add_argument('--out', default=None, help='JSON file of the results')
    return p.parse_args(argv)


def score_dataset(cfg, predict, limit=None):
    """COCO keypoint metrics of ``predict`` on the set ``mim test`` scores.

    Args:
        cfg (mmengine.Config): a config with ``test_dataloader.dataset`` and
            ``test_evaluator`` (else ``val_dataloader`` / ``val_evaluator``).
        predict (callable): image path -> list of instances (dicts with ``keypoints`` (K, 2)
            in O pixels, ``keypoint_scores`` (K,), ``bbox_score``), as ``LogoCapONNX``
            returns them.
        limit (int | None): score the first ``limit`` images only.

    Returns:
        tuple: ``(metrics dict, seconds per image of predict, number of images)``.

    Every instance of an image is kept: the sample's ``id`` is the list of the image's
    annotation ids, as MMPose's bottom-up data samples carry it (``CocoMetric`` keeps one
    instance per id when the id is a single number, the top-down convention).
    """
    import numpy as np
    from mmengine.registry import init_default_scope
    from mmpose.registry import DATASETS, METRICS

    import logocap_mm  # noqa: F401  (registers the LogoCap* modules)
    init_default_scope('mmpose')
    split = 'test' if cfg.get('test_dataloader') and cfg.get('test_evaluator') else 'val'
    loader, evaluator = cfg.get(f'{split}_dataloader'), cfg.get(f'{split}_evaluator')
    if not loader or not evaluator:
        raise ValueError('the config has no test_dataloader/test_evaluator (nor val_*)')
    if isinstance(evaluator, (list, tuple)):
        evaluator = evaluator[0]
    ds = DATASETS.build(dict(loader.dataset, pipeline=[], test_mode=True))
    items = [ds.get_data_info(i) for i in range(len(ds))][:limit]
    ev = dict(type='CocoMetric')
    ev.update(evaluator)
    if not ev.get('ann_file'):
        raise ValueError(f"the config's {split}_evaluator has no ann_file")
    metric = METRICS.build(ev)
    metric.dataset_meta = ds.metainfo
    K = len(ds.metainfo['sigmas'])
    t = time.perf_counter()
    for it in items:
        inst = predict(it['img_path'])
        pred = dict(
            keypoints=np.array([i['keypoints'] for i in inst], np.float32).reshape(-1, K, 2),
            keypoint_scores=np.array([i['keypoint_scores'] for i in inst],
                                     np.float32).reshape(-1, K),
            bbox_scores=np.array([i['bbox_score'] for i in inst], np.float32))
        ids = it.get('id')
        ids = list(ids) if isinstance(ids, (list, tuple, np.ndarray)) else [it['img_id']]
        metric.process([], [dict(id=ids, img_id=it['img_id'], pred_instances=pred,
                                 gt_instances={}, category_id=1)])
    dt = (time.perf_counter() - t) / max(len(items), 1)
    with tempfile.TemporaryDirectory() as tmp:
        metric.outfile_prefix = osp.join(tmp, 'eval')
        res = metric.evaluate(len(items))
    return res, dt, len(items)


def main(argv=None):
    args = parse_args(argv)
    from logocap_rt.outputs import InputSet, atomic_write, check_output, json_text
    inputs = InputSet([args.config, *args.models])
    if args.out:  # refused before the evaluation, not after it
        check_output(args.out, inputs, '--out')
    from mmengine.config import Config

    from logocap_rt import LogoCapONNX
    cfg = Config.fromfile(args.config)
    rows = []
    for path in args.models:
        rt = LogoCapONNX(path, num_threads=args.threads, backend=args.backend)
        res, dt, n = score_dataset(cfg, rt, args.limit)
        row = dict(model=path, backend=args.backend, precision=rt.meta.get('precision', 'fp32'),
                   adaptation=rt.meta['adaptation'], images=n, ms_per_image=1e3 * dt,
                   **{k: float(v) for k, v in res.items()})
        rows.append(row)
        print(f'{osp.basename(path)} ({row["precision"]}, {row["adaptation"]}, '
              f'{args.backend}): AP {100 * row.get("coco/AP", float("nan")):.1f}, '
              f'AP.5 {100 * row.get("coco/AP .5", float("nan")):.1f}, '
              f'AR {100 * row.get("coco/AR", float("nan")):.1f}, {row["ms_per_image"]:.0f} '
              'ms/image', flush=True)
    if args.out:
        atomic_write(args.out, json_text(rows), inputs)
    return 0


if __name__ == '__main__':
    sys.exit(main())
