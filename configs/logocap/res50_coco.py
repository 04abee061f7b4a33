# The LOGO-CAP head on a non-HRNet backbone: ResNet-50 (ImageNet) with MMPose's FPN, whose
# finest (stride-4) output feeds the head. Shows the plugin composes with any backbone/neck
# that gives one stride-4 map; not a paper configuration (no published number).
_base_ = ['./w32_coco.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    neck=dict(
        _delete_=True,
        type='FPN',
        in_channels=[256, 512, 1024, 2048],
        out_channels=256,
        num_outs=4),
    head=dict(in_channels=256, feature_index=0))
