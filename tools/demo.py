"""Run LOGO-CAP on an image or a folder with MMPose's inferencer and save visualisations.

    python tools/demo.py CONFIG CHECKPOINT INPUT [--out-dir DIR] [--device cpu|cuda]
        [--adaptation full|partial|none] [--no-flip] [--kpt-thr 0.3]

INPUT is an image file or a folder of images (a progress bar is shown for folders).
Predictions (JSON) and drawn images are written under ``--out-dir`` only.
"""
import argparse
import os
import os.path as osp
import sys

IMG_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('input', help='image file or folder')
    p.add_argument('--out-dir', default='outputs/logocap_demo')
    p.add_argument('--device', default='cpu')
    p.add_argument('--adaptation', choices=['full', 'partial', 'none'], default=None)
    p.add_argument('--no-flip', action='store_true')
    p.add_argument('--kpt-thr', type=float, default=0.3)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for name, path in (('config', args.config), ('checkpoint', args.checkpoint),
                       ('input', args.input)):
        if not osp.exists(path):
            sys.exit(f'demo.py: {name} not found: {path}')
    import logocap_mm  # noqa: F401  (registers the plugin, safe checkpoint loading)
    from mmengine.config import Config
    from mmpose.apis import MMPoseInferencer

    cfg = Config.fromfile(args.config)
    if args.adaptation:
        cfg.model.test_cfg.adaptation = args.adaptation
    if args.no_flip:
        cfg.model.test_cfg.flip_test = False
    inferencer = MMPoseInferencer(pose2d=cfg, pose2d_weights=args.checkpoint,
                                  device=args.device, show_progress=False)
    if osp.isdir(args.input):
        files = sorted(f for f in os.listdir(args.input) if f.lower().endswith(IMG_EXTS))
        if not files:
            sys.exit(f'demo.py: no images ({", ".join(IMG_EXTS)}) in {args.input}')
        inputs = [osp.join(args.input, f) for f in files]
    else:
        inputs = [args.input]
    os.makedirs(args.out_dir, exist_ok=True)
    from mmengine.utils import ProgressBar
    bar = ProgressBar(len(inputs)) if len(inputs) > 1 else None
    total = 0
    for path in inputs:
        result = next(inferencer(path, vis_out_dir=osp.join(args.out_dir, 'vis'),
                                 pred_out_dir=osp.join(args.out_dir, 'predictions'),
                                 kpt_thr=args.kpt_thr, draw_bbox=False))
        n = len(result['predictions'][0])
        total += n
        if bar is not None:
            bar.update()
        else:
            print(f'{path}: {n} people')
    print(f'\n{len(inputs)} image(s), {total} people; outputs in {args.out_dir}')


if __name__ == '__main__':
    main()
