#!/usr/bin/env bash
# Build the wheelhouse that tools/device/run_checks.sh installs on a machine that has Python
# and torch but no package index:
#   bash tools/device/make_wheelhouse.sh [OUT_DIR]          (default .whl, cp312)
#   PYVER=3.11 BUILD_PY=.venv/bin/python bash tools/device/make_wheelhouse.sh /tmp/wh311
# PYVER: target Python (3.12 for the CUDA machine); BUILD_PY: a Python of that version used
# to build the one package that has no wheel for it (xtcocotools, from its sdist, against
# numpy 2 headers, so that it imports under numpy 1.x and 2.x). Everything else is a
# wheel downloaded with --only-binary, --no-deps: the pure-python OpenMMLab stack and the
# small packages a torch image lacks (the list below was checked against such an image,
# which already has numpy, opencv-python-headless, scipy, matplotlib, pillow, pyyaml, rich,
# requests, pandas, click, tabulate, colorama, tqdm, torchvision).
set -euo pipefail
OUT=${1:-.whl}
PYVER=${PYVER:-3.12}
TAG=cp${PYVER/./}
PIP=${PIP:-python3 -m pip}
BUILD_PY=${BUILD_PY:-$(command -v "python$PYVER" || true)}
mkdir -p "$OUT"

PURE=(mmengine==0.10.7 mmcv-lite==2.1.0 mmdet==3.2.0 mmpose==1.3.2 openmim==0.3.9
      addict==2.4.0 yapf==0.43.0 platformdirs==4.14.9 termcolor==3.3.0 model-index==0.1.11
      ordered-set==4.1.0 json-tricks==3.17.3 terminaltables==3.1.10)
COMPILED=(pycocotools==2.0.11 shapely==2.2.0 munkres==3.0.0)
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
      --platform manylinux1_x86_64)
$PIP download -q --no-deps --only-binary :all: --python-version "$PYVER" \
    --implementation cp "${PLAT[@]}" -d "$OUT" "${PURE[@]}" "${COMPILED[@]}"

if ! ls "$OUT"/xtcocotools-1.14.3-"$TAG"-*.whl >/dev/null 2>&1; then
  if [ -z "$BUILD_PY" ]; then
    echo "make_wheelhouse: no python$PYVER to build xtcocotools (set BUILD_PY)" >&2; exit 2
  fi
  BENV=$(mktemp -d)
  "$BUILD_PY" -m venv "$BENV/venv"
  "$BENV/venv/bin/pip" install -q "numpy>=2,<2.3" "cython>=3" "setuptools<81" wheel
  "$BENV/venv/bin/pip" wheel -q --no-deps --no-build-isolation --no-binary xtcocotools \
      -w "$OUT" xtcocotools==1.14.3
  rm -rf "$BENV"
fi
# one version of each package, or pip --no-deps stops the whole install
dups=$(ls "$OUT"/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z-' 'a-z_' | sort | uniq -d)
[ -z "$dups" ] || { echo "make_wheelhouse: several versions of: $dups" >&2; exit 2; }
du -sh "$OUT"
ls "$OUT"
