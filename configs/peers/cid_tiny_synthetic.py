# Peer for comparison only: MMPose's CID (CIDHead, DecoupledHeatmap codec) on the synthetic
# crowd data with the tiny HRNet, input 128 / heatmap 32, augmentation and iteration budget of
# the LOGO-CAP synthetic ablation runs (configs/synthetic_ablation/before.py: 4 epochs of 250
# iterations, batch 8, Adam 2e-3 after a 100-iteration warm-up, LR x0.1 for the last epoch).
# Run by tools/peers.sh; data root: env SYNTHETIC_ROOT (default data/synthetic/).
_base_ = ['mmpose::_base_/default_runtime.py']

custom_imports = dict(imports=['logocap_mm'], allow_failed_imports=False)
default_scope = 'mmpose'

input_size = 128
heatmap_size = 32
codec = dict(type='DecoupledHeatmap', input_size=(input_size, input_size),
             heatmap_size=(heatmap_size, heatmap_size))

model = dict(
    type='BottomupPoseEstimator',
    data_preprocessor=dict(
        type='PoseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    # the tiny HRNet of configs/logocap/tiny_synthetic.py (concat C = 240)
    backbone=dict(
        type='HRNet',
        in_channels=3,
        extra=dict(
            stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK',
                        num_blocks=(1, ), num_channels=(16, )),
            stage2=dict(num_modules=1, num_branches=2, block='BASIC',
                        num_blocks=(1, 1), num_channels=(16, 32)),
            stage3=dict(num_modules=1, num_branches=3, block='BASIC',
                        num_blocks=(1, 1, 1), num_channels=(16, 32, 64)),
            stage4=dict(num_modules=1, num_branches=4, block='BASIC',
                        num_blocks=(1, 1, 1, 1), num_channels=(16, 32, 64, 128),
                        multiscale_output=True))),
    neck=dict(type='FeatureMapProcessor', concat=True),
    head=dict(
        type='CIDHead',
        in_channels=240,
        num_keypoints=17,
        gfd_channels=32,
        coupled_heatmap_loss=dict(type='FocalHeatmapLoss', loss_weight=1.0),
        decoupled_heatmap_loss=dict(type='FocalHeatmapLoss', loss_weight=4.0),
        contrastive_loss=dict(type='InfoNCELoss', temperature=0.05, loss_weight=1.0),
        decoder=codec),
    train_cfg=dict(max_train_instances=200),
    test_cfg=dict(multiscale_test=False, flip_test=True, shift_heatmap=False,
                  align_corners=False))

dataset_type = 'CocoDataset'
data_mode = 'bottomup'
data_root = '{{$SYNTHETIC_ROOT:data/synthetic/}}'
train_pipeline = [
    dict(type='LoadImage', color_type='color_ignore_orientation'),
    dict(type='BottomupRandomAffine', input_size=(input_size, input_size),
         shift_factor=0.1, scale_factor=(0.8, 1.25), rotate_factor=10,
         scale_type='short', distribution='trunc_norm'),
    dict(type='RandomFlip', direction='horizontal', prob=0.5),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='BottomupGetHeatmapMask'),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage', color_type='color_ignore_orientation'),
    dict(type='BottomupResize', input_size=(input_size, input_size), size_factor=64,
         resize_mode='expand'),
    dict(type='PackPoseInputs',
         meta_keys=('id', 'img_id', 'img_path', 'crowd_index', 'ori_shape', 'img_shape',
                    'input_size', 'input_center', 'input_scale', 'flip', 'flip_direction',
                    'flip_indices', 'raw_ann_info', 'skeleton_links')),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, data_mode=data_mode,
                 ann_file='annotations/person_keypoints_train.json',
                 data_prefix=dict(img='train/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(type=dataset_type, data_root=data_root, data_mode=data_mode,
                 ann_file='annotations/person_keypoints_val.json',
                 data_prefix=dict(img='val/'), test_mode=True, pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric',
                     ann_file=data_root + 'annotations/person_keypoints_val.json',
                     nms_thr=0.8, score_mode='keypoint')
test_evaluator = val_evaluator

train_cfg = dict(max_epochs=4, val_interval=100)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=2e-3, weight_decay=0.))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=100, start_factor=0.1, by_epoch=False),
    dict(type='MultiStepLR', begin=0, end=4, milestones=[3], gamma=0.1, by_epoch=True)
]
default_hooks = dict(logger=dict(interval=25),
                     checkpoint=dict(interval=1, save_best=None, max_keep_ckpts=2))
randomness = dict(seed=0)
