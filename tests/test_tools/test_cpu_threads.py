"""tools/cpu_threads.sh: OMP_NUM_THREADS wins; otherwise all the cores this process may use,
whatever the load when it starts."""
import os
import os.path as osp
import subprocess

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))  # tests/<group>/<file>
SCRIPT = osp.join(ROOT, 'tools', 'cpu_threads.sh')


def _run(**env):
    e = {k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'}
    e.update(env)
    return subprocess.run(['bash', SCRIPT], env=e, capture_output=True, text=True)


def _threads(**env):
    p = _run(**env)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_follows_omp_num_threads():
    assert _threads(OMP_NUM_THREADS='3') == '3'


def test_default_is_all_usable_cores():
    # not the idle cores: a busy host at start (an install, the data generation) used to
    # drop a 2-core machine to one thread for the whole training
    assert int(_threads()) == len(os.sched_getaffinity(0))


def test_bad_omp_num_threads_is_refused():
    for bad in ('0', 'two', '-1'):
        p = _run(OMP_NUM_THREADS=bad)
        assert p.returncode != 0 and 'OMP_NUM_THREADS' in p.stderr, bad


def test_synthetic_demo_uses_it():
    with open(osp.join(ROOT, 'tools', 'synthetic_demo.sh')) as f:
        sh = f.read()
    assert 'OMP_NUM_THREADS=$(bash tools/cpu_threads.sh)' in sh
    assert 'OMP_NUM_THREADS:-1' not in sh
    # waiting OpenMP threads sleep instead of spinning unless the user chose otherwise
    assert 'export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}' in sh
