# A tiny LOGO-CAP (HRNet with one block per branch, widths 8/16/32/64, input 256) that trains
# on CPU on the bundled COCO samples in tests/data/coco: used by the tests and tools/demo.sh
# (`make demo` trains ./tiny_synthetic.py instead). Not meant to reach a useful AP; it
# exercises the real train/test/inference paths.
_base_ = ['./w32_coco.py']

input_size = 256
heatmap_size = 64
# the reference's flip recipe, as ./w32_coco.py (shifted flip targets + flip_mode='reference')
codec = dict(type='LogoCapCodec', input_size=(input_size, input_size),
             heatmap_size=(heatmap_size, heatmap_size), flip_target_shift=True)

model = dict(
    backbone=dict(
        _delete_=True,
        type='HRNet',
        in_channels=3,
        extra=dict(
            stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK',
                        num_blocks=(4, ), num_channels=(64, )),
            stage2=dict(num_modules=1, num_branches=2, block='BASIC',
                        num_blocks=(1, 1), num_channels=(8, 16)),
            stage3=dict(num_modules=1, num_branches=3, block='BASIC',
                        num_blocks=(1, 1, 1), num_channels=(8, 16, 32)),
            stage4=dict(num_modules=1, num_branches=4, block='BASIC',
                        num_blocks=(1, 1, 1, 1), num_channels=(8, 16, 32, 64),
                        multiscale_output=True))),
    head=dict(in_channels=120, decoder=codec))

data_root = 'tests/data/coco/'
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
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='test_coco.json',
                 data_prefix=dict(img=''), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='test_coco.json',
                 data_prefix=dict(img=''), pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'test_coco.json')
test_evaluator = val_evaluator
# `make demo` runs `mim test` right after training: no validation inside the train loop
# (mmengine would otherwise validate after the last epoch too)
val_dataloader = None
val_evaluator = None
val_cfg = None

train_cfg = dict(max_epochs=2)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True)]
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, save_best=None))
