# LOGO-CAP HRNet-W32 on CrowdPose (14 keypoints; beyond the paper). CrowdPose metric settings
# follow MMPose's DEKR CrowdPose config (iou_type 'keypoints_crowd', use_area False).
_base_ = ['./w32_coco.py']

metainfo_file = 'configs/_base_/datasets/crowdpose.py'
model = dict(head=dict(num_keypoints=14, metainfo=metainfo_file))
dataset_type = 'LogoCapCrowdPoseDataset'
data_root = 'data/crowdpose/'
train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='annotations/mmpose_crowdpose_trainval.json',
                 data_prefix=dict(img='images/')))
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='annotations/mmpose_crowdpose_test.json',
                 data_prefix=dict(img='images/')))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/mmpose_crowdpose_test.json',
    use_area=False,
    iou_type='keypoints_crowd',
    prefix='crowdpose',
    nms_mode='none',
    score_mode='keypoint')
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='crowdpose/AP', rule='greater'))
