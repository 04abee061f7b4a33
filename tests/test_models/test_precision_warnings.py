"""``test_cfg.precision`` on a CPU without native low-precision instructions: one warning.

bf16/fp16 autocast runs on any CPU, but without AVX512-BF16/AMX (bf16) or AVX512-FP16
(fp16) oneDNN emulates it and the convolutions are ~10x slower than fp32; the user is told
once per process, and fp32 or a CPU with the instructions gives no warning.
"""
import warnings

import pytest
import torch

from logocap_mm.models import precision as prec


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(prec, '_WARNED', set())
    return monkeypatch


@pytest.mark.parametrize('name', ['bf16', 'fp16'])
def test_emulated_precision_warns_once(fresh, name):
    fresh.setattr(prec, '_cpu_has_native', lambda p: False)
    with pytest.warns(UserWarning, match=rf"precision='{name}'.*no native {name}.*10x slower"):
        plan = prec.resolve_plan(dict(precision=name), torch.device('cpu'))
    assert plan.dtype is prec.DTYPES[name]
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        prec.resolve_plan(dict(precision=name), torch.device('cpu'))  # once per process
        prec.resolve_plan({}, torch.device('cpu'))  # fp32: never


def test_native_precision_does_not_warn(fresh):
    fresh.setattr(prec, '_cpu_has_native', lambda p: True)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        prec.resolve_plan(dict(precision='bf16'), torch.device('cpu'))


def test_native_probe_matches_torch():
    expect = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert prec._cpu_has_native('bf16') is bool(expect)
