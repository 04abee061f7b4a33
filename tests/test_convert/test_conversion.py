"""Reference-checkpoint converter: key mapping, strictness, generated config, written checkpoint."""
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

import logocap_mm.compat  # noqa: F401  (mmcv._ext stand-in before mmpose.models)
from logocap_mm.convert import (ConversionError, W32_EXTRA, arch_from_ref_config,
                                convert_checkpoint, convert_state_dict, head_param_shapes,
                                hrnet_param_shapes, infer_head_cfg, infer_hrnet_extra,
                                load_ref_config, make_override_config, map_reference_key,
                                unwrap_state_dict)
from logocap_mm.testing import REPO_ROOT as ROOT

CMP = 'head.local_adaptation.cmp.layers.'  # converted CMP keys
TOOL = osp.join(ROOT, 'tools', 'convert_official_ckpt.py')


@pytest.fixture(scope='module')
def ref(fixture_dir):
    sd = torch.load(osp.join(fixture_dir, 'ref_model.pth'), map_location='cpu',
                    weights_only=True)
    cfg = load_ref_config(osp.join(fixture_dir, 'ref_config_full.yaml'))
    return sd, cfg


def _hrnet(extra):
    from mmpose.models.backbones.hrnet import HRNet
    return HRNet(extra=extra)


def test_key_mapping_rule():
    assert map_reference_key('backbone.stage3.0.fuse_layers.2.0.1.0.weight') == \
        'backbone.stage3.0.fuse_layers.2.0.1.0.weight'
    assert map_reference_key('transition_cls.1.running_var') == 'head.heatmap_layers.1.running_var'
    assert map_reference_key('final_layer_cls.bias') == 'head.heatmap_final.bias'
    assert map_reference_key('transition_reg.0.weight') == 'head.offset_layers.0.weight'
    assert map_reference_key('final_layer_reg.weight') == 'head.offset_final.weight'
    assert map_reference_key('transition_embedding.1.num_batches_tracked') == \
        'head.embedding_layers.1.num_batches_tracked'
    assert map_reference_key('joints_mlp.4.weight_') == CMP + '4.weight'
    assert map_reference_key('joints_mlp.4.bias_') == CMP + '4.bias'
    assert map_reference_key('joints_mlp.4.attn_weights.attention.0.weight') == \
        CMP + '4.attn_conv.weight'
    assert map_reference_key('joints_mlp.9.bias') == CMP + '9.bias'
    assert map_reference_key('layer1.0.conv1.weight') is None
    assert map_reference_key('decoder.foo') is None


def test_fixture_backbone_loads_strict_into_mmpose_hrnet(ref):
    sd, cfg = ref
    extra, head_cfg = arch_from_ref_config(cfg)
    # the yaml and the weights describe the same network
    assert infer_hrnet_extra(sd) == extra
    assert infer_head_cfg(sd) == head_cfg
    out, _, _ = convert_state_dict(sd, extra, head_cfg)
    assert len(out) == len(sd)
    bb = {k[len('backbone.'):]: v for k, v in out.items() if k.startswith('backbone.')}
    net = _hrnet(extra)
    res = net.load_state_dict(bb, strict=True)
    assert not res.missing_keys and not res.unexpected_keys
    for k, v in net.state_dict().items():
        assert torch.equal(v, sd['backbone.' + k]), k
    # the backbone actually runs with the converted weights: 4 maps at strides 4..32
    net.eval()
    with torch.no_grad():
        feats = net(torch.zeros(1, 3, 64, 64))
    widths = tuple(extra['stage4']['num_channels'])
    assert tuple(f.shape[1] for f in feats) == widths
    assert tuple(f.shape[-1] for f in feats) == (16, 8, 4, 2)


def test_fixture_head_names_and_shapes(ref):
    sd, cfg = ref
    extra, head_cfg = arch_from_ref_config(cfg)
    out, _, _ = convert_state_dict(sd, extra, head_cfg)
    c = sum(extra['stage4']['num_channels'])
    table = head_param_shapes(c, **head_cfg)
    head = {k: tuple(v.shape) for k, v in out.items() if k.startswith('head.')}
    assert head == dict(table)
    k = head_cfg['num_keypoints']
    assert head['head.heatmap_final.weight'] == (k + 1, head_cfg['heatmap_channels'], 1, 1)
    assert head['head.offset_final.weight'] == (2 * k, head_cfg['offset_channels'], 1, 1)
    assert head[CMP + '0.weight'][1] == k * head_cfg['embed_channels']
    # values travel unchanged under their new names
    assert torch.equal(out[CMP + '4.weight'], sd['joints_mlp.4.weight_'])
    assert torch.equal(out[CMP + '4.attn_conv.weight'],
                       sd['joints_mlp.4.attn_weights.attention.0.weight'])
    assert torch.equal(out['head.heatmap_layers.1.running_mean'],
                       sd['transition_cls.1.running_mean'])
    assert torch.equal(out[CMP + '9.bias'], sd['joints_mlp.9.bias'])


def test_head_table_released_w32():
    """Released W32 head (C = 480): CMP conv sizes of spec §1.3 (5.01 M, 1.18 M, 0.29 M)."""
    t = head_param_shapes(480)
    assert t['head.heatmap_layers.0.weight'] == (32, 480, 1, 1)
    assert t['head.heatmap_final.weight'] == (18, 32, 1, 1)
    assert t['head.offset_final.weight'] == (34, 256, 1, 1)
    assert t['head.embedding_layers.0.weight'] == (64, 480, 1, 1)
    assert t[CMP + '4.weight'] == (20, 256)
    assert t[CMP + '4.attn_conv.weight'] == (20, 256, 1, 1)
    assert CMP + '1.attn_conv.weight' not in t
    sizes = [int(np.prod(t[f'{CMP}{i}.weight'])) for i in (0, 3, 6)]
    assert sizes == [5013504, 1179648, 294912]
    # MMPose HRNet-W32 backbone shapes of the released widths (32, 64, 128, 256)
    shapes = hrnet_param_shapes(W32_EXTRA)
    assert shapes['backbone.stage4.2.branches.3.3.conv2.weight'] == (256, 256, 3, 3)
    assert shapes['backbone.transition3.3.0.0.weight'] == (256, 128, 3, 3)


W48_YAML = """
DATASET: {INPUT_SIZE: 640, NUM_JOINTS: 17, WITH_CENTER: true}
MODEL:
  NUM_JOINTS: 17
  TEMPLATE: coco
  EXTRA:
    AN_NUM_AFFINE: 20
    AN_FOR_ALL: False
    STAGE2: {NUM_MODULES: 1, NUM_BRANCHES: 2, BLOCK: BASIC, NUM_BLOCKS: [4, 4],
             NUM_CHANNELS: [48, 96], FUSE_METHOD: SUM}
    STAGE3: {NUM_MODULES: 4, NUM_BRANCHES: 3, BLOCK: BASIC, NUM_BLOCKS: [4, 4, 4],
             NUM_CHANNELS: [48, 96, 192], FUSE_METHOD: SUM}
    STAGE4: {NUM_MODULES: 3, NUM_BRANCHES: 4, BLOCK: BASIC, NUM_BLOCKS: [4, 4, 4, 4],
             NUM_CHANNELS: [48, 96, 192, 384], FUSE_METHOD: SUM}
    MULTI_LEVEL_OUTPUT_HEATMAP: {NUM_CHANNELS: [48]}
    MULTI_LEVEL_OUTPUT_REGRESSION: {NUM_CHANNELS: [256]}
    CONV_MSG_PASSING: {DIM_EMBEDDING: 64, DIM_CONVOLUTION: [512, 256, 128],
                       USE_AN: [False, True, False]}
  DECODER: {LOCAL_HM_SIZE: 11, KSIZE: 5, GLOBAL_HM_SIZE: 96, SIGMA: 16, TOPK_CENTER: 30}
TEST:
  SCALE_FACTOR: [1]
  INSTANCE_NMS: {SCORE_THRESHOLD: 0.05, NUM_JOINTS: 8, DECREASE: 0.8}
"""


def test_w48_experiment_yaml_and_config_text(tmp_path):
    """The generated config inherits the shipped W32 config and overrides it with the real
    LogoCapHead / LogoCapDecoder argument names (checked against their signatures)."""
    import inspect
    import yaml
    from logocap_mm.models.heads.logocap_decoder import LogoCapDecoder
    from logocap_mm.models.heads.logocap_head import LogoCapHead
    cfg = yaml.safe_load(W48_YAML)
    extra, head = arch_from_ref_config(cfg)
    assert extra['stage4']['num_channels'] == (48, 96, 192, 384)
    assert extra['stage3']['num_modules'] == 4 and extra['stage4']['num_modules'] == 3
    assert head['num_keypoints'] == 17 and head['heatmap_channels'] == 48
    out = tmp_path / 'w48.py'
    out.write_text(make_override_config(cfg))  # default base: configs/logocap/w32_coco.py
    from mmengine.config import Config
    c = Config.fromfile(str(out))
    h = c.model.head
    assert h.type == 'LogoCapHead' and h.in_channels == 720 and h.heatmap_channels == 48
    assert h.embed_channels == 64 and tuple(h.cmp_attn_norm) == (False, True, False)
    head_args = set(inspect.signature(LogoCapHead.__init__).parameters)
    assert set(h) - {'type'} <= head_args
    dec_args = set(inspect.signature(LogoCapDecoder.__init__).parameters)
    assert set(h.pose_decoder) <= dec_args
    assert h.pose_decoder.window_size == 97 and h.pose_decoder.kem_size == 11
    assert h.pose_decoder.kem_radius == 5.0 and h.pose_decoder.window_sigma == 16.0
    # the released weights' flip recipe: shifted flip targets + the plain-flip merge
    assert h.decoder == dict(type='LogoCapCodec', input_size=(640, 640),
                             heatmap_size=(160, 160), flip_target_shift=True)
    assert c.codec == h.decoder
    assert dict(c.model.test_cfg) == dict(flip_test=True, flip_mode='reference',
                                          adaptation='full')
    assert c.val_dataloader.dataset.pipeline[1] == dict(
        type='LogoCapResize', input_size=640, size_factor=64, round_mode='reference')
    assert c.train_dataloader.dataset.pipeline[3] == dict(type='GenerateTarget',
                                                          encoder=h.decoder)
    pipe = c.train_dataloader.dataset.pipeline
    assert pipe[1] == dict(type='LogoCapRandomAffine', input_size=(640, 640),
                           shift_factor=0.2, scale_factor=(0.75, 1.5), rotate_factor=30)
    assert pipe[4] == dict(type='LogoCapGetHeatmapMask')
    # flip test consistent with the training targets (tests/test_models/test_heads/test_flip_consistency.py)
    # the helper lives beside the head tests; load it by path so that this test also runs
    # alone (a plain import works only when pytest has put that folder on sys.path)
    import importlib.util
    src = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'test_models', 'test_heads',
                   'test_flip_consistency.py')
    spec = importlib.util.spec_from_file_location('_flip_consistency_helpers', src)
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    flip_test_misalignment = helpers.flip_test_misalignment
    peak_err, off_err, mode = flip_test_misalignment(str(out))
    assert mode == 'reference' and peak_err < 0.02 and off_err < 1e-4
    # untouched base entries survive the merge
    assert c.model.type == 'LogoCapPoseEstimator'
    assert c.val_dataloader.batch_size == 1 and c.test_evaluator.type == 'CocoMetric'


@pytest.mark.parametrize('path, value, field', [
    ('MODEL.EXTRA.STAGE3.NUM_CHANNELS', None, 'STAGE3.NUM_CHANNELS'),
    ('MODEL.EXTRA.STAGE2.NUM_BLOCKS', [4], 'STAGE2'),
    ('MODEL.EXTRA.STAGE2.FUSE_METHOD', 'CAT', 'FUSE_METHOD'),
    ('TEST.ADAPTATION_LEVEL', 'half', 'ADAPTATION_LEVEL'),
    ('TEST.SCALE_FACTOR', [1, 2], 'SCALE_FACTOR'),
    ('DATASET.WITH_CENTER', False, 'WITH_CENTER'),
])
def test_bad_reference_yaml(path, value, field):
    import yaml
    cfg = yaml.safe_load(W48_YAML)
    *parents, last = path.split('.')
    d = cfg
    for p in parents:
        d = d.setdefault(p, {})
    if value is None:
        del d[last]
    else:
        d[last] = value
    with pytest.raises(ValueError, match=field):
        make_override_config(cfg, base='/nonexistent/base.py')


def _write_base(path):
    """Stand-in for configs/logocap/w32_coco.py (written by the lead), enough to merge into."""
    path.write_text(
        "codec = dict(type='LogoCapCodec', input_size=(512, 512), heatmap_size=(128, 128))\n"
        "model = dict(type='BottomupPoseEstimator',\n"
        "    backbone=dict(type='HRNet', in_channels=3, extra=dict()),\n"
        "    neck=dict(type='FeatureMapProcessor', concat=True),\n"
        "    head=dict(type='LogoCapHead', in_channels=480, decoder=codec),\n"
        "    test_cfg=dict(flip_test=True))\n"
        "val_dataloader = dict(batch_size=1, dataset=dict(type='CocoDataset', pipeline=[]))\n"
        "test_dataloader = val_dataloader\n")


def test_cli_end_to_end(fixture_dir, tmp_path, ref):
    sd, _ = ref
    base = tmp_path / 'base.py'
    _write_base(base)
    dst = tmp_path / 'ckpt' / 'converted.pth'
    cfg_out = tmp_path / 'logocap_fixture.py'
    src = osp.join(fixture_dir, 'ref_model.pth')
    r = subprocess.run(
        [sys.executable, TOOL, src, str(dst), '--ref-config',
         osp.join(fixture_dir, 'ref_config_full.yaml'), '--out-config', str(cfg_out),
         '--base', str(base)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f'converted {len(sd)} tensors' in r.stdout
    # a plain torch.load(weights_only=True), without logocap_mm's allow-list, loads it
    code = ('import torch,sys; c = torch.load(sys.argv[1], weights_only=True); '
            "print(len(c['state_dict']), c['meta']['dataset_meta']['dataset_name'], "
            "c['meta']['dataset_meta']['num_keypoints'])")
    r2 = subprocess.run([sys.executable, '-c', code, str(dst)], capture_output=True,
                        text=True, timeout=120)
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout.split() == [str(len(sd)), 'coco', '17']
    ck = torch.load(str(dst), weights_only=True)
    # file names only: no absolute path of the machine that converted it
    assert ck['meta']['converted_from'] == 'ref_model.pth'
    assert ck['meta']['ref_config'] == 'ref_config_full.yaml'
    assert ck['meta']['dataset_meta']['flip_indices'] == \
        [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    # mmengine reads it the way load_from / mim test do
    from mmengine.runner.checkpoint import _load_checkpoint
    ck2 = _load_checkpoint(str(dst), map_location='cpu')
    assert set(ck2['state_dict']) == set(ck['state_dict'])
    # the generated config merges into its base and builds the same HRNet
    from mmengine.config import Config
    from mmpose.registry import MODELS
    c = Config.fromfile(str(cfg_out))
    extra, head_cfg = arch_from_ref_config(ref[1])
    assert c.model.head.in_channels == sum(extra['stage4']['num_channels'])
    assert c.model.head.num_keypoints == head_cfg['num_keypoints']
    assert c.model.head.type == 'LogoCapHead'
    assert c.test_dataloader.dataset.pipeline[1]['type'] == 'LogoCapResize'
    import mmpose.models  # noqa: F401  (registers HRNet)
    net = MODELS.build(c.model.backbone)
    bb = {k[len('backbone.'):]: v for k, v in ck['state_dict'].items()
          if k.startswith('backbone.')}
    res = net.load_state_dict(bb, strict=True)
    assert not res.missing_keys and not res.unexpected_keys


def test_generated_config_builds_whole_model_strict(fixture_dir, tmp_path, ref):
    """Default base (configs/logocap/w32_coco.py): the generated config builds the whole
    estimator and the converted checkpoint loads into it strictly, through mmengine's
    load_checkpoint (what load_from / mim test use)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner.checkpoint import load_checkpoint
    from mmpose.registry import MODELS
    import logocap_mm  # noqa: F401
    init_default_scope('mmpose')
    dst, cfg_out = tmp_path / 'c.pth', tmp_path / 'c.py'
    convert_checkpoint(osp.join(fixture_dir, 'ref_model.pth'), str(dst),
                       ref_config=osp.join(fixture_dir, 'ref_config_full.yaml'),
                       out_config=str(cfg_out))
    c = Config.fromfile(str(cfg_out))
    model = MODELS.build(c.model)
    assert type(model).__name__ == 'LogoCapPoseEstimator'
    ck = load_checkpoint(model, str(dst), map_location='cpu', strict=True)
    assert ck['meta']['dataset_meta']['dataset_name'] == 'coco'
    sd = model.state_dict()
    assert torch.equal(sd[CMP + '4.weight'], ref[0]['joints_mlp.4.weight_'])
    assert model.head.pose_decoder.topk == 30 and model.head.pose_decoder.window_size == 97


def test_wrapped_and_prefixed_inputs(ref, tmp_path):
    sd, _ = ref
    plain, extra, head = convert_state_dict(unwrap_state_dict(sd))
    for wrapped in ({'state_dict': {'module.' + k: v for k, v in sd.items()}},
                    {'model': dict(sd), 'epoch': 3},
                    {'module.' + k: v for k, v in sd.items()}):
        out, e2, h2 = convert_state_dict(unwrap_state_dict(wrapped))
        assert list(out) == list(plain) and e2 == extra and h2 == head
        assert all(out[k] is plain[k] for k in out)


def test_rejects_other_architecture(tmp_path):
    """An MMPose ResNet-18 state dict (bare, then under backbone.*): every key listed."""
    from mmpose.models.backbones.resnet import ResNet
    rn = ResNet(depth=18).state_dict()
    with pytest.raises(ConversionError) as ei:
        convert_state_dict(rn)
    e = ei.value
    assert 'conv1.weight' in e.unexpected and len(e.unexpected) == len(rn)
    assert 'backbone.stage4.2.branches.3.3.conv2.weight' in e.missing
    assert CMP + '4.attn_conv.weight' in e.missing
    assert 'missing keys' in str(e) and 'unexpected keys' in str(e)
    # through the tool: exit 1, keys on stderr, nothing written
    src = tmp_path / 'resnet.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in rn.items()}}, src)
    dst = tmp_path / 'out.pth'
    r = subprocess.run([sys.executable, TOOL, str(src), str(dst)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1
    assert 'backbone.layer1.0.conv1.weight' in r.stderr  # unexpected
    assert 'head.heatmap_final.weight' in r.stderr  # missing
    assert not dst.exists()


def test_rejects_already_converted(ref, tmp_path):
    sd, _ = ref
    src = tmp_path / 'ref.pth'
    torch.save(sd, src)
    dst = tmp_path / 'conv.pth'
    convert_checkpoint(str(src), str(dst))
    with pytest.raises(ValueError, match='already a logocap_mm checkpoint'):
        convert_checkpoint(str(dst), str(tmp_path / 'again.pth'))
    # also without the meta: our names alone are recognised
    ck = torch.load(dst, weights_only=True)
    with pytest.raises(ValueError, match='already a logocap_mm checkpoint'):
        unwrap_state_dict(ck['state_dict'])


def test_missing_extra_and_mismatched_keys_are_listed(ref):
    sd, cfg = ref
    extra, head_cfg = arch_from_ref_config(cfg)
    bad = dict(sd)
    del bad['joints_mlp.4.attn_weights.attention.0.weight']
    bad['decoder.buffer'] = torch.zeros(3)
    bad['transition_reg.0.weight'] = torch.zeros(255, *sd['transition_reg.0.weight'].shape[1:])
    with pytest.raises(ConversionError) as ei:
        convert_state_dict(bad, extra, head_cfg)
    e = ei.value
    assert e.missing == [CMP + '4.attn_conv.weight']
    assert e.unexpected == ['decoder.buffer']
    assert len(e.mismatched) == 1 and e.mismatched[0].startswith('transition_reg.0.weight')
    # yaml that disagrees with the weights (widths): shape mismatches, not a partial load
    wrong = {k: dict(v) if isinstance(v, dict) else v for k, v in extra.items()}
    wrong['stage2']['num_channels'] = (16, 32)
    with pytest.raises(ConversionError, match='shape mismatches'):
        convert_state_dict(sd, wrong, head_cfg)


def test_out_config_needs_ref_config(ref, tmp_path):
    with pytest.raises(ValueError, match='--ref-config'):
        convert_checkpoint('x.pth', str(tmp_path / 'y.pth'), out_config=str(tmp_path / 'c.py'))
