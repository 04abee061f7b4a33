# Test-only: a 14-keypoint tiny LOGO-CAP on the bundled CrowdPose sample, with the dataset and
# metric settings of configs/logocap/w32_crowdpose.py (CrowdPoseDataset, 'keypoints_crowd').
_base_ = ['./tiny_coco.py']

metainfo_file = 'configs/_base_/datasets/crowdpose.py'
model = dict(head=dict(num_keypoints=14, metainfo=metainfo_file))
data_root = 'tests/data/crowdpose/'
train_dataloader = dict(
    batch_size=2,
    dataset=dict(type='LogoCapCrowdPoseDataset', data_root=data_root, ann_file='test_crowdpose.json',
                 data_prefix=dict(img='')))
test_dataloader = dict(
    dataset=dict(type='LogoCapCrowdPoseDataset', data_root=data_root, ann_file='test_crowdpose.json',
                 data_prefix=dict(img='')))
test_evaluator = dict(type='CocoMetric', ann_file=data_root + 'test_crowdpose.json',
                      use_area=False, iou_type='keypoints_crowd', prefix='crowdpose',
                      nms_mode='none', score_mode='keypoint')
