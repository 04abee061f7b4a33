# Test-only LOGO-CAP: the demo config (configs/logocap/tiny_coco_demo.py) made smaller still
# (input 128, heatmaps 32, narrow HRNet/CMP, few centre slots) so that one CPU iteration takes
# about a second. 4 bundled COCO images, batch 4 -> 1 iteration per epoch; no val while training.
_base_ = ['../../configs/logocap/tiny_coco_demo.py']

input_size = 128
heatmap_size = 32
codec = dict(type='LogoCapCodec', input_size=(input_size, input_size),
             heatmap_size=(heatmap_size, heatmap_size), topk=5)

model = dict(
    backbone=dict(
        extra=dict(
            stage1=dict(num_blocks=(1, ), num_channels=(16, )),
            stage2=dict(num_channels=(8, 8)),
            stage3=dict(num_channels=(8, 8, 8)),
            stage4=dict(num_channels=(8, 8, 8, 8)))),
    head=dict(in_channels=32, heatmap_channels=8, offset_channels=16, embed_channels=4,
              cmp_channels=(16, 16, 8), num_affine=4, train_topk=4, decoder=codec,
              pose_decoder=dict(topk=5, max_people=5, window_size=33, window_sigma=8.)),
    test_cfg=dict(flip_test=True))

data_root = 'tests/data/coco/'
train_pipeline = [
    dict(type='LoadImage', color_type='color_ignore_orientation'),
    dict(type='BottomupRandomAffine', input_size=(input_size, input_size),
         shift_factor=0.2, scale_factor=(0.75, 1.5), rotate_factor=30,
         scale_type='short'),
    dict(type='RandomFlip', direction='horizontal', prob=0.5),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='BottomupGetHeatmapMask'),
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
train_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root, pipeline=train_pipeline))
test_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root, pipeline=val_pipeline))
test_evaluator = dict(ann_file=data_root + 'test_coco.json')
# (no validation while training: the base sets val_dataloader/val_cfg/val_evaluator = None)

train_cfg = dict(max_epochs=1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, save_best=None))
randomness = dict(seed=0)
