#!/usr/bin/env bash
# Create the project's virtual environment (the recipe, pins and pitfalls: docs/ENV.md).
#   VENV=.venv MMCV=lite|full bash tools/install_env.sh
# lite (default): mmcv-lite 2.1.0 wheel, no compiled ops. A .pth file in the venv's
#                 site-packages loads logocap_mm/mmcv_ext_shim.py at interpreter start (stdlib
#                 only, nothing imported eagerly): a fallback finder for `mmcv._ext` alone, so
#                 `from mmpose.apis import ...` works before logocap_mm is imported. DEKR's
#                 DeformConv2d is unavailable there.
# full:           builds mmcv 2.1.0 with CPU ops from the sdist (~10 min on 2 cores).
set -euo pipefail
VENV=${VENV:-.venv}
MMCV=${MMCV:-lite}
PY=${PYTHON:-python3}
BUILD=${BUILD:-$(mktemp -d)}
t() { local s; s=$(date +%s); "$@"; echo "[time] $(( $(date +%s) - s ))s: $*" >&2; }

# Pins repeated on every pip call so the resolver never moves them.
PINS=(torch==2.14.1 torchvision==0.29.1 "setuptools>=77.0.3,<81" "numpy<2" "opencv-python<4.12")

STAMP="$VENV/.logocap_env_$MMCV"
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ]; then
  echo "[install_env] reusing $VENV (MMCV=$MMCV)"
  exit 0
fi

[ -x "$VENV/bin/python" ] || t "$PY" -m venv "$VENV"
. "$VENV/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# 1. torch + build helpers (`wheel` must be present before chumpy builds).
t pip install -q "${PINS[@]}" wheel ninja psutil

# 2. OpenMMLab pure-python packages and their requirements.
t pip install -q "${PINS[@]}" mmengine==0.10.7 mmdet==3.2.0 mmpose==1.3.2 \
    xtcocotools==1.14.3 pycocotools

# 3. mmcv 2.1.0
if [ "$MMCV" = full ]; then
  pip uninstall -y -q mmcv-lite 2>/dev/null || true
  (
    cd "$BUILD"
    t pip download -q --no-deps --no-binary :all: --no-build-isolation mmcv==2.1.0
    tar xzf mmcv-2.1.0.tar.gz
    # torch 2.14 headers need C++20; mmcv 2.1.0's setup.py passes -std=c++17.
    sed -i 's/-std=c++17/-std=c++20/g' mmcv-2.1.0/setup.py
    t env MMCV_WITH_OPS=1 MAX_JOBS=2 pip wheel -q --no-build-isolation --no-deps \
        -w "$BUILD/wheels" ./mmcv-2.1.0
  )
  t pip install -q "${PINS[@]}" "$BUILD"/wheels/mmcv-2.1.0-*.whl
elif [ "$MMCV" = lite ]; then
  pip uninstall -y -q mmcv 2>/dev/null || true
  t pip install -q "${PINS[@]}" mmcv-lite==2.1.0
else
  echo "[install_env] MMCV must be 'lite' or 'full', got '$MMCV'" >&2; exit 2
fi

# 4. openmim without its opendatalab -> openxlab chain.
t pip install -q --no-deps openmim==0.3.9
t pip install -q "${PINS[@]}" click colorama model-index pandas requests rich tabulate

# 5. deploy: ONNX export (onnx, onnxscript for the dynamo exporter), the torch-free runtime
#    and its OpenVINO backend.
t pip install -q "${PINS[@]}" onnx==1.23.1 onnxscript==0.7.2 onnxruntime==1.30.0 \
    openvino==2026.4.1

# 6. video tracking: py-motmetrics (MOTA/IDF1 of the tracking benchmark) and the reference
#    One-Euro filter (the smoothing tests compare against it); scipy comes with MMPose.
t pip install -q "${PINS[@]}" motmetrics==1.4.0 OneEuroFilter==0.2.1

# 7. test tools and the plugin itself (editable, no deps: they are all above).
t pip install -q "${PINS[@]}" pytest
t pip install -q --no-deps --no-build-isolation -e .

# 8. mmcv-lite only: the `mmcv._ext` stand-in at interpreter start (removed for full mmcv).
SITE=$(python -c 'import site; print(site.getsitepackages()[0])')
rm -f "$SITE/logocap_mm_mmcv_ext.pth"
if [ "$MMCV" = lite ]; then
  python logocap_mm/mmcv_ext_shim.py "$SITE"
fi

rm -f "$VENV"/.logocap_env_*
touch "$STAMP" "$VENV/.logocap_env_ok"
echo "[install_env] ready: $VENV (MMCV=$MMCV)"
