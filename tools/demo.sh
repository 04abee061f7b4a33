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

[ -x "$PY" ] || { echo "tools/demo.sh: no environment at $VENV; run make env first" >&2; exit 3; }

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
