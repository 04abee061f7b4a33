#!/usr/bin/env bash
# The synthetic crowd benchmark (the body of `make demo`), CPU only:
#   1. generate the synthetic multi-person dataset (cached: skipped when meta.json matches)
#   2. `mim train` configs/logocap/tiny_synthetic.py (about 15 min on 2 free CPU cores;
#      cached: skipped when the final checkpoint exists, FORCE_TRAIN=1 retrains)
#   3. `mim test` the three adaptation levels (none / partial / full) -> one AP table
#   4. the KEM upper-bound analysis (tools/analysis/kem_upper_bound.py, table + PNG)
#   5. visualisations of a few val images (tools/demo.py, 'none' and 'full')
# Outputs go under ${WORK_DIR:-work_dirs/synthetic_demo}; data under ${SYNTHETIC_ROOT}.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
WORK_DIR=${WORK_DIR:-work_dirs/synthetic_demo}
export SYNTHETIC_ROOT=${SYNTHETIC_ROOT:-data/synthetic/}
NUM_TRAIN=${NUM_TRAIN:-2000}
NUM_VAL=${NUM_VAL:-200}
CFG=configs/logocap/tiny_synthetic.py
# one torch thread per process: on a small shared CPU, two OpenMP threads were 10-30x slower
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
export PATH="$(cd "$VENV/bin" && pwd):$PATH"
mkdir -p "$WORK_DIR"

echo "== 1. synthetic data -> $SYNTHETIC_ROOT =="
"$PY" tools/make_synthetic.py --out-dir "$SYNTHETIC_ROOT" --num-train "$NUM_TRAIN" \
    --num-val "$NUM_VAL"

MAX_EPOCHS=$("$PY" -c "from mmengine.config import Config; \
print(Config.fromfile('$CFG').train_cfg.max_epochs)")
CKPT="$WORK_DIR/train/epoch_${MAX_EPOCHS}.pth"
if [ -f "$CKPT" ] && [ -z "${FORCE_TRAIN:-}" ]; then
  echo "== 2. mim train: cached ($CKPT; FORCE_TRAIN=1 retrains) =="
else
  echo "== 2. mim train (CPU) =="
  start=$(date +%s)
  mim train mmpose "$CFG" --work-dir "$WORK_DIR/train" --gpus 0
  echo "training wall time: $(( $(date +%s) - start )) s"
fi

echo "== 3. mim test, adaptation none / partial / full =="
for lv in none partial full; do
  mim test mmpose "$CFG" --checkpoint "$CKPT" --work-dir "$WORK_DIR/test_$lv" --gpus 0 \
      --cfg-options model.test_cfg.adaptation=$lv 2>&1 | tee "$WORK_DIR/test_$lv.log" \
      | grep -E "coco/AP" || true
done
"$PY" - "$WORK_DIR" <<'EOF'
import re, sys
wd = sys.argv[1]
keys = ['coco/AP', 'coco/AP .5', 'coco/AP .75', 'coco/AP (M)', 'coco/AP (L)', 'coco/AR']
print('\n| adaptation | ' + ' | '.join(k[5:] for k in keys) + ' |')
print('|---' * (len(keys) + 1) + '|')
for lv in ('none', 'partial', 'full'):
    text = open(f'{wd}/test_{lv}.log').read()
    vals = []
    for k in keys:
        m = re.findall(re.escape(k) + r':\s*([-0-9.]+)', text)
        vals.append(f'{100 * float(m[-1]):.1f}' if m else 'n/a')
    print(f'| {lv} | ' + ' | '.join(vals) + ' |')
EOF

echo "== 4. KEM upper bound =="
"$PY" tools/analysis/kem_upper_bound.py "$CFG" "$CKPT" --out-dir "$WORK_DIR/upper_bound"

echo "== 5. visualisations =="
VIS_IN="$WORK_DIR/vis_inputs"
mkdir -p "$VIS_IN"
for f in $(ls "$SYNTHETIC_ROOT/val" | head -n 4); do cp "$SYNTHETIC_ROOT/val/$f" "$VIS_IN/"; done
for lv in none full; do
  "$PY" tools/demo.py "$CFG" "$CKPT" "$VIS_IN" --out-dir "$WORK_DIR/vis_$lv" --device cpu \
      --adaptation $lv
done
echo "done: tables above; plots and images under $WORK_DIR"
