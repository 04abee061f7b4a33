#!/usr/bin/env bash
# Bundled-data smoke run (not what `make demo` runs: that is tools/synthetic_demo.sh, which
# trains configs/logocap/tiny_synthetic.py): `mim train` configs/logocap/tiny_coco_demo.py on
# the 4 bundled COCO images, `mim test` it (MMPose's CocoMetric), then tools/demo.py on one
# image. Outputs go under ${WORK_DIR:-work_dirs/demo}.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
WORK_DIR=${WORK_DIR:-work_dirs/demo}
CFG=configs/logocap/tiny_coco_demo.py

if ! "$PY" -c "import logocap_mm; from mmpose.registry import MODELS; assert MODELS.get('LogoCapHead')" 2>/dev/null \
   || [ ! -f "$CFG" ]; then
  echo "make demo: the LOGO-CAP head (LogoCapHead) or the demo config ($CFG) is not in this" >&2
  echo "checkout, so there is nothing to train." >&2
  exit 3
fi

export PATH="$(cd "$VENV/bin" && pwd):$PATH"
mkdir -p "$WORK_DIR"
echo "== mim train (CPU) =="
mim train mmpose "$CFG" --work-dir "$WORK_DIR/train" --gpus 0
CKPT=$(ls -t "$WORK_DIR"/train/epoch_*.pth | head -n 1)
echo "== mim test $CKPT =="
mim test mmpose "$CFG" --checkpoint "$CKPT" --work-dir "$WORK_DIR/test" --gpus 0
echo "== inference =="
"$PY" tools/demo.py "$CFG" "$CKPT" tests/data/coco/000000197388.jpg --out-dir "$WORK_DIR/vis" --device cpu
echo "visualisations written to $WORK_DIR/vis"
