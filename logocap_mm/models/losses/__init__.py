from .logocap_losses import LogoCapOffsetLoss, LogoCapOKSLoss, LogoCapRefineLoss

__all__ = ['LogoCapOffsetLoss', 'LogoCapOKSLoss', 'LogoCapRefineLoss']
