from .logocap_estimator import LogoCapPoseEstimator

__all__ = ['LogoCapPoseEstimator']
