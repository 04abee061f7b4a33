#!/usr/bin/env bash
# The synthetic crowd benchmark (the body of `make demo`), CPU only:
#   1. generate the synthetic multi-person dataset (cached: skipped when meta.json matches)
#   2. `mim train` configs/logocap/tiny_synthetic.py (1800 iterations; DEMO_SCHEDULE=short:
#      tiny_synthetic_short.py, 1350; no validation while training, step 3 tests; cached:
#      skipped when the final checkpoint exists, FORCE_TRAIN=1 retrains)
#   3. `mim test` the three adaptation levels (none / partial / full) -> one AP table
#      (TEST_PRECISIONS="fp32 bf16" also tests them with model.test_cfg.precision=bf16)
#   4. the KEM upper-bound analysis (tools/analysis/kem_upper_bound.py, table + PNG)
#   5. visualisations of a few val images (tools/demo.py, 'none' and 'full')
# Outputs go under ${WORK_DIR:-work_dirs/synthetic_demo[_short]}; data under ${SYNTHETIC_ROOT}.
set -euo pipefail
cd "$(dirname "$0")/.."
# DEMO_SCHEDULE: standard (default, 8 epochs = 1800 iterations) or short (6 epochs = 1350:
# a quicker look; its 'partial' is less than 5 AP above 'none', docs/SYNTHETIC.md)
DEMO_SCHEDULE=${DEMO_SCHEDULE:-standard}
case "$DEMO_SCHEDULE" in
  standard) CFG=configs/logocap/tiny_synthetic.py ;;
  short) CFG=configs/logocap/tiny_synthetic_short.py ;;
  *) echo "DEMO_SCHEDULE must be 'standard' or 'short', got '$DEMO_SCHEDULE'" >&2; exit 2 ;;
esac
VENV=${VENV:-.venv}
MMCV=${MMCV:-lite}
PY="$VENV/bin/python"
# create the environment when missing, reuse it otherwise (the Makefile's $(STAMP) rule)
if [ ! -x "$PY" ] || [ ! -f "$VENV/.logocap_env_$MMCV" ]; then
  echo "== 0. environment: $VENV (tools/install_env.sh, MMCV=$MMCV) =="
  VENV="$VENV" MMCV="$MMCV" bash tools/install_env.sh
fi
export SYNTHETIC_ROOT=${SYNTHETIC_ROOT:-data/synthetic/}
# 1800 training images (8 epochs of 225 iterations: ~14 min in all on a quiet 2-core host);
# NUM_TRAIN=2000 is the longer schedule of the earlier records
NUM_TRAIN=${NUM_TRAIN:-1800}
NUM_VAL=${NUM_VAL:-200}
# default work dir per schedule (work_dirs/synthetic_demo, work_dirs/synthetic_demo_short)
WORK_DIR=${WORK_DIR:-work_dirs/synthetic_demo$([ "$DEMO_SCHEDULE" = standard ] || echo _short)}
# torch threads: OMP_NUM_THREADS if set, else all cores (tools/cpu_threads.sh); how waiting
# threads wait is chosen just before training (tools/cpu_wait.py)
OMP_NUM_THREADS=$(bash tools/cpu_threads.sh)
export OMP_NUM_THREADS MKL_NUM_THREADS=${MKL_NUM_THREADS:-$OMP_NUM_THREADS}
echo "[synthetic_demo] schedule $DEMO_SCHEDULE ($CFG), $OMP_NUM_THREADS torch thread(s)" \
     "(set OMP_NUM_THREADS to choose)"
demo_start=$(date +%s)
export PATH="$(cd "$VENV/bin" && pwd):$PATH"
mkdir -p "$WORK_DIR"

echo "== 1. synthetic data -> $SYNTHETIC_ROOT =="
"$PY" tools/make_synthetic.py --out-dir "$SYNTHETIC_ROOT" --num-train "$NUM_TRAIN" \
    --num-val "$NUM_VAL"
echo "data: $(( $(date +%s) - demo_start )) s"

# OpenMP waits, from the host's load now (the data generation has ended): a quiet host spins
# briefly (GOMP_SPINCOUNT=10000: 0.36 vs 0.51 s per iteration on 2 cores), a busy one sleeps
# (OMP_WAIT_POLICY=PASSIVE: 0.84 vs 1.20 s); an OMP_WAIT_POLICY you set wins
WAIT_ENV=$("$PY" tools/cpu_wait.py --export)
export "$WAIT_ENV"
echo "[synthetic_demo] OpenMP waits: $WAIT_ENV"

# (the last line: mmengine logs the SYNTHETIC_ROOT substitution to stdout)
MAX_EPOCHS=$("$PY" -c "from mmengine.config import Config; \
print(Config.fromfile('$CFG').train_cfg.max_epochs)" | tail -n 1)
case "$MAX_EPOCHS" in ''|*[!0-9]*) echo "cannot read max_epochs of $CFG: $MAX_EPOCHS" >&2; exit 1;; esac
CKPT="$WORK_DIR/train/epoch_${MAX_EPOCHS}.pth"
if [ -f "$CKPT" ] && [ -z "${FORCE_TRAIN:-}" ]; then
  echo "== 2. mim train: cached ($CKPT; FORCE_TRAIN=1 retrains) =="
else
  echo "== 2. mim train (CPU) =="
  start=$(date +%s)
  # no validation at the end of training (val_begin after the last epoch): the 'full'
  # `mim test` of step 3 is the same evaluation
  mim train mmpose "$CFG" --work-dir "$WORK_DIR/train" --gpus 0 \
      --cfg-options train_cfg.val_begin=$(( MAX_EPOCHS + 1 ))
  echo "training wall time: $(( $(date +%s) - start )) s"
fi

# TEST_PRECISIONS: model.test_cfg.precision values to test (e.g. "fp32 bf16"); fp32 by default
# (bf16 is ~10x slower than fp32 on a CPU without AVX512-BF16/AMX)
TEST_PRECISIONS=${TEST_PRECISIONS:-fp32}
step_start=$(date +%s)
echo "== 3. mim test, adaptation none / partial / full (precision: $TEST_PRECISIONS) =="
for prec in $TEST_PRECISIONS; do
  case "$prec" in fp32|bf16|fp16) ;; *) echo "TEST_PRECISIONS: unknown precision $prec" >&2; exit 1;; esac
  for lv in none partial full; do
    tag=$lv; [ "$prec" = fp32 ] || tag=${lv}_$prec
    if ! mim test mmpose "$CFG" --checkpoint "$CKPT" --work-dir "$WORK_DIR/test_$tag" --gpus 0 \
        --cfg-options model.test_cfg.adaptation=$lv model.test_cfg.precision=$prec \
        > "$WORK_DIR/test_$tag.log" 2>&1; then
      tail -n 30 "$WORK_DIR/test_$tag.log" >&2
      echo "mim test (adaptation=$lv, precision=$prec) failed; log: $WORK_DIR/test_$tag.log" >&2
      exit 1
    fi
    grep -E "Epoch\(test\).*coco/AP" "$WORK_DIR/test_$tag.log" | tail -n 1 | cut -c1-160 || true
  done
done
"$PY" - "$WORK_DIR" $TEST_PRECISIONS <<'EOF'
import re, sys
wd, precisions = sys.argv[1], sys.argv[2:]
keys = ['coco/AP', 'coco/AP .5', 'coco/AP .75', 'coco/AP (M)', 'coco/AP (L)', 'coco/AR']
print('\n| adaptation | precision | ' + ' | '.join(k[5:] for k in keys) + ' |')
print('|---' * (len(keys) + 2) + '|')
for lv in ('none', 'partial', 'full'):
    for prec in precisions:
        tag = lv if prec == 'fp32' else f'{lv}_{prec}'
        text = open(f'{wd}/test_{tag}.log').read()
        vals = []
        for k in keys:
            m = re.findall(re.escape(k) + r':\s*([-0-9.]+)', text)
            vals.append(f'{100 * float(m[-1]):.1f}' if m else 'n/a')
        print(f'| {lv} | {prec} | ' + ' | '.join(vals) + ' |')
EOF

echo "tests: $(( $(date +%s) - step_start )) s"; step_start=$(date +%s)
echo "== 4. KEM upper bound =="
"$PY" tools/analysis/kem_upper_bound.py "$CFG" "$CKPT" --out-dir "$WORK_DIR/upper_bound"

echo "upper bound: $(( $(date +%s) - step_start )) s"; step_start=$(date +%s)
echo "== 5. visualisations =="
# keypoint score threshold of the drawings: the tiny model's scores are small ('full' scores are
# heatmap responses x centre score, ~0.1-0.2 on visible keypoints), MMPose's default 0.3 hides them
KPT_THR=${KPT_THR:-0.05}
VIS_IN="$WORK_DIR/vis_inputs"
mkdir -p "$VIS_IN"
for f in $(ls "$SYNTHETIC_ROOT/val" | head -n 4); do cp "$SYNTHETIC_ROOT/val/$f" "$VIS_IN/"; done
for lv in none full; do
  "$PY" tools/demo.py "$CFG" "$CKPT" "$VIS_IN" --out-dir "$WORK_DIR/vis_$lv" --device cpu \
      --adaptation $lv --kpt-thr "$KPT_THR"
done
echo "visualisations: $(( $(date +%s) - step_start )) s"; step_start=$(date +%s)
echo "== 6. video: identities across frames =="
VIDEO_ROOT=${VIDEO_ROOT:-${SYNTHETIC_ROOT%/}_video}
"$PY" tools/make_synthetic_video.py --out-dir "$VIDEO_ROOT"
# 'none' and 'full' (the contrast; VIDEO_LEVELS="none partial full" adds 'partial', ~45 s)
VIDEO_LEVELS=${VIDEO_LEVELS:-none full}
"$PY" tools/analysis/video_tracking.py --clips "$VIDEO_ROOT" --out-dir "$WORK_DIR/video" \
    --config "$CFG" --checkpoint "$CKPT" --draw full --kpt-thr "$KPT_THR" --levels $VIDEO_LEVELS
echo "video: $(( $(date +%s) - step_start )) s"
echo "done in $(( $(date +%s) - demo_start )) s: tables above; plots and images under $WORK_DIR"
