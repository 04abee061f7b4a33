"""Import path kept for :class:`LogoCapDecoder` (now in :mod:`logocap_mm.models.adaptation`)."""
from logocap_mm.models.adaptation.pipeline import (ADAPTATION_LEVELS, LogoCapDecoder,
                                                   check_finite_outputs)

__all__ = ['LogoCapDecoder', 'ADAPTATION_LEVELS', 'check_finite_outputs']
