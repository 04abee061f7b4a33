"""``python -m logocap_rt MODEL.onnx IMAGES... --out-dir DIR``: see :mod:`logocap_rt.cli`."""
import sys

from .cli import run

sys.exit(run())
