# Shared part of the synthetic ablation runs (docs/SYNTHETIC.md, tools/synthetic_sweep.sh):
# the tiny synthetic model with a shorter schedule (4 epochs = 1000 iterations of batch 8, LR x0.1
# for the last epoch) so that one run fits the shared CPU; every variant changes one factor.
_base_ = ['../logocap/tiny_synthetic.py']

train_cfg = dict(max_epochs=4, val_interval=100)
param_scheduler = [
    dict(type='LinearLR', begin=0, end=100, start_factor=0.1, by_epoch=False),
    dict(type='MultiStepLR', begin=0, end=4, milestones=[3], gamma=0.1, by_epoch=True)
]
