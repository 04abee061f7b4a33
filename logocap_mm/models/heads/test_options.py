"""Where LOGO-CAP's test-time options are read from: ``model.test_cfg``, and only there."""
from typing import Optional

from ..precision import check_network_options
from .logocap_decoder import ADAPTATION_LEVELS

# every test-time option lives in ``model.test_cfg`` (read by the estimator and the head)
TEST_CFG_KEYS = ('flip_test', 'flip_mode', 'adaptation', 'output_heatmaps', 'image_chunk',
                 'multiscale_test', 'memory_format', 'precision', 'compile',
                 'fuse_conv_bn')


def resolve_adaptation(test_cfg: dict, decoder_level: str,
                       decoder_explicit: Optional[str] = None) -> str:
    """Check ``model.test_cfg`` and return the adaptation level it selects.

    Args:
        test_cfg: ``model.test_cfg``; only :data:`TEST_CFG_KEYS` are allowed.
        decoder_level: ``LogoCapDecoder.adaptation``, the default when ``test_cfg`` has no
            ``adaptation``.
        decoder_explicit: ``model.head.pose_decoder.adaptation`` if the config sets it; a
            different ``test_cfg.adaptation`` is then an error (nothing is silently
            overridden).
    """
    unknown = sorted(set(test_cfg) - set(TEST_CFG_KEYS))
    if unknown:
        raise ValueError(f'unknown model.test_cfg option(s) {unknown}; LOGO-CAP reads '
                         f'{list(TEST_CFG_KEYS)}')
    check_network_options(test_cfg)  # memory_format, precision (device checked at predict)
    level = test_cfg.get('adaptation', decoder_level)
    if level not in ADAPTATION_LEVELS:
        raise ValueError(f'test_cfg.adaptation must be one of {ADAPTATION_LEVELS}, '
                         f'got {level!r}')
    if ('adaptation' in test_cfg and decoder_explicit is not None
            and decoder_explicit != level):
        raise ValueError(
            f'model.head.pose_decoder.adaptation={decoder_explicit!r} conflicts with '
            f'model.test_cfg.adaptation={level!r}; the test-time adaptation level is set in '
            f'model.test_cfg, e.g. --cfg-options model.test_cfg.adaptation={decoder_explicit}')
    return level
