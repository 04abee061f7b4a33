"""Smoke test of tools/benchmark.py on the tiny config (fast: small input, 1 repeat)."""
import json
import os.path as osp
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(ROOT, 'tools'))
import benchmark  # noqa: E402

TINY = osp.join(ROOT, 'configs', 'logocap', 'tiny_coco_demo.py')


def test_synthetic_scene_gives_exactly_n_centres():
    """The decoder finds exactly N centres in the synthetic head output, and P0 lands
    on the synthetic keypoints (offsets are ``pixel - keypoint`` in F)."""
    import logocap_mm  # noqa: F401
    from logocap_mm.models.heads.logocap_decoder import LogoCapDecoder
    dec = LogoCapDecoder(sigmas=[0.05] * 17, topk=30)
    for n in (1, 7, 30):
        sc = benchmark.synthetic_scene(2, n, (32, 40), 17, seed=n)
        assert sc['heatmaps'].shape == (2, 18, 32, 40)
        assert sc['offsets'].shape == (2, 34, 32, 40)
        init = dec.initial_poses(sc['heatmaps'], sc['offsets'], [(128, 160)] * 2)
        assert init['valid'].sum(1).tolist() == [n, n]
        # each found centre (I) is within 1 I-px of a synthetic centre (F * 4)
        c = init['centers'][init['valid']].float().reshape(2, n, 2)
        ref = sc['centers'] * 4
        d = torch.cdist(c, ref).min(-1).values
        assert float(d.max()) < 2.0
        # P0 = c - 4 * O[floor(c/4)] equals 4 * keypoint up to the centre's sub-F-px part
        P0 = init['poses'][init['valid']].reshape(2, n, 17, 2)
        match = torch.cdist(c, ref).argmin(-1)
        kp = torch.stack([sc['keypoints'][b, match[b]] for b in range(2)]) * 4
        assert float((P0 - kp).abs().max()) < 4.0
    with pytest.raises(ValueError, match='persons'):
        benchmark.synthetic_scene(1, 0, (8, 8))


def test_benchmark_smoke(tmp_path):
    out = tmp_path / 'bench.json'
    res = benchmark.main([TINY, '--device', 'cpu', '--persons', '1', '3', '--batch-size', '1',
                          '--repeats', '1', '--warmup', '0', '--input-size', '64',
                          '--memory', 'none', '--compare-plain', '--out', str(out)])
    data = json.loads(out.read_text())
    for key in ('device', 'torch_version', 'input_size', 'flip', 'results', 'dekr', 'memory',
                'targets', 'load_avg_start'):
        assert key in data
    assert data['torch_version'] == torch.__version__
    assert data['input_size'] == 64 and data['flip'] is True
    assert len(data['results']) == 2
    for row in data['results']:
        assert row['persons_found'] == [row['persons']] * row['batch_size']
        for s in benchmark.STAGES:
            assert row['stages_ms'][s]['median'] > 0
            assert row['stages_ms'][s]['min'] > 0
            assert s in row['gflops_per_s']
        assert row['total_ms']['median'] == pytest.approx(
            sum(row['stages_ms'][s]['median'] for s in benchmark.STAGES), rel=1e-6)
        assert 0 < row['after_backbone_share'] < 1
        assert row['gflop']['backbone'] > 0 and row['gflop']['local_kams'] > 0
        assert row['staged_vs_decoder_max_abs_diff'] == 0.0
        assert row['global_fast_vs_plain']['equal_shapes']
        assert row['global_fast_vs_plain']['max_abs_keypoints'] < 1e-4
    # DEKR is either timed or skipped with a message saying what it needs
    if data['dekr']['available']:
        assert all('ratio_to_dekr' in r for r in data['results'])
    else:
        assert 'mmcv' in data['dekr']['message']
    assert res['results'][0]['batch_size'] == 1


def test_memory_worker_inprocess(capsys):
    args = benchmark.parse_args([TINY, '--device', 'cpu', '--input-size', '64',
                                 '--worker', 'infer:full:1:2'])
    out = benchmark.memory_worker(args)
    assert out['mode'] == 'full' and out['persons'] == 2
    assert out['peak_mb'] >= out['base_mb'] > 0
    assert 'BENCH_WORKER' in capsys.readouterr().out


def test_bad_arguments():
    with pytest.raises(ValueError, match='--device'):
        benchmark.parse_args([TINY, '--device', 'tpu'])
    with pytest.raises(ValueError, match='--persons'):
        benchmark.parse_args([TINY, '--persons', '0'])
    with pytest.raises(ValueError, match='--input-size'):
        benchmark.parse_args([TINY, '--input-size', '100'])


def test_global_fast_path_zero_kams_equal_plain():
    """Rows whose clamped KAM is all zero (skipped by the fast path) decode exactly as the
    plain path's ``topk`` of an all-zero response; mixed with ordinary rows."""
    from logocap_mm.models.utils import global_adapt as ga
    g = torch.Generator().manual_seed(0)
    sc = benchmark.synthetic_scene(1, 6, (48, 64), 17, seed=2)
    Hr = torch.nn.functional.interpolate(sc['heatmaps'][:, :17], (192, 256),
                                         mode='bilinear', align_corners=False)
    P0 = sc['keypoints'] * 4 + torch.randn(1, 6, 17, 2, generator=g) * 3
    kam = (torch.rand(1, 6, 17, 11, 11, generator=g) * 2 - 1).clamp(0, 1)
    kam[0, :3, ::2] = 0.          # whole rows zero
    kam[0, 5] = 0.                # a whole person zero
    kp0, v0 = ga.global_adaptation(Hr, P0, kam, fast=False)
    kp1, v1 = ga.global_adaptation(Hr, P0, kam, fast=True)
    assert torch.equal(kp0, kp1)
    assert (v0 - v1).abs().max().item() <= 1e-6
    assert (v1[0, 5] == 0).all()


def test_train_worker_inprocess(capsys):
    args = benchmark.parse_args([TINY, '--device', 'cpu', '--input-size', '128',
                                 '--train-input-size', '64', '--worker', 'train:2'])
    out = benchmark.memory_worker(args)
    assert out['mode'] == 'train' and out['batch_size'] == 2 and out['input_size'] == 64
    assert out['step_ms'] > 0 and out['peak_mb'] >= out['base_mb'] > 0
    assert out['loss'] == out['loss']  # finite, not NaN
