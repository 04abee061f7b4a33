# Exact flip targets (MMPose flips in I) tested with the 'aligned' merge: the flipped-back
# half is resampled by 1 - 1/stride F px. Training is that of ./before.py (same checkpoint).
_base_ = ['./before.py']
model = dict(test_cfg=dict(flip_mode='aligned'))
