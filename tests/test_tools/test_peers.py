"""The synthetic ablation and peer configs: each ablation run differs from ``before.py`` in the
one factor it names, the CID peer shares the tiny backbone, input, augmentation and budget,
and ``make peers`` runs tools/peers.sh (not part of ``make demo``)."""
import os.path as osp
import subprocess

import pytest

from logocap_mm.testing import REPO_ROOT as ROOT
ABL = osp.join(ROOT, 'configs', 'synthetic_ablation')


def _load(path):
    from mmengine.config import Config
    return Config.fromfile(path)


def _factors(cfg):
    pipe = cfg.train_dataloader.dataset.pipeline
    (gen, ) = [s for s in pipe if s['type'] == 'GenerateTarget']
    aff = dict(pipe[1])
    return dict(flip_shift=gen['encoder'].get('flip_target_shift', False),
                flip_mode=cfg.model.test_cfg.flip_mode,
                mask=[s['type'] for s in pipe if 'HeatmapMask' in s['type']],
                affine=aff,
                head_codec=dict(cfg.model.head.decoder) == dict(gen['encoder']))


@pytest.mark.parametrize('name, changed', [
    ('aligned', {'flip_mode'}),
    ('shifted', {'flip_shift'}),
    ('crowdmask', {'mask'}),
    ('uniform', {'affine'}),
])
def test_each_ablation_changes_one_factor(name, changed):
    base = _factors(_load(osp.join(ABL, 'before.py')))
    var = _factors(_load(osp.join(ABL, name + '.py')))
    assert base['head_codec'] and var['head_codec']  # the head decodes with the train codec
    diff = {k for k in base if base[k] != var[k]}
    assert diff == changed, diff
    cfg = _load(osp.join(ABL, name + '.py'))
    assert cfg.train_cfg.max_epochs == 4 and cfg.randomness.seed == 0


def test_after_is_the_tiny_recipe_on_the_ablation_budget():
    after = _load(osp.join(ABL, 'after.py'))
    tiny = _load(osp.join(ROOT, 'configs', 'logocap', 'tiny_synthetic.py'))
    assert after.train_dataloader.dataset.pipeline == tiny.train_dataloader.dataset.pipeline
    assert after.model == tiny.model
    assert after.train_cfg.max_epochs == 4
    assert after.param_scheduler == _load(osp.join(ABL, 'before.py')).param_scheduler


def test_cid_peer_matches_the_logocap_setup():
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS
    cid = _load(osp.join(ROOT, 'configs', 'peers', 'cid_tiny_synthetic.py'))
    before = _load(osp.join(ABL, 'before.py'))
    assert cid.model.head.type == 'CIDHead'
    assert cid.model.backbone == before.model.backbone
    assert cid.model.neck == before.model.neck
    assert cid.codec.input_size == before.codec.input_size == (128, 128)
    assert cid.codec.heatmap_size == before.codec.heatmap_size
    cp, bp = cid.train_dataloader.dataset.pipeline, before.train_dataloader.dataset.pipeline
    assert [s['type'] for s in cp] == [s['type'] for s in bp]
    assert cp[1] == bp[1] and cp[2] == bp[2]  # the same affine and flip
    for key in ('train_cfg', 'optim_wrapper', 'param_scheduler', 'randomness'):
        assert cid[key] == before[key], key
    assert cid.train_dataloader.batch_size == before.train_dataloader.batch_size
    init_default_scope('mmpose')
    import logocap_mm  # noqa: F401
    MODELS.build(cid.model)


def test_peers_script_and_make_target():
    script = osp.join(ROOT, 'tools', 'peers.sh')
    subprocess.run(['bash', '-n', script], check=True)
    with open(osp.join(ROOT, 'Makefile')) as f:
        mk = f.read()
    peers = mk.split('\npeers:', 1)[1].split('\n\n', 1)[0]
    assert 'tools/peers.sh' in peers
    demo = mk.split('\ndemo:', 1)[1].split('\n\n', 1)[0]
    assert 'peers' not in demo
    with open(osp.join(ROOT, 'tools', 'synthetic_demo.sh')) as f:
        assert 'peers' not in f.read()
