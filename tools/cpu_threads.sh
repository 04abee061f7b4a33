#!/usr/bin/env bash
# Print the torch/OpenMP thread count for CPU training: $OMP_NUM_THREADS if set, else the
# cores this process may run on (nproc). The scripts that use it also export
# OMP_WAIT_POLICY=PASSIVE (unless set): with the default spinning wait, two threads on a 2-core
# host that other jobs keep busy ran 3x slower than one thread; with PASSIVE they ran faster
# than one (docs/SYNTHETIC.md). The load at start is not used: it mostly reflects what ran just
# before (an environment install, the data generation), not the load during training.
set -euo pipefail
if [ -n "${OMP_NUM_THREADS:-}" ]; then
  case "$OMP_NUM_THREADS" in
    ''|*[!0-9]*|0) echo "OMP_NUM_THREADS must be a positive integer, got '$OMP_NUM_THREADS'" >&2
                   exit 2 ;;
  esac
  echo "$OMP_NUM_THREADS"
  exit 0
fi
nproc
