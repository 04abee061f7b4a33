# LOGO-CAP, HRNet-W48, COCO, input 640 (paper: COCO val AP 72.2, OCHuman test 40.4).
_base_ = ['./w32_coco.py']

input_size = 640
heatmap_size = 160
# the reference's flip recipe, as ./w32_coco.py (shifted flip targets + flip_mode='reference')
codec = dict(type='LogoCapCodec', input_size=(input_size, input_size),
             heatmap_size=(heatmap_size, heatmap_size), flip_target_shift=True)

model = dict(
    backbone=dict(
        extra=dict(
            stage2=dict(num_channels=(48, 96)),
            stage3=dict(num_channels=(48, 96, 192)),
            stage4=dict(num_channels=(48, 96, 192, 384))),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmpose/'
            'pretrain_models/hrnet_w48-8ef0771d.pth')),
    head=dict(in_channels=720, heatmap_channels=48, decoder=codec))

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
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
