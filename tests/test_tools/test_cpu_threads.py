"""tools/cpu_threads.sh: OMP_NUM_THREADS wins; otherwise all the cores this process may use,
whatever the load when it starts. tools/cpu_wait.py: OpenMP waits from the load now."""
import os
import os.path as osp
import subprocess
import sys

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
    # how OpenMP threads wait is chosen from the load just before training
    assert sh.index('WAIT_ENV=$("$PY" tools/cpu_wait.py --export)') < \
        sh.index('export "$WAIT_ENV"') < sh.index('mim train mmpose')
    assert 'OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}' not in sh


WAIT = osp.join(ROOT, 'tools', 'cpu_wait.py')


def _wait(*args, **env):
    e = {k: v for k, v in os.environ.items() if k != 'OMP_WAIT_POLICY'}
    e.update(env)
    return subprocess.run([sys.executable, WAIT, *args], env=e, capture_output=True,
                          text=True)


def test_cpu_wait_follows_omp_wait_policy_and_refuses_bad_values():
    assert _wait(OMP_WAIT_POLICY='passive').stdout.strip() == 'PASSIVE'
    assert _wait(OMP_WAIT_POLICY='ACTIVE').stdout.strip() == 'ACTIVE'
    p = _wait(OMP_WAIT_POLICY='sometimes')
    assert p.returncode == 2 and 'OMP_WAIT_POLICY' in p.stderr
    # --export: the assignment that carries the choice out
    assert _wait('--export', OMP_WAIT_POLICY='passive').stdout.strip() == \
        'OMP_WAIT_POLICY=PASSIVE'
    for bad in (['--sample', '0'], ['--busy-cores', 'nan'], ['--busy-cores', '-1']):
        p = _wait(*bad)
        assert p.returncode == 2 and 'must be > 0' in p.stderr, bad


def test_cpu_wait_threshold(monkeypatch):
    from logocap_mm.testing import load_tool
    tool = load_tool('tools/cpu_wait.py', 'cpu_wait_tool')
    monkeypatch.delenv('OMP_WAIT_POLICY', raising=False)
    monkeypatch.setattr(tool, 'busy_cores', lambda sample: 0.2)
    assert tool.choose(1.0, 0.5) == 'SPIN'
    monkeypatch.setattr(tool, 'busy_cores', lambda sample: 0.5)
    assert tool.choose(1.0, 0.5) == 'PASSIVE'
    monkeypatch.delenv('GOMP_SPINCOUNT', raising=False)
    assert tool.assignment('SPIN') == 'GOMP_SPINCOUNT=10000'
    assert tool.assignment('PASSIVE') == 'OMP_WAIT_POLICY=PASSIVE'
    monkeypatch.setenv('GOMP_SPINCOUNT', '500')  # the user's value is kept
    assert tool.assignment('SPIN') == 'GOMP_SPINCOUNT=500'


def test_cpu_wait_sees_a_busy_host():
    """With one spinning process per CPU beside it, the sample says PASSIVE."""
    n = os.cpu_count() or 1
    code = 'import time\nt = time.time()\nwhile time.time() - t < 4: pass'
    hogs = [subprocess.Popen([sys.executable, '-c', code]) for _ in range(n)]
    try:
        import time
        time.sleep(0.5)
        p = _wait('--sample', '1')
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert p.returncode == 0 and p.stdout.strip() == 'PASSIVE', p.stderr
