# OCHuman val split with the COCO-trained W48 model.
_base_ = ['./w48_ochuman.py']
ochuman_root = 'data/ochuman/'
_ann = 'annotations/ochuman_coco_format_val_range_0.00_1.00.json'
val_dataloader = dict(dataset=dict(ann_file=_ann))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=ochuman_root + _ann)
test_evaluator = val_evaluator
