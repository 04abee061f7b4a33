"""Convert checkpoints of the LOGO-CAP reference implementation (cherubicXN/logocap) to logocap_mm.

Key mapping (reference ``Model`` -> MMPose ``BottomupPoseEstimator`` with ``HRNet`` backbone,
``FeatureMapProcessor(concat=True)`` neck (no parameters) and ``LogoCapHead``):

* ``backbone.*`` -> ``backbone.*`` **unchanged**: the reference's HigherHRNet-style backbone
  (``conv1/bn1/conv2/bn2``, ``layer1``, ``transition{1,2,3}``, ``stage{2,3,4}.<m>.branches /
  fuse_layers``) has exactly MMPose ``HRNet``'s parameter names and shapes (checked key by key
  against an ``HRNet`` built from the same ``extra``).
* ``transition_cls`` -> ``head.heatmap_layers``, ``final_layer_cls`` -> ``head.heatmap_final``,
  ``transition_reg`` -> ``head.offset_layers``, ``final_layer_reg`` -> ``head.offset_final``,
  ``transition_embedding`` -> ``head.embedding_layers``, ``joints_mlp.N`` ->
  ``head.local_adaptation.cmp.layers.N`` (checkpoints with the older ``head.cmp.layers.N``
  keys still load);
  inside attentive-norm layers ``weight_`` -> ``weight``, ``bias_`` -> ``bias``,
  ``attn_weights.attention.0.weight`` -> ``attn_conv.weight``.

The conversion is strict: every reference key must map, every expected key must be present and
every shape must match, otherwise :class:`ConversionError` lists the offending keys.
Modules: :mod:`.keys` (key mapping, architecture from the keys, expected shapes),
:mod:`.refcfg` (reference yaml), :mod:`.config_text` (generated config), :mod:`.io`
(reading the source, checked paths, atomic writes, :func:`convert_checkpoint`).
The expected backbone keys come from MMPose's ``HRNet`` (built on the ``meta`` device, so no
memory is allocated); the expected head keys from ``LogoCapHead`` built the same way
(:func:`head_param_shapes`).
"""
from .config_text import default_base_config, make_override_config
from .io import (check_paths, coco_dataset_meta, convert_checkpoint, load_reference_state_dict,
                 refusal_reason)
from .keys import (AN_RENAMES, DEFAULT_HEAD_CFG, HEAD_PREFIX_MAP, W32_EXTRA, ConversionError,
                   convert_state_dict, head_param_shapes, hrnet_param_shapes, infer_head_cfg,
                   infer_hrnet_extra, map_reference_key, unwrap_state_dict)
from .refcfg import (arch_from_ref_config, is_merged_dump, load_ref_config,
                     num_keypoints_from_ref_config, test_settings_from_ref_config)

__all__ = [
    'ConversionError', 'load_reference_state_dict', 'unwrap_state_dict', 'map_reference_key',
    'infer_hrnet_extra', 'infer_head_cfg', 'hrnet_param_shapes', 'head_param_shapes',
    'convert_state_dict', 'load_ref_config', 'arch_from_ref_config', 'coco_dataset_meta',
    'make_override_config', 'convert_checkpoint', 'DEFAULT_HEAD_CFG', 'W32_EXTRA',
    'HEAD_PREFIX_MAP', 'AN_RENAMES', 'check_paths', 'refusal_reason', 'default_base_config',
    'is_merged_dump', 'num_keypoints_from_ref_config', 'test_settings_from_ref_config',
]
