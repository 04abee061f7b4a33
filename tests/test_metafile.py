"""model-index.yml -> configs/logocap/logocap.yml (MMPose's metafile schema) parses with the
model-index package and lists every shipped config, each existing, once."""
import glob
import os
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='module')
def index():
    pytest.importorskip('modelindex')
    from modelindex.load_model_index import load
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return load('model-index.yml')
    finally:
        os.chdir(cwd)


def test_every_shipped_config_listed_once(index):
    shipped = sorted(osp.relpath(p, ROOT)
                     for p in glob.glob(osp.join(ROOT, 'configs', 'logocap', '*.py')))
    listed = sorted(m.config for m in index.models)
    assert listed == shipped
    assert len({m.name for m in index.models}) == len(listed)


def test_collection_and_paper_results(index):
    (coll,) = index.collections
    assert coll.name == 'LOGO-CAP'
    paper = coll.paper if isinstance(coll.paper, dict) else coll.paper.data
    assert 'Local-Global Contextual Adaptation' in paper['Title']
    by_name = {m.name: m for m in index.models}
    assert all(m.in_collection == 'LOGO-CAP' for m in index.models)
    w32 = by_name['logocap_w32_coco']
    (res,) = w32.results
    assert res.task == 'Body 2D Keypoint' and res.dataset == 'COCO'
    assert res.metrics['AP'] == pytest.approx(0.696)
    assert by_name['logocap_w48_coco'].results[0].metrics['AP'] == pytest.approx(0.722)
    assert 'cherubicXN/logocap' in w32.weights
