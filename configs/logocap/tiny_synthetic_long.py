# ./tiny_synthetic.py over 8 epochs = 2000 iterations instead of 6 (LR x0.1 for the last
# epoch): `DEMO_SCHEDULE=long make demo` trains it; docs/SYNTHETIC.md has the numbers of both.
_base_ = ['./tiny_synthetic.py']

max_epochs = 8
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', begin=0, end=100, start_factor=0.1, by_epoch=False),
    dict(type='MultiStepLR', begin=0, end=max_epochs, milestones=[max_epochs - 1], gamma=0.1,
         by_epoch=True)
]
