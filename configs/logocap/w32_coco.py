# LOGO-CAP, HRNet-W32, COCO, input 512 (paper: COCO val AP 69.6, OCHuman test 38.1).
# Recipe of the reference: Adam 1e-3, no weight decay, no warm-up, 140 epochs with
# steps at 90 and 120, flip test, CocoMetric(score_mode='keypoint').
# Batch: 12 images per GPU (per process), so the total batch is 12 x the number of GPUs
# (`--gpus 8`: 96, the reference's 8-GPU setting; `--gpus 4`: 48); the LR stays 1e-3 whatever
# the total (the reference does not scale it; auto_scale_lr is off).
# Validation: every epoch on COCO val2017, keeping the best checkpoint by coco/AP, as the
# reference (about 5000 images per epoch; `--cfg-options train_cfg.val_interval=10` trades
# that for 10x fewer validations).
# Images are read in their stored pixel frame (EXIF orientation ignored), as the reference.
_base_ = ['mmpose::_base_/default_runtime.py']

custom_imports = dict(imports=['logocap_mm'], allow_failed_imports=False)
default_scope = 'mmpose'

# runtime
train_cfg = dict(max_epochs=140, val_interval=1)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3, weight_decay=0.))
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=140, milestones=[90, 120], gamma=0.1,
         by_epoch=True)
]
auto_scale_lr = dict(base_batch_size=12, enable=False)
# reference: seed 0, cudnn benchmark on
randomness = dict(seed=0)
env_cfg = dict(cudnn_benchmark=True)
default_hooks = dict(checkpoint=dict(save_best='coco/AP', rule='greater'))

input_size = 512
heatmap_size = 128

# Flip recipe of the reference: flipped samples' targets 1 - 1/stride F px left of the exact
# position (flip_target_shift=True), so that a plain torch.flip of the flipped image's maps
# lands on the unflipped ones; tested with that plain merge (flip_mode='reference'). The
# alternative consistent pair is flip_target_shift=False with flip_mode='aligned'
# (docs/SYNTHETIC.md measures both).
codec = dict(type='LogoCapCodec', input_size=(input_size, input_size),
             heatmap_size=(heatmap_size, heatmap_size), flip_target_shift=True)

metainfo_file = 'configs/_base_/datasets/coco.py'

model = dict(
    type='LogoCapPoseEstimator',
    data_preprocessor=dict(
        type='PoseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='HRNet',
        in_channels=3,
        extra=dict(
            stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK',
                        num_blocks=(4, ), num_channels=(64, )),
            stage2=dict(num_modules=1, num_branches=2, block='BASIC',
                        num_blocks=(4, 4), num_channels=(32, 64)),
            stage3=dict(num_modules=4, num_branches=3, block='BASIC',
                        num_blocks=(4, 4, 4), num_channels=(32, 64, 128)),
            stage4=dict(num_modules=3, num_branches=4, block='BASIC',
                        num_blocks=(4, 4, 4, 4), num_channels=(32, 64, 128, 256),
                        multiscale_output=True)),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmpose/'
            'pretrain_models/hrnet_w32-36af842e.pth'),
    ),
    # all four branches upsampled (bilinear, align_corners=False) and concatenated: C = 480
    neck=dict(type='FeatureMapProcessor', concat=True),
    head=dict(
        type='LogoCapHead',
        in_channels=480,
        num_keypoints=17,
        heatmap_channels=32,
        offset_channels=256,
        embed_channels=64,
        cmp_channels=(512, 256, 128),
        cmp_attn_norm=(False, True, False),
        num_affine=20,
        metainfo=metainfo_file,
        decoder=codec,
        pose_decoder=dict(topk=30, center_thr=0.01, kem_size=11, kem_radius=5.,
                          window_size=97, window_sigma=16., convex_lambda=0.75,
                          nms_dist_ratio=0.05, nms_num_joints=8, max_people=30),
        train_topk=30,
        oks_gate=0.5,
        loss_heatmap=dict(type='KeypointMSELoss', use_target_weight=True, loss_weight=1.0),
        loss_offset=dict(type='LogoCapOffsetLoss', beta=1. / 9, loss_weight=0.01),
        loss_oks=dict(type='LogoCapOKSLoss', loss_weight=0.01),
        loss_refine=dict(type='LogoCapRefineLoss', sigma=4., loss_weight=1.0),
    ),
    test_cfg=dict(flip_test=True, flip_mode='reference', adaptation='full'))

# images are read in their stored pixel frame (EXIF orientation ignored, as the annotations
# and the reference); the visualizer draws on that frame too
visualizer = dict(type='LogoCapPoseLocalVisualizer', image_frame='stored',
                  vis_backends=[dict(type='LocalVisBackend')], name='visualizer')

# data: MMPose's CocoDataset with up-front annotation checks (missing 'annotations',
# keypoint count); same metainfo and evaluation
dataset_type = 'LogoCapCocoDataset'
data_mode = 'bottomup'
data_root = 'data/coco/'

train_pipeline = [
    dict(type='LoadImage', color_type='color_ignore_orientation'),
    # the reference's draws: uniform scale 0.75-1.5 and rotation +-30 deg, an integer shift
    # in +-0.2 x the crop side (MMPose's BottomupRandomAffine: truncated normal, shift tied
    # to the image size)
    dict(type='LogoCapRandomAffine', input_size=(input_size, input_size),
         shift_factor=0.2, scale_factor=(0.75, 1.5), rotate_factor=30),
    dict(type='RandomFlip', direction='horizontal', prob=0.5),
    dict(type='GenerateTarget', encoder=codec),
    # masks crowd regions (RLE) and people without keypoints; MMPose's
    # BottomupGetHeatmapMask skips RLE segmentations
    dict(type='LogoCapGetHeatmapMask'),
    dict(type='PackPoseInputs'),
]
# the reference's test resize: short side -> input_size, long side to a multiple of 64
val_pipeline = [
    dict(type='LoadImage', color_type='color_ignore_orientation'),
    dict(type='LogoCapResize', input_size=input_size, size_factor=64,
         round_mode='reference'),
    dict(type='PackPoseInputs',
         meta_keys=('id', 'img_id', 'img_path', 'crowd_index', 'ori_shape', 'img_shape',
                    'input_size', 'input_center', 'input_scale', 'flip', 'flip_direction',
                    'flip_indices', 'raw_ann_info', 'skeleton_links')),
]

train_dataloader = dict(
    batch_size=12,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/person_keypoints_train2017.json',
        data_prefix=dict(img='train2017/'),
        pipeline=train_pipeline,
    ))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/person_keypoints_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=val_pipeline,
    ))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/person_keypoints_val2017.json',
    nms_mode='none',
    score_mode='keypoint',
)
test_evaluator = val_evaluator
