"""The benchmark's measured convolution peak and its CID peer (small sizes; speed itself is
reported by the benchmark, not tested)."""
import numpy as np
import pytest
import torch

import logocap_mm  # noqa: F401
from logocap_mm.benchmark.peak import (conv_flops, fraction_of_peak, gemm_flops, kernel_name,
                                       measure_peak, peak_kernels)


def test_conv_flops_is_what_torch_counts():
    from torch.utils.flop_counter import FlopCounterMode
    x, w = torch.randn(2, 8, 16, 16), torch.randn(8, 8, 3, 3)
    with FlopCounterMode(display=False) as fc:
        torch.nn.functional.conv2d(x, w, padding=1)
    assert fc.get_total_flops() == conv_flops(2, 8, 16, 3) == 2 * 2 * 8 * 8 * 9 * 16 * 16


def test_measure_peak_is_the_best_of_several_kernels_on_cpu():
    """The peak is the best sample of the best of several convolutions and a GEMM, so a
    stage that beats one convolution shape is not above it."""
    ks = [dict(kind='conv', batch=1, channels=16, size=16, kernel=3),
          dict(kind='conv', batch=2, channels=32, size=8, kernel=1),
          dict(kind='gemm', m=64, n=48, k=32)]
    peak = measure_peak('cpu', kernels=ks, repeats=3, warmup=1, min_time=0.005)
    assert set(peak) >= {'fp32', 'bf16', 'kernels', 'layout'}
    flops = {kernel_name(ks[0]): conv_flops(1, 16, 16), kernel_name(ks[1]): conv_flops(2, 32, 8, 1),
             kernel_name(ks[2]): gemm_flops(64, 48, 32)}
    assert flops[kernel_name(ks[2])] == 2 * 64 * 48 * 32
    for p in ('fp32', 'bf16'):
        r = peak[p]
        assert set(r['by_kernel']) == set(flops)
        assert r['gflops'] == max(v['max_gflops'] for v in r['by_kernel'].values()) > 0
        assert all(0 < v['median_gflops'] <= v['max_gflops'] for v in r['by_kernel'].values())
        assert r['gflop'] == pytest.approx(flops[r['kernel']] / 1e9)
        assert r['gflops'] == pytest.approx(r['gflop'] / (r['ms'] / 1e3), rel=1e-9)
    frac = fraction_of_peak({'backbone': peak['fp32']['gflops'] / 2}, peak)
    assert frac['backbone'] == pytest.approx(0.5)
    # the default candidates: convolutions of several shapes and a GEMM
    kinds = [k['kind'] for k in peak_kernels('cpu')]
    assert kinds.count('conv') >= 3 and 'gemm' in kinds


@pytest.fixture(scope='module')
def cid():
    from logocap_mm.benchmark.cid import build_cid
    model, msg = build_cid('cpu', input_size=128)
    if model is None:
        pytest.skip(msg)
    return model


@pytest.mark.parametrize('persons', [1, 3])
def test_cid_decodes_exactly_n_people(cid, persons):
    from logocap_mm.benchmark.cid import run_cid
    r = run_cid(cid, torch.randn(1, 3, 128, 128), persons, repeats=1, warmup=0)
    assert r['persons_found'] == persons
    assert r['median_ms'] > 0 and r['precision'] == 'fp32'
    assert cid.head.__class__.__name__ == 'CIDHead'
    assert cid.test_cfg['flip_test'] is True and 'max_instances' not in cid.test_cfg


def test_cid_in_our_layout_and_precision(cid):
    from logocap_mm.benchmark.cid import cid_samples, run_cid
    x = torch.randn(1, 3, 128, 128)
    r = run_cid(cid, x, 2, precision='bf16', memory_format='channels_last', repeats=1,
                warmup=0)
    assert r['persons_found'] == 2
    assert cid.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    # the hooks are gone afterwards: a plain predict returns fp32/numpy results
    with torch.no_grad():
        out = cid.predict(x, cid_samples(128))[0].pred_instances
    assert np.isfinite(np.asarray(out.keypoints)).all()
    assert 'forward_test' not in cid.head.iia_module.__dict__
    run_cid(cid, x, 1, repeats=1, warmup=0)  # back to the stock layout
    assert not cid.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_variants_are_the_plans_of_their_test_cfg():
    from logocap_mm.benchmark.variants import VARIANTS, plan_for, variants_for
    from logocap_mm.models.precision import current_plan, use_plan
    assert variants_for('cpu') == ['fp32-contiguous', 'fp32-channels_last',
                                   'bf16-channels_last']
    p = plan_for('bf16-channels_last', 'cpu')
    assert (p.dtype, p.channels_last) == (torch.bfloat16, True)
    assert plan_for('fp32-contiguous', 'cpu').channels_last is False
    assert set(VARIANTS) >= set(variants_for('cpu'))
    with use_plan(p):
        assert current_plan() is p
    with pytest.raises(ValueError, match='unknown benchmark variant'):
        plan_for('int8', 'cpu')
