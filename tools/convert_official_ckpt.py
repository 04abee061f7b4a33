#!/usr/bin/env python
"""Convert a LOGO-CAP reference checkpoint (cherubicXN/logocap) to a logocap_mm checkpoint.

    python tools/convert_official_ckpt.py SRC DST \
        [--ref-config EXPERIMENT.yaml --out-config CFG.py [--base BASE.py]] [--unsafe-load]

SRC: a reference state dict (bare, or under 'state_dict' / 'model'; 'module.' prefixes are
stripped), e.g. the released logocap-hrnet-w32-coco.pth.tar. DST: mmengine checkpoint
(state_dict + meta.dataset_meta) for `mim test --checkpoint`, `load_from` and
`MMPoseInferencer(pose2d_weights=...)`. With --ref-config the architecture is taken from the
reference experiment yaml (and checked against the weights); --out-config then writes an MMPose
config inheriting --base (default: configs/logocap/w32_coco.py of this repository) with that
experiment's HRNet, head widths, test size and decoder settings.
The conversion is strict: any unmapped, missing or shape-mismatched key stops it (exit 1) and
all such keys are listed.
DST and --out-config must not be (or link to) SRC, --ref-config or --base; both are written to a
temporary file in their directory first and then renamed, so a failed write leaves no partial
file. DST's meta records the file names of SRC and --ref-config (not their paths).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from logocap_rt.deps import MissingDependency, require  # noqa: E402


def _import_converter():
    """The converter (torch, MMPose), or a one-line MissingDependency naming the extra."""
    for mod in ('torch', 'mmengine', 'mmpose'):
        require(mod, 'mmpose,lite', 'by the converter')
    from logocap_mm.convert import ConversionError, convert_checkpoint
    return ConversionError, convert_checkpoint


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src', help='reference checkpoint (.pth / .pth.tar)')
    p.add_argument('dst', help='output mmengine checkpoint (.pth)')
    p.add_argument('--ref-config', help='reference experiment yaml (experiments/*.yaml)')
    p.add_argument('--out-config', help='write an MMPose config (.py) for it (needs --ref-config)')
    p.add_argument('--base', default=None,
                   help='config the generated one inherits (_base_); default: absolute path '
                        'of configs/logocap/w32_coco.py in this repository')
    p.add_argument('--unsafe-load', action='store_true',
                   help='load SRC with torch.load(weights_only=False). This runs whatever code '
                        'the file contains: use it only for a file from a source you trust')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        ConversionError, convert_checkpoint = _import_converter()
    except MissingDependency as e:
        print(f'convert_official_ckpt: error: {e}', file=sys.stderr)
        return 1
    try:
        info = convert_checkpoint(args.src, args.dst, ref_config=args.ref_config,
                                  out_config=args.out_config, base=args.base,
                                  unsafe_load=args.unsafe_load)
    except (ConversionError, ValueError, OSError) as e:
        print(f'convert_official_ckpt: error: {e}', file=sys.stderr)
        return 1
    print(f"converted {info['num_keys']} tensors: {args.src} -> {args.dst}")
    if info['out_config']:
        print(f"config: {info['out_config']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
