# ./before.py with crowd regions (RLE) masked: LogoCapGetHeatmapMask instead of MMPose's
# BottomupGetHeatmapMask, which skips RLE segmentations.
_base_ = ['./before.py']

input_size = 128
heatmap_size = 32
codec = dict(type='LogoCapCodec', input_size=(input_size, input_size),
             heatmap_size=(heatmap_size, heatmap_size), sigma=1.0, center_sigma=2.0,
             offset_radius=3, flip_target_shift=False)
train_pipeline = [
    dict(type='LoadImage', color_type='color_ignore_orientation'),
    dict(type='BottomupRandomAffine', input_size=(input_size, input_size),
         shift_factor=0.1, scale_factor=(0.8, 1.25), rotate_factor=10,
         scale_type='short', distribution='trunc_norm'),
    dict(type='RandomFlip', direction='horizontal', prob=0.5),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='LogoCapGetHeatmapMask'),
    dict(type='PackPoseInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
