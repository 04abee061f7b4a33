"""tools/cpu_threads.sh: OMP_NUM_THREADS wins; otherwise an int between 1 and the cores."""
import os
import os.path as osp
import subprocess

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))  # tests/<group>/<file>
SCRIPT = osp.join(ROOT, 'tools', 'cpu_threads.sh')


def _threads(**env):
    e = {k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'}
    e.update(env)
    return subprocess.run(['bash', SCRIPT], env=e, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_follows_omp_num_threads():
    assert _threads(OMP_NUM_THREADS='3') == '3'


def test_default_is_idle_cores():
    n = int(_threads())
    assert 1 <= n <= os.cpu_count()


def test_synthetic_demo_uses_it():
    with open(osp.join(ROOT, 'tools', 'synthetic_demo.sh')) as f:
        sh = f.read()
    assert 'OMP_NUM_THREADS=$(bash tools/cpu_threads.sh)' in sh
    assert 'OMP_NUM_THREADS:-1' not in sh
