"""Model components of LOGO-CAP: heads, layers, losses and tensor utilities."""
from . import layers, losses, utils  # noqa: F401  (order: utils/layers before heads)
from . import heads  # noqa: F401
