# Evaluate the COCO-trained W48 model on OCHuman (paper: test 40.4). Split: test by default;
# the val split is ./w48_ochuman_val.py. Training settings are those of COCO.
_base_ = ['./w48_coco.py']

ochuman_root = 'data/ochuman/'
ochuman_split = 'test'
val_dataloader = dict(
    dataset=dict(
        type='LogoCapOCHumanDataset',
        data_root=ochuman_root,
        ann_file=f'annotations/ochuman_coco_format_{ochuman_split}_range_0.00_1.00.json',
        data_prefix=dict(img='images/')))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric',
    ann_file=ochuman_root +
    f'annotations/ochuman_coco_format_{ochuman_split}_range_0.00_1.00.json',
    nms_mode='none',
    score_mode='keypoint')
test_evaluator = val_evaluator
