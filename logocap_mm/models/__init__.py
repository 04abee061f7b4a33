"""Model components of LOGO-CAP: heads, layers, losses, estimator and tensor utilities."""
from . import layers, losses, utils  # noqa: F401  (order: utils/layers before heads)
from . import adaptation  # noqa: F401
from . import heads, pose_estimators  # noqa: F401
