#!/usr/bin/env bash
# Print the torch/OpenMP thread count for CPU training: $OMP_NUM_THREADS if set, else the
# cores that are idle right now (cores minus the 1-minute load average, at least 1).
# Measured on a 2-core host: idle, two threads were as fast as one or faster; with the other
# core busy, two OpenMP threads were 10-30x slower than one.
set -euo pipefail
if [ -n "${OMP_NUM_THREADS:-}" ]; then
  echo "$OMP_NUM_THREADS"
  exit 0
fi
NCPU=$(nproc)
LOAD=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
awk -v n="$NCPU" -v l="$LOAD" 'BEGIN { t = int(n - l + 0.5); if (t < 1) t = 1; if (t > n) t = n; print t }'
