"""Where LOGO-CAP's test-time options are read from: ``model.test_cfg``, and only there;
and the checks of the test-time settings held elsewhere in the model (normalisation)."""
from typing import Optional

from logocap_rt.checks import check_value

from ..precision import check_network_options
from .logocap_decoder import ADAPTATION_LEVELS

# every test-time option lives in ``model.test_cfg`` (read by the estimator and the head)
TEST_CFG_KEYS = ('flip_test', 'flip_mode', 'adaptation', 'output_heatmaps', 'image_chunk',
                 'multiscale_test', 'memory_format', 'precision', 'compile',
                 'fuse_conv_bn')


def check_normalisation(data_preprocessor) -> None:
    """``model.data_preprocessor.mean`` / ``std``: 3 finite numbers each, ``std`` > 0 (the
    rule of the ONNX metadata); a zero std would turn every input into inf / NaN."""
    if not getattr(data_preprocessor, '_enable_normalize', False):
        return
    for key in ('mean', 'std'):
        check_value(key, getattr(data_preprocessor, key).flatten().tolist(),
                    f'model.data_preprocessor.{key}')


def check_single_scale(test_cfg: dict) -> None:
    """``test_cfg.multiscale_test`` may only be False (or absent): LOGO-CAP tests at one
    scale, the canvas of short side ``input_size`` (as the reference and the published
    numbers do); MMPose's multi-scale path needs ``aug_scales`` from a resize transform that
    this model's test pipeline (``LogoCapResize``) does not produce."""
    value = test_cfg.get('multiscale_test', False)
    if value is not False:
        raise ValueError(
            f'test_cfg.multiscale_test={value!r} is not supported: LOGO-CAP tests at a single '
            'scale (the canvas of short side input_size of LogoCapResize); remove the key or '
            'set it to False, and test another scale by changing input_size')


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
    check_single_scale(test_cfg)
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
