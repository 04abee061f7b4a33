# Test-only: the tiny COCO model evaluated on the bundled OCHuman sample, with the dataset and
# metric settings of configs/logocap/w32_ochuman.py (OCHumanDataset, the OCHuman json as the
# CocoMetric ann_file).
_base_ = ['./tiny_coco.py']

ochuman_root = 'tests/data/ochuman/'
test_dataloader = dict(
    dataset=dict(type='LogoCapOCHumanDataset', data_root=ochuman_root, ann_file='test_ochuman.json',
                 data_prefix=dict(img='')))
test_evaluator = dict(type='CocoMetric', ann_file=ochuman_root + 'test_ochuman.json',
                      nms_mode='none', score_mode='keypoint')
