# LOGO-CAP on your own keypoint set: a 7-keypoint upper body (nose, shoulders, elbows, wrists)
# with its own dataset meta, on the tiny CPU model of ../logocap/tiny_synthetic.py.
# Annotations: COCO keypoint format, 7 (x, y, v) triplets per person in the order of
# `keypoint_info` below, under CUSTOM_KPT_ROOT (default data/upper_body/):
#   annotations/train.json  train/*.jpg   annotations/val.json  val/*.jpg
#   CUSTOM_KPT_ROOT=/path/ mim train mmpose configs/examples/custom_keypoints.py --gpus 0
# What changes for another keypoint set: `metainfo` (names, mirror partners in `swap`, OKS
# sigmas, skeleton, loss weights), `num_keypoints`, and the data paths; see docs/CONFIGS.md.
_base_ = ['../logocap/tiny_synthetic.py']

# the dataset meta (names, mirror partners, skeleton, weights, OKS sigmas): ./upper_body_7_meta.py
metainfo_file = '{{fileDirname}}/upper_body_7_meta.py'
metainfo = dict(from_file=metainfo_file)

# the head reads the keypoint count, flip pairs and sigmas from the same meta
model = dict(head=dict(num_keypoints=7, metainfo=metainfo_file))

data_root = '{{$CUSTOM_KPT_ROOT:data/upper_body/}}'
train_dataloader = dict(
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='annotations/train.json',
                 data_prefix=dict(img='train/')))
val_dataloader = dict(
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='annotations/val.json',
                 data_prefix=dict(img='val/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator
