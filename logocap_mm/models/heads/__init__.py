from .logocap_decoder import LogoCapDecoder
from .logocap_head import LogoCapHead

__all__ = ['LogoCapDecoder', 'LogoCapHead']
