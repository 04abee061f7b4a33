# A tiny LOGO-CAP (HRNet, one block per branch, widths 16/32/64/128, input 128, heatmap 32,
# small CMP, top-6 training centres) that trains from scratch on the synthetic multi-person
# data of tools/make_synthetic.py on CPU (`make demo`, tools/synthetic_demo.sh): 8 epochs over
# the 1800 training images of `make demo` = 1800 iterations (NUM_TRAIN=2000: 2000).
# ./tiny_synthetic_short.py is the same recipe over 6 epochs
# (`DEMO_SCHEDULE=short make demo`).
# Data root: env SYNTHETIC_ROOT (default data/synthetic/), e.g.
#   SYNTHETIC_ROOT=/tmp/syn/ mim train mmpose configs/logocap/tiny_synthetic.py --gpus 0
# Everything else (losses, decoder, OKS gate 0.5, top-2 decode, flip test) is the W32 COCO
# recipe of ./w32_coco.py; see docs/SYNTHETIC.md for the numbers it reaches.
_base_ = ['./w32_coco.py']

input_size = 128
heatmap_size = 32
# Gaussians scaled to the 32x32 heatmap (the W32 recipe's sigma 2 / centre 4 are for 128x128):
# keypoint sigma 1 F px, centre sigma 2 F px (people overlap), offsets on a 6x6 patch;
# the reference's flip recipe of ./w32_coco.py (shifted flip targets + flip_mode='reference')
codec = dict(type='LogoCapCodec', input_size=(input_size, input_size),
             heatmap_size=(heatmap_size, heatmap_size), sigma=1.0, center_sigma=2.0,
             offset_radius=3, flip_target_shift=True)

model = dict(
    backbone=dict(
        _delete_=True,
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
    head=dict(in_channels=240, heatmap_channels=32, offset_channels=64, embed_channels=32,
              cmp_channels=(64, 32, 32), decoder=codec, train_topk=6,
              # the reference geometry (KEM radius 5, window 97, sigma 16, target sigma 4;
              # all in input pixels) scaled by input_size / 256 = 0.5 (spec: 512 input)
              pose_decoder=dict(kem_radius=2.5, window_size=49, window_sigma=8.),
              loss_refine=dict(sigma=2.)),
    test_cfg=dict(flip_test=True))

data_root = '{{$SYNTHETIC_ROOT:data/synthetic/}}'
train_pipeline = [
    dict(type='LoadImage', color_type='color_ignore_orientation'),
    # MMPose's truncated-normal draws, milder ranges: on this short CPU schedule they measured
    # 2.3 AP above the reference's uniform draws (LogoCapRandomAffine; docs/SYNTHETIC.md)
    dict(type='BottomupRandomAffine', input_size=(input_size, input_size),
         shift_factor=0.1, scale_factor=(0.8, 1.25), rotate_factor=10,
         scale_type='short', distribution='trunc_norm'),
    dict(type='RandomFlip', direction='horizontal', prob=0.5),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='LogoCapGetHeatmapMask'),  # crowd RLE regions masked
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage', color_type='color_ignore_orientation'),
    dict(type='LogoCapResize', input_size=input_size, size_factor=64,
         round_mode='reference'),
    dict(type='PackPoseInputs',
         meta_keys=('id', 'img_id', 'img_path', 'crowd_index', 'ori_shape', 'img_shape',
                    'input_size', 'input_center', 'input_scale', 'flip', 'flip_direction',
                    'flip_indices', 'raw_ann_info', 'skeleton_links')),
]
# data loaded in the training process: on 2 cores a loader worker competes with the two torch
# threads (100-iteration runs: 0.29-0.34 s per iteration without a worker, 0.36-0.37 with one)
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='annotations/person_keypoints_train.json',
                 data_prefix=dict(img='train/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='annotations/person_keypoints_val.json',
                 data_prefix=dict(img='val/'), pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/person_keypoints_val.json')
test_evaluator = val_evaluator

# from scratch (no ImageNet weights offline): Adam 2e-3 (twice the W32 recipe) after a
# 100-iteration linear warm-up, 8 epochs (of 225 iterations with make demo's 1800 images,
# batch 8), LR x0.1 for the last.
max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_interval=100)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=2e-3, weight_decay=0.))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=100, start_factor=0.1, by_epoch=False),
    dict(type='MultiStepLR', begin=0, end=max_epochs, milestones=[max_epochs - 1], gamma=0.1,
         by_epoch=True)
]
default_hooks = dict(logger=dict(interval=25),
                     checkpoint=dict(interval=1, save_best=None, max_keep_ckpts=2))
randomness = dict(seed=0)
