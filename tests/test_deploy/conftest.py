"""Shared set-up of the deploy tests: the fixture's reference weights converted and built
once per session (``conv``), and its exports cached by settings (``deploy_export``)."""
import os

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
    from logocap_mm.testing import converted_fixture_model
    tmp = tmp_path_factory.mktemp('deploy')
    c = converted_fixture_model(fixture_dir, str(tmp))
    return dict(model=c['model'], cfg=c['cfg'], tmp=tmp, ckpt=c['ckpt'],
                cfg_path=c['cfg_path'], exports={})


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
