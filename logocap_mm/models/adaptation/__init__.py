"""LOGO-CAP's test-time stages as modules: local adaptation (KEMs, CMP), global adaptation
(LOGO-CA) and the decode pipeline that chains them."""
from .global_adaptation import LogoCapGlobalAdaptation
from .local_adaptation import KemTargets, LogoCapKemMatcher, LogoCapLocalAdaptation
from .pipeline import ADAPTATION_LEVELS, LogoCapDecoder, check_finite_outputs

__all__ = ['LogoCapLocalAdaptation', 'LogoCapKemMatcher', 'KemTargets',
           'LogoCapGlobalAdaptation', 'LogoCapDecoder', 'ADAPTATION_LEVELS',
           'check_finite_outputs']
