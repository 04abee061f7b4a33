#!/usr/bin/env bash
# GPU checks on a machine that has Python (3.12) and torch but no package index:
#   bash tools/device/run_checks.sh                 # CUDA: OUT/device_checks.json
#   DEVICE=cpu QUICK=1 bash tools/device/run_checks.sh   # dry run of every step on CPU
# 1. installs the wheelhouse (WHEELS, default .whl, built by tools/device/make_wheelhouse.sh)
#    with pip --no-index --no-deps into SITE (a folder put first on PYTHONPATH), plus the
#    mmcv._ext stand-in hook for mmcv-lite, loaded by a sitecustomize in SITE;
# 2. runs tools/device/checks.py (tests, mim train --amp, timings, benchmark) within BUDGET
#    seconds (default 420, under 8 minutes with the install) and writes one JSON to
#    $OUT/device_checks.json (OUT: the device tool's output folder, else outputs/device).
# The parity fixture: LOGOCAP_FIXTURES, else .fixtures if present (copy ref_model.pth, the
# two yaml files and the per-image .npz files there, ~45 MB, and carry it with .whl).
# Env: PYTHON (python3), EXTRA_PYTHONPATH (put before SITE; the dry run uses it to emulate
# the device's numpy 2), BUDGET, QUICK, SKIP (steps of checks.py not to run).
set -uo pipefail
cd "$(dirname "$0")/../.."
DEVICE=${DEVICE:-cuda}
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-/tmp/logocap_site}
PY=${PYTHON:-python3}
OUT_DIR=${OUT:-outputs/device}
BUDGET=${BUDGET:-420}
mkdir -p "$OUT_DIR"
start=$(date +%s)

ls "$WHEELS"/*.whl >/dev/null 2>&1 || { echo "run_checks: no wheels in $WHEELS" >&2; exit 2; }
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$WHEELS"/*.whl || { echo "run_checks: wheel install failed" >&2; exit 3; }
"$PY" logocap_mm/mmcv_ext_shim.py "$SITE" >/dev/null
cat > "$SITE/sitecustomize.py" <<'EOF'
# process the .pth files of this folder (the mmcv._ext hook), then any other sitecustomize
import importlib.machinery, importlib.util, os, site, sys
_here = os.path.dirname(os.path.abspath(__file__))
site.addsitedir(_here)
_spec = importlib.machinery.PathFinder.find_spec(
    'sitecustomize', [p for p in sys.path if os.path.abspath(p or '.') != _here])
if _spec is not None and _spec.loader is not None:
    _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
EOF
export PYTHONPATH="$PWD${EXTRA_PYTHONPATH:+:$EXTRA_PYTHONPATH}:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# the parity fixture, carried as .fixtures (the folder beside the checkout does not travel)
if [ -z "${LOGOCAP_FIXTURES:-}" ] && [ -d .fixtures ]; then export LOGOCAP_FIXTURES=$PWD/.fixtures; fi
echo "[run_checks] installed $(ls "$WHEELS"/*.whl | wc -l) wheels in $(( $(date +%s) - start ))s"
"$PY" -c "import numpy, torch, mmpose, mmcv, xtcocotools._mask, logocap_mm; \
print('[run_checks] numpy', numpy.__version__, 'torch', torch.__version__, 'mmpose', \
mmpose.__version__, 'cuda', torch.cuda.is_available())" || exit 4
timeout $(( BUDGET + 40 )) "$PY" tools/device/checks.py --device "$DEVICE" \
    --out "$OUT_DIR/device_checks.json" --budget "$BUDGET" ${QUICK:+--quick} \
    ${SKIP:+--skip $SKIP}
rc=$?
echo "[run_checks] rc=$rc in $(( $(date +%s) - start ))s; $OUT_DIR/device_checks.json"
exit $rc
