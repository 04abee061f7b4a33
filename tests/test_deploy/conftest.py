"""Shared set-up of the deploy tests: the fixture's reference weights converted and built
once per session (``conv``), and its exports cached by settings (``deploy_export``)."""
import os
import os.path as osp

import pytest


def need(mod):
    """Skip (fail under CI=1) when the optional module ``mod`` is not installed."""
    try:
        __import__(mod)
    except ImportError:
        msg = f'{mod} is not installed (tools/install_env.sh installs it)'
        if os.environ.get('CI'):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope='session')
def need_module():
    """``need_module(name)``: :func:`need` for test modules."""
    return need


@pytest.fixture(scope='session')
def conv(fixture_dir, fixture_file, tmp_path_factory):
    """The fixture's weights converted by the converter, built in eval mode, + its config."""
    for m in ('onnx', 'onnxruntime', 'onnxscript'):
        need(m)
    fixture_file('ref_model.pth', 'ONNX export')
    fixture_file('ref_config_full.yaml', 'ONNX export')
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS

    import logocap_mm  # noqa: F401  (registers the LogoCap* modules)
    from logocap_mm.convert import convert_checkpoint
    init_default_scope('mmpose')
    tmp = tmp_path_factory.mktemp('deploy')
    convert_checkpoint(osp.join(fixture_dir, 'ref_model.pth'), str(tmp / 'ckpt.pth'),
                       ref_config=osp.join(fixture_dir, 'ref_config_full.yaml'),
                       out_config=str(tmp / 'cfg.py'))
    cfg = Config.fromfile(str(tmp / 'cfg.py'))
    model = MODELS.build(cfg.model)
    ck = torch.load(str(tmp / 'ckpt.pth'), map_location='cpu', weights_only=True)
    model.load_state_dict(ck['state_dict'], strict=True)
    model.eval()
    model.dataset_meta = ck['meta']['dataset_meta']
    return dict(model=model, cfg=cfg, tmp=tmp, ckpt=str(tmp / 'ckpt.pth'),
                cfg_path=str(tmp / 'cfg.py'), exports={})


@pytest.fixture(scope='session')
def deploy_export(conv):
    """``deploy_export(level, batch_size=1)``: the path of that export (made once)."""
    from logocap_mm.deploy.export import export_model

    def get(level, batch_size=1):
        key = level if batch_size == 1 else f'{level}_b{batch_size}'
        if key not in conv['exports']:
            out = str(conv['tmp'] / f'logocap_{key}.onnx')
            export_model(conv['model'], conv['cfg'], out, adaptation=level,
                         batch_size=batch_size)
            conv['exports'][key] = out
        return conv['exports'][key]
    return get
