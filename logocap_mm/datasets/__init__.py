"""Dataset-side transforms of logocap_mm (registered in ``mmpose.registry.TRANSFORMS``)."""
from .transforms import LogoCapResize, reference_resize_params, reference_warp_matrix

__all__ = ['LogoCapResize', 'reference_resize_params', 'reference_warp_matrix']
