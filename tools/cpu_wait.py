"""Print how waiting OpenMP threads should wait for CPU training on this host right now:
``SPIN`` (the host is quiet) or ``PASSIVE`` (other processes keep the cores busy).

    python tools/cpu_wait.py [--sample 2] [--busy-cores 0.5] [--export]

$OMP_WAIT_POLICY, when set, wins (printed back, upper-cased; ACTIVE or PASSIVE). Otherwise the
CPU time that other processes use is sampled over ``--sample`` seconds (this process sleeps
meanwhile): ``--busy-cores`` or more busy cores -> PASSIVE, else SPIN. ``--export`` prints the
one environment assignment that carries the choice out instead: ``OMP_WAIT_POLICY=PASSIVE``
(or the ACTIVE you set), or ``GOMP_SPINCOUNT=10000`` (a spin of tens of microseconds before
sleeping; a GOMP_SPINCOUNT you set is kept). tools/synthetic_demo.sh and tools/peers.sh run
``export "$(python tools/cpu_wait.py --export)"`` before training.

Why: on this 2-core host, tiny_synthetic.py training (2 torch threads) took 0.36 s per
iteration spinning and 0.51 s with PASSIVE when the host was quiet, but 1.20 s spinning and
0.84 s with PASSIVE beside two busy processes (docs/SYNTHETIC.md). The load average is not
used: it mostly reflects what ran just before (an install, the data generation).
"""
import argparse
import os
import sys

SPINCOUNT = 10000  # GOMP_SPINCOUNT of a quiet host


def busy_cores(sample: float) -> float:
    """Cores' worth of CPU time used on the host over ``sample`` seconds."""
    import psutil
    percent = psutil.cpu_percent(interval=sample)  # all CPUs, 0-100
    return percent / 100.0 * (psutil.cpu_count() or 1)


def choose(sample: float = 2.0, busy: float = 0.5) -> str:
    env = os.environ.get('OMP_WAIT_POLICY', '').strip()
    if env:
        if env.upper() not in ('ACTIVE', 'PASSIVE'):
            raise ValueError(f'OMP_WAIT_POLICY must be ACTIVE or PASSIVE, got {env!r}')
        return env.upper()
    return 'PASSIVE' if busy_cores(sample) >= busy else 'SPIN'


def assignment(choice: str) -> str:
    """The ``NAME=VALUE`` environment assignment that carries out ``choice``."""
    if choice == 'SPIN':
        return f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', '').strip() or SPINCOUNT}"
    return f'OMP_WAIT_POLICY={choice}'


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--sample', type=float, default=2.0, help='seconds to sample (> 0)')
    p.add_argument('--busy-cores', type=float, default=0.5,
                   help='busy cores from which threads sleep while waiting (> 0)')
    p.add_argument('--export', action='store_true',
                   help='print the environment assignment (NAME=VALUE) to export instead')
    args = p.parse_args(argv)
    if not args.sample > 0 or not args.busy_cores > 0:
        p.error(f'--sample and --busy-cores must be > 0, got {args.sample} and '
                f'{args.busy_cores}')
    try:
        choice = choose(args.sample, args.busy_cores)
        print(assignment(choice) if args.export else choice)
    except ValueError as e:
        print(f'cpu_wait: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
