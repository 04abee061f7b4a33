# ./tiny_synthetic.py over 6 epochs = 1500 iterations instead of 8 (LR x0.1 for the last
# epoch): `DEMO_SCHEDULE=short make demo` trains it. A quicker look, not the benchmark: on the
# synthetic val split 'partial' is only 3.9 AP above 'none' after it (docs/SYNTHETIC.md).
_base_ = ['./tiny_synthetic.py']

max_epochs = 6
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', begin=0, end=100, start_factor=0.1, by_epoch=False),
    dict(type='MultiStepLR', begin=0, end=max_epochs, milestones=[max_epochs - 1], gamma=0.1,
         by_epoch=True)
]
