"""The README describes the product: short, every linked file exists, every shipped config is
in the model zoo, no development-process wording."""
import glob
import os.path as osp
import re

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _readme():
    with open(osp.join(ROOT, 'README.md')) as f:
        return f.read()


def test_length_and_wording():
    text = _readme()
    assert len(text.splitlines()) <= 280
    for bad in ('brief', 'spec §', '[quirk]', '(issue', 'no GPU was lent', '../shared',
                '## Status'):
        assert bad not in text, bad


def test_links_exist_and_zoo_lists_every_config():
    text = _readme()
    for link in re.findall(r'\]\(([^)#:]+)\)', text):
        assert osp.exists(osp.join(ROOT, link)), link
    for cfg in glob.glob(osp.join(ROOT, 'configs', 'logocap', '*.py')):
        assert f'(configs/logocap/{osp.basename(cfg)})' in text, cfg


def test_make_demo_config_is_the_one_synthetic_demo_trains():
    text = _readme()
    with open(osp.join(ROOT, 'tools', 'synthetic_demo.sh')) as f:
        assert 'CFG=configs/logocap/tiny_synthetic.py' in f.read()
    row = next(line for line in text.splitlines() if 'make demo` trains' in line)
    assert 'tiny_synthetic.py' in row
    with open(osp.join(ROOT, 'configs', 'logocap', 'tiny_coco_demo.py')) as f:
        assert 'used by `make demo`' not in f.read()
