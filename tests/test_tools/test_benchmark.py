"""logocap_mm.benchmark and the tools/benchmark.py CLI on the tiny config (small input,
1 repeat)."""
import json
import os.path as osp
from types import SimpleNamespace

import pytest
import torch

from logocap_mm.benchmark import STAGES, BenchmarkOptions, synthetic_scene
from logocap_mm.benchmark.memory import _spawn_worker, memory_worker
from logocap_mm.benchmark.models import dataset_flip_indices, load_config
from logocap_mm.testing import REPO_ROOT as ROOT
from logocap_mm.testing import TINY_CONFIG as TINY
from logocap_mm.testing import build_tiny_head, load_tool

CROWDPOSE_FLIP = [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13]
COCO_FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]


def _cli():
    return load_tool('tools/benchmark.py', 'benchmark_cli')


def test_synthetic_scene_gives_exactly_n_centres():
    """The decoder finds exactly N centres in the synthetic head output, and P0 lands
    on the synthetic keypoints (offsets are ``pixel - keypoint`` in F)."""
    import logocap_mm  # noqa: F401
    from logocap_mm.models.heads.logocap_decoder import LogoCapDecoder
    dec = LogoCapDecoder(sigmas=[0.05] * 17, topk=30)
    for n in (1, 7, 30):
        sc = synthetic_scene(2, n, (32, 40), 17, seed=n)
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
        synthetic_scene(1, 0, (8, 8))


def test_benchmark_smoke(tmp_path):
    out = tmp_path / 'sub' / 'bench.json'
    res = _cli().main([TINY, '--device', 'cpu', '--persons', '1', '3', '--batch-size', '1',
                       '--repeats', '1', '--warmup', '0', '--input-size', '64',
                       '--memory', 'none', '--compare-plain', '--out', str(out)])
    data = json.loads(out.read_text())
    for key in ('device', 'torch_version', 'input_size', 'flip', 'results', 'dekr', 'memory',
                'load_avg_start', 'stride', 'flip_indices', 'random_weights'):
        assert key in data
    assert 'targets' not in data
    assert data['torch_version'] == torch.__version__
    assert data['input_size'] == 64 and data['flip'] is True and data['stride'] == 4
    assert data['flip_indices'] == COCO_FLIP and data['random_weights'] is True
    assert len(data['results']) == 2
    for row in data['results']:
        assert row['persons_found'] == [row['persons']] * row['batch_size']
        for s in STAGES:
            assert row['stages_ms'][s]['median'] > 0
            assert row['stages_ms'][s]['min'] > 0
            assert s in row['gflops_per_s']
        assert row['total_ms']['median'] == pytest.approx(
            sum(row['stages_ms'][s]['median'] for s in STAGES), rel=1e-6)
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


def test_help_lists_every_flag_and_random_weights():
    parser = _cli().build_parser()
    assert 'random' in parser.description and '--checkpoint' in parser.description
    for action in parser._actions:
        assert action.help, action.dest


def test_flip_indices_from_the_dataset_meta():
    """CrowdPose's flip pairs come from its metainfo (not identity, not COCO's)."""
    cfg, _ = load_config(osp.join(ROOT, 'configs', 'logocap', 'w32_crowdpose.py'))
    head = build_tiny_head(cfg)
    assert dataset_flip_indices(cfg, head) == (CROWDPOSE_FLIP, 'head metainfo')
    # without a head metainfo: the config dataset's class METAINFO
    bare = SimpleNamespace(num_keypoints=14, config_flip_indices=None)
    fi, src = dataset_flip_indices(cfg, bare)
    assert fi == CROWDPOSE_FLIP and 'LogoCapCrowdPoseDataset' in src
    cfg.test_dataloader.dataset.metainfo = dict(
        from_file='configs/_base_/datasets/coco.py')
    with pytest.raises(ValueError, match='17 entries, expected 14'):
        dataset_flip_indices(cfg, bare)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg.pop(name, None)
    with pytest.raises(ValueError, match='flip_indices'):
        dataset_flip_indices(cfg, bare)


def test_memory_worker_inprocess(capsys):
    opts = BenchmarkOptions(TINY, input_size=64)
    out = memory_worker(opts, 'infer:full:1:2')
    assert out['mode'] == 'full' and out['persons'] == 2
    assert out['peak_mb'] >= out['base_mb'] > 0
    assert 'BENCH_WORKER' in capsys.readouterr().out
    with pytest.raises(ValueError, match='memory worker spec'):
        memory_worker(opts, 'infer:half:1:2')


def test_memory_worker_subprocess():
    """The fresh-process probe runs this checkout's package and reports one JSON row."""
    out = _spawn_worker(BenchmarkOptions(TINY, input_size=64, threads=1),
                        'infer:backbone:1:1')
    assert 'error' not in out, out.get('error')
    assert out['worker'] == 'infer:backbone:1:1' and out['mode'] == 'backbone'
    assert out['peak_mb'] >= out['base_mb'] > 0


def test_bad_arguments():
    cli = _cli()
    with pytest.raises(ValueError, match='--device'):
        cli.parse_args([TINY, '--device', 'tpu'])
    with pytest.raises(ValueError, match='--persons'):
        cli.parse_args([TINY, '--persons', '0'])
    with pytest.raises(ValueError, match='--input-size'):
        cli.parse_args([TINY, '--input-size', '100'])
    with pytest.raises(ValueError, match='--image-chunk'):
        BenchmarkOptions(TINY, image_chunk='many')
    with pytest.raises(ValueError, match='would overwrite'):
        cli.main([TINY, '--out', TINY])


def test_global_fast_path_zero_kams_equal_plain():
    """Rows whose clamped KAM is all zero (skipped by the fast path) decode exactly as the
    plain path's ``topk`` of an all-zero response; mixed with ordinary rows."""
    from logocap_mm.models.utils import global_adapt as ga
    g = torch.Generator().manual_seed(0)
    sc = synthetic_scene(1, 6, (48, 64), 17, seed=2)
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
    opts = BenchmarkOptions(TINY, input_size=128, train_input_size=64)
    out = memory_worker(opts, 'train:2')
    assert out['mode'] == 'train' and out['batch_size'] == 2 and out['input_size'] == 64
    assert out['step_ms'] > 0 and out['peak_mb'] >= out['base_mb'] > 0
    assert out['loss'] == out['loss']  # finite, not NaN


def test_decoder_stages_come_from_the_pipeline_hook():
    """The timer gets one lap per benchmark stage, in order, from the pipeline's own
    ``on_stage`` calls, and the timed decode equals ``pose_decoder.decode``."""
    from logocap_mm.benchmark.stages import (check_staged_equals_decoder,
                                             run_decoder_stages)
    from logocap_mm.testing import build_tiny_model, tiny_config
    head = build_tiny_model(tiny_config()).eval().head
    sc = synthetic_scene(2, 4, (16, 16), 17, seed=1)
    emb = torch.randn(2, head.embed_channels, 16, 16,
                      generator=torch.Generator().manual_seed(0))

    class Laps:
        def __init__(self):
            self.names = []

        def lap(self, name):
            self.names.append(name)
    laps = Laps()
    with torch.no_grad():
        insts, nvalid = run_decoder_stages(head, sc['heatmaps'], sc['offsets'], emb,
                                           [(64, 64)] * 2, laps)
        assert laps.names == list(STAGES[1:])
        assert nvalid.tolist() == [4, 4] and len(insts) == 2
        assert check_staged_equals_decoder(head, sc['heatmaps'], sc['offsets'], emb,
                                           [(64, 64)] * 2) == 0.0


VARIANTS = ('fp32-contiguous', 'bf16-channels_last', 'fp32-channels_last-fused')


def test_benchmark_variant_peak_and_cid_rows(tmp_path):
    """Every requested layout / precision variant gives its own rows (same people found),
    the measured peak gives each stage a fraction, and CID is timed per N and variant."""
    out = tmp_path / 'bench_variants.json'
    _cli().main([TINY, '--device', 'cpu', '--persons', '2', '--batch-size', '1',
                 '--repeats', '1', '--warmup', '0', '--input-size', '64',
                 '--memory', 'none', '--no-dekr', '--peak', '--cid',
                 '--variants', *VARIANTS, '--out', str(out)])
    data = json.loads(out.read_text())
    rows = data['results']
    assert [r['variant'] for r in rows] == list(VARIANTS)
    assert all(r['persons_found'] == [2] for r in rows)
    assert data['variants'] == list(VARIANTS)
    assert data['peak']['fp32']['gflops'] > 0 and data['peak']['bf16']['gflops'] > 0
    for r in rows:
        ref = data['peak']['fp32' if r['variant'].startswith('fp32') else 'bf16']['gflops']
        for s, f in r['fraction_of_peak'].items():
            assert abs(f - r['gflops_per_s'][s] / ref) < 1e-9
    cid = data['cid']
    assert cid['available'], cid['message']
    assert set(cid['per_image']) == {'stock', *VARIANTS}
    for r in rows:
        c = cid['per_image'][r['variant']]['2']
        assert c['persons_found'] == 2
        assert c['fuse_conv_bn'] is r['variant'].endswith('-fused')
        assert abs(r['ratio_to_cid'] - r['per_image_ms'] / c['median_ms']) < 1e-9


def test_help_imports_neither_torch_nor_the_package():
    """``tools/benchmark.py --help`` prints its usage before anything heavy is imported."""
    import subprocess
    import sys
    code = ('import runpy, sys\n'
            "sys.argv = ['benchmark.py', '--help']\n"
            'try:\n'
            f"    runpy.run_path({osp.join(ROOT, 'tools', 'benchmark.py')!r}, "
            "run_name='__main__')\n"
            'except SystemExit as e:\n'
            '    assert e.code == 0, e.code\n'
            "print('HEAVY', sorted(m for m in ('torch', 'mmpose', 'mmengine', 'logocap_mm') "
            'if m in sys.modules))\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout
    assert '--persons' in out and '--checkpoint' in out
    assert out.strip().splitlines()[-1] == 'HEAVY []'


def test_benchmark_e2e_variants_same_poses(tmp_path, capsys, fixture_file, fixture_dir):
    """tools/benchmark_e2e.py on the converted fixture weights (real poses): every variant runs
    through inference_bottomup, the first is the ratio's reference, the default plan
    (channels_last + BatchNorm folding) gives the contiguous plan's poses; the canvas is the
    config's; bad --variant values and an output over an input are refused."""
    from logocap_mm.testing import converted_fixture_model
    tool = load_tool('tools/benchmark_e2e.py', 'benchmark_e2e_cli')
    img = osp.join(ROOT, 'tests/data/coco/000000196141.jpg')
    with pytest.raises(SystemExit):
        tool.parse_args([TINY, '--variant', 'noequals'])
    with pytest.raises(SystemExit):
        tool.parse_args([TINY, '--rounds', '0'])
    with pytest.raises(ValueError, match='is the input'):
        tool.main([TINY, '--image', img, '--rounds', '1', '--out', img])
    fixture_file('ref_model.pth', 'end-to-end benchmark')
    fixture_file('ref_config_full.yaml', 'end-to-end benchmark')
    conv = converted_fixture_model(fixture_dir, str(tmp_path))
    out = tmp_path / 'e2e.json'
    res = tool.main([conv['cfg_path'], '--checkpoint', conv['ckpt'], '--image', img,
                     '--rounds', '1',
                     '--variant', 'contiguous=memory_format=contiguous,fuse_conv_bn=False',
                     '--variant', 'default=', '--variant',
                     "fused=memory_format='channels_last',fuse_conv_bn=True", '--out', str(out)])
    data = json.loads(out.read_text())
    assert list(data['variants']) == ['contiguous', 'default', 'fused']
    assert data['input_size'] == load_config(conv['cfg_path'])[1] and data['rounds'] == 1
    rows = data['variants']
    assert rows['contiguous']['ratio'] == 1.0 and rows['contiguous']['poses'] > 0
    assert rows['fused']['test_cfg'] == dict(memory_format='channels_last', fuse_conv_bn=True)
    # each model runs its own options (a shallow config copy once gave every variant the
    # first one's)
    effective = {n: r['model_test_cfg'] for n, r in rows.items()}
    assert effective['contiguous']['memory_format'] == 'contiguous'
    assert effective['contiguous']['fuse_conv_bn'] is False
    assert 'memory_format' not in effective['default'] and \
        'fuse_conv_bn' not in effective['default']
    assert effective['fused']['memory_format'] == 'channels_last'
    for name in ('default', 'fused'):
        assert rows[name]['best_ms'] > 0 and len(rows[name]['samples_ms']) == 1
        assert rows[name]['poses'] == rows['contiguous']['poses']
        assert rows[name]['max_kpt_diff_px'] < 1e-2
    assert res['variants']['default']['ratio'] == pytest.approx(
        rows['default']['best_ms'] / rows['contiguous']['best_ms'])
    assert '| default |' in capsys.readouterr().out
