"""tools/make_synthetic.py writes through the shared output rules."""
import json
import os
import subprocess
import sys

from logocap_mm.testing import REPO_ROOT as ROOT
from logocap_mm.testing import load_tool


def test_outputs_and_bad_out_dir(tmp_path):
    ms = load_tool('tools/make_synthetic.py', 'make_synthetic_outputs')
    out = tmp_path / 'syn'
    assert ms.main(['--out-dir', str(out), '--num-train', '2', '--num-val', '1']) == 0
    assert sorted(os.listdir(out / 'train')) == ['000000.jpg', '000001.jpg']
    assert json.loads((out / 'meta.json').read_text())['num_train'] == 2
    assert not [f for d, _, fs in os.walk(out) for f in fs if f.startswith('.')]
    (tmp_path / 'file').write_text('x')
    r = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'make_synthetic.py'),
                        '--out-dir', str(tmp_path / 'file'), '--num-train', '1'],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and 'Traceback' not in r.stderr
    assert r.stderr.strip().endswith('exists and is not a directory')
