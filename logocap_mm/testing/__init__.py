# Copyright (c) logocap_mm contributors.
"""Helpers of the test suite (as ``mmpose.testing``): reference-fixture discovery
(:mod:`.fixtures`), the shared tiny model / data builders (:mod:`.builders`) and
:func:`~.tools.load_tool` for the tools' scripts."""
from .builders import (COCO_DATA, REPO_ROOT, TEST_TINY_CONFIG, TINY_CONFIG,
                       build_tiny_head, build_tiny_model, fixed_train_batch,
                       fixed_train_pipeline, tiny_config, tiny_data_samples)
from .commands import BIN, command_env, mim, run_command
from .keypoint_subset import subset_keypoints
from .tools import load_tool
from .fixtures import (TRAIN_FILES, converted_fixture_model, image_files, missing_file,
                       missing_keys, npz_keys, skip_reasons)

__all__ = ['npz_keys', 'image_files', 'missing_keys', 'missing_file', 'skip_reasons',
           'TRAIN_FILES', 'converted_fixture_model', 'REPO_ROOT', 'TINY_CONFIG', 'TEST_TINY_CONFIG', 'COCO_DATA',
           'tiny_config', 'build_tiny_model', 'build_tiny_head', 'tiny_data_samples',
           'fixed_train_batch', 'fixed_train_pipeline',
           'subset_keypoints', 'load_tool', 'BIN', 'command_env', 'run_command', 'mim']
