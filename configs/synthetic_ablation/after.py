# The current tiny synthetic recipe (../logocap/tiny_synthetic.py: crowd masks, the
# reference's flip recipe, truncated-normal affine draws) on the ablation budget of
# ./_sweep_base.py.
_base_ = ['./_sweep_base.py']
