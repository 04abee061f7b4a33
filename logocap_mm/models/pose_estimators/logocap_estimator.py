"""MMPose's bottom-up estimator with the flip test run as one batched forward."""
from typing import List, Union

import torch
from mmpose.models.pose_estimators import BottomupPoseEstimator
from mmpose.registry import MODELS
from mmpose.utils.typing import SampleList
from torch import Tensor

from logocap_mm.models.heads.logocap_decoder import ADAPTATION_LEVELS
from logocap_mm.models.heads.head_flip import FLIP_MODES
from logocap_mm.models.fusion import FeatureNet, FoldedCopy
from logocap_mm.models.heads.meta_checks import check_dataset_meta
from logocap_mm.models.heads.inference_options import (check_normalisation,
                                                      check_single_scale)
from logocap_mm.models.precision import (check_network_options, current_plan,
                                         prepare_module, resolve_plan, set_layout,
                                         training_channels_last, use_plan)
from logocap_mm.models.utils.checkpoint import (check_complete_for_inference,
                                                check_state_dict_keys,
                                                install_checkpoint_file_errors,
                                                missing_model_keys)

install_checkpoint_file_errors()  # unreadable checkpoint files: errors name the file


def _split(feats, n: int):
    """Split a (nested) tuple/list of (2B, ...) tensors into two halves."""
    if isinstance(feats, Tensor):
        return feats[:n], feats[n:]
    parts = [_split(f, n) for f in feats]
    typ = type(feats) if isinstance(feats, (tuple, list)) else tuple
    return typ(p[0] for p in parts), typ(p[1] for p in parts)


@MODELS.register_module()
class LogoCapPoseEstimator(BottomupPoseEstimator):
    """``BottomupPoseEstimator`` whose flip test runs the image and its mirror as one batch.

    MMPose's estimator extracts features of ``inputs`` and ``inputs.flip(-1)`` in two
    backbone calls; LOGO-CAP's reference stacks them into one batch. The
    head receives the same ``[feats, flipped_feats]`` pair either way, so ``LogoCapHead``
    also works under the stock ``BottomupPoseEstimator``. Note that BatchNorm in eval mode
    makes both paths numerically identical; only speed differs.

    Checkpoints: a checkpoint that lacks some of the model's tensors (e.g. backbone only) is
    accepted by ``load_state_dict`` / ``load_from``, for fine-tuning. The missing names are
    kept, and ``predict`` (``mim test``, ``init_model``, ``MMPoseInferencer``, validation)
    raises a ``ValueError`` naming them, until the model has been put in training mode
    (``model.train()``, which every mmengine training loop calls before its first iteration):
    after that the weights are the run's own. Loading a complete checkpoint clears the list.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # fail at build time, not at the first test batch (the head checks again per call)
        tc = self.test_cfg or {}
        if tc.get('adaptation', 'full') not in ADAPTATION_LEVELS:
            raise ValueError(f'test_cfg.adaptation must be one of {ADAPTATION_LEVELS}, got '
                             f"{tc.get('adaptation')!r}")
        if tc.get('flip_mode', 'reference') not in FLIP_MODES:
            raise ValueError(f'test_cfg.flip_mode must be one of {FLIP_MODES}, got '
                             f"{tc.get('flip_mode')!r}")
        self.image_chunk(torch.device('cpu'), tc)  # validates test_cfg.image_chunk
        check_network_options(tc)  # memory_format / precision values
        check_single_scale(tc)
        check_normalisation(self.data_preprocessor)
        if training_channels_last(self.train_cfg):  # train_cfg.memory_format, from the start
            set_layout(self, True)
        self._ckpt_missing = []  # tensors the last loaded checkpoint lacked

    @staticmethod
    def image_chunk(device: torch.device, test_cfg: dict):
        """Images per inference chunk, from ``test_cfg.image_chunk``.

        ``'auto'`` (default): 1 on CPU, where a large batch through HRNet runs at a lower
        throughput per image (cache-bound: 135 vs 191 GFLOP/s at batch 8 vs 1 here), and no
        chunking on accelerators, where batching pays. An int chunks on every device;
        ``None`` disables chunking. Chunking never changes the predictions (every image is
        decoded independently).
        """
        chunk = (test_cfg or {}).get('image_chunk', 'auto')
        if chunk == 'auto':
            return 1 if device.type == 'cpu' else None
        if chunk is None:
            return None
        if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
            raise ValueError(f"test_cfg.image_chunk must be 'auto', None or a positive int, "
                             f'got {chunk!r}')
        return chunk

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # mmengine loads with strict=False and only logs bad keys: reject reference (not
        # converted) checkpoints, other models and shape mismatches with a clear ValueError
        upgrade = getattr(self.head, 'upgrade_state_dict_keys', None)
        if upgrade is not None:  # older key names of the head (its own pre-hook does too)
            upgrade(state_dict, prefix + 'head.')
        check_state_dict_keys(self, state_dict, prefix)
        missing = missing_model_keys(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._ckpt_missing = missing

    def train(self, mode: bool = True):
        # training from a partial checkpoint (fine-tuning) makes the weights the run's own
        # and training runs in train_cfg.memory_format (after a validation that converted
        # modules to the test-time layout, they are put back)
        if mode:
            self._ckpt_missing = []
            set_layout(self, training_channels_last(self.train_cfg))
        return super().train(mode)

    @property
    def dataset_meta(self):
        """The dataset meta (MMPose ``parse_pose_metainfo`` dict) the model was given.

        Setting it (``init_model``, ``MMPoseInferencer`` from a checkpoint's
        ``meta.dataset_meta`` or the config, or by hand) checks it against the head: a
        keypoint count other than the head's is a ``ValueError`` naming both,
        ``flip_indices`` must be a permutation of ``range(K)``, and flip pairs that differ
        from the config's (the head ``metainfo``) give a warning naming both.
        """
        try:
            return self.__dict__['_logocap_dataset_meta']
        except KeyError:
            raise AttributeError('dataset_meta') from None

    @dataset_meta.setter
    def dataset_meta(self, meta):
        head = getattr(self, 'head', None)
        if head is not None and hasattr(head, 'num_keypoints'):
            check_dataset_meta(meta, head.num_keypoints,
                               dict(flip_indices=getattr(head, 'config_flip_indices', None)),
                               'dataset_meta')
        self.__dict__['_logocap_dataset_meta'] = meta

    def extract_feat(self, inputs: Tensor):
        """Backbone (+ neck) features; inside ``predict`` in the current network plan's
        memory format and autocast precision (:mod:`logocap_mm.models.precision`), returned
        in that layout and dtype to a head that follows the plan (``LogoCapHead``), else as
        fp32 contiguous maps. Outside ``predict`` (training, direct calls) as written."""
        plan = current_plan()
        if plan.identity:
            return super().extract_feat(inputs)
        run = super().extract_feat
        folded = None
        if plan.fuse_conv_bn:
            folded = self.__dict__.setdefault('_logocap_folded', FoldedCopy('backbone+neck'))
            net = folded.get(FeatureNet(self.backbone, self.neck if self.with_neck else None),
                             inputs, warn=plan.fuse_conv_bn is True)
            if net is not None:
                run = prepare_module(net, plan.channels_last)
            else:
                folded = None
        if folded is None:
            prepare_module(self.backbone, plan.channels_last)
            if self.with_neck:
                prepare_module(self.neck, plan.channels_last)
        if plan.compile:  # compiled once; torch.compile recompiles for new shapes/layouts
            if folded is not None:
                if folded.compiled is None:
                    folded.compiled = torch.compile(run)
                run = folded.compiled
            else:
                run = self.__dict__.get('_logocap_compiled_feat')
                if run is None:
                    run = torch.compile(super().extract_feat)
                    self.__dict__['_logocap_compiled_feat'] = run
        with plan.autocast():
            feats = run(plan.input(inputs))
        if getattr(self.head, 'follows_network_plan', False):
            return feats  # the head runs its branches in the same plan
        return plan.output(feats)

    def predict(self, inputs: Union[Tensor, List[Tensor]],
                data_samples: SampleList) -> SampleList:
        """Poses for a batch. ``test_cfg.memory_format`` / ``test_cfg.precision`` select how
        the network runs (:func:`logocap_mm.models.precision.resolve_plan`; a precision the
        device cannot run is a ``ValueError``)."""
        check_complete_for_inference(self, getattr(self, '_ckpt_missing', ()))
        check_single_scale(self.test_cfg or {})
        device = (inputs if isinstance(inputs, Tensor) else inputs[0]).device
        with use_plan(resolve_plan(self.test_cfg, device)):
            return self._predict(inputs, data_samples)

    def _predict(self, inputs: Union[Tensor, List[Tensor]],
                 data_samples: SampleList) -> SampleList:
        if isinstance(inputs, Tensor):
            chunk = self.image_chunk(inputs.device, self.test_cfg)
            if chunk is not None and inputs.shape[0] > chunk:
                out = []
                for i in range(0, inputs.shape[0], chunk):
                    out.extend(self._predict(inputs[i:i + chunk],
                                            data_samples[i:i + chunk]))
                return out
        flip_test = self.test_cfg.get('flip_test', False)
        if not flip_test or not isinstance(inputs, Tensor):
            return super().predict(inputs, data_samples)
        n = inputs.shape[0]
        feats = self.extract_feat(torch.cat([inputs, inputs.flip(-1)]))
        feats = list(_split(feats, n))
        preds = self.head.predict(feats, data_samples, test_cfg=self.test_cfg)
        if isinstance(preds, tuple):
            instances, fields = preds
        else:
            instances, fields = preds, None
        return self.add_pred_to_datasample(instances, fields, data_samples)
