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


def test_docs_named_by_the_code_exist():
    """Every ``docs/NAME.md`` that a tool, config, module or the Makefile names is shipped."""
    named = set()
    for pattern in ('tools/**/*', 'configs/**/*', 'logocap_mm/**/*.py', 'Makefile'):
        for path in glob.glob(osp.join(ROOT, pattern), recursive=True):
            if osp.isfile(path):
                with open(path, errors='replace') as f:
                    named.update(re.findall(r'docs/[A-Za-z_-]+\.md', f.read()))
    assert 'docs/ENV.md' in named  # tools/install_env.sh points at its recipe
    for doc in sorted(named):
        assert osp.isfile(osp.join(ROOT, doc)), doc


def test_every_test_cfg_option_is_documented():
    """docs/CONFIGS.md's table and the README's list name exactly the keys the model accepts."""
    from logocap_mm.models.heads.logocap_head import TEST_CFG_KEYS
    with open(osp.join(ROOT, 'docs', 'CONFIGS.md')) as f:
        section = f.read().split('## Test-time options', 1)[1].split('\n## ', 1)[0]
    table = re.findall(r'^\| `(\w+)` \|', section, re.M)
    assert sorted(table) == sorted(TEST_CFG_KEYS)
    para = _readme().split('Test-time options live in', 1)[1].split('\n\n', 1)[0]
    para = para.split('training:', 1)[0]
    listed = [k for k in re.findall(r'`(\w+)`', para) if not k.startswith(("'", 'model'))]
    assert sorted(set(listed)) == sorted(TEST_CFG_KEYS)
