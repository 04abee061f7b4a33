"""LOGO-CAP inference from an exported ONNX file (numpy, OpenCV and onnxruntime only).

Same as ``python -m logocap_rt`` (the command-line interface of the installed runtime);
this script runs it from a clone without installing the package. See
:mod:`logocap_rt.cli` for the options.
"""
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:  # runnable from a clone without installing the package
    sys.path.insert(0, ROOT)

from logocap_rt.cli import run  # noqa: E402

if __name__ == '__main__':
    sys.exit(run())
