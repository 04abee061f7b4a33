"""MMPoseInferencer and tools/demo.py with a checkpoint written by mmengine's Runner (tiny
config, one CPU iteration), loaded with ``torch.load(weights_only=True)`` + the allow-list."""
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest

from logocap_mm.testing import REPO_ROOT as ROOT
from logocap_mm.testing import load_tool
TINY_COCO = osp.join(ROOT, 'tests', 'configs', 'tiny_coco.py')
TINY_CROWDPOSE = osp.join(ROOT, 'tests', 'configs', 'tiny_crowdpose.py')
COCO_IMG = osp.join(ROOT, 'tests', 'data', 'coco', '000000197388.jpg')


def _demo():
    return load_tool('tools/demo.py', 'logocap_demo')


@pytest.fixture(scope='module')
def checkpoint(tiny_coco_trained, tmp_path_factory):
    """The Runner's epoch_1.pth after one training iteration (``mim train``, shared with
    test_mim.py: tests/test_e2e/conftest.py), with lifted heatmap logits."""
    os.environ.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    import logocap_mm  # noqa: F401
    work, _ = tiny_coco_trained
    ckpt = osp.join(work, 'epoch_1.pth')
    assert osp.isfile(ckpt)
    # After one iteration every heatmap is still ~0, so every pose scores 0 and the decoder
    # (rightly) returns nobody. Lift the heatmap logits by a constant so that people are
    # decoded; the rest of the Runner checkpoint (meta, message hub, optimizer) is kept, so
    # the weights-only allow-list is still exercised on load.
    import torch
    from mmengine.runner.checkpoint import _load_checkpoint  # weights_only=True
    state = _load_checkpoint(ckpt, map_location='cpu')
    assert {'message_hub', 'optimizer', 'meta'} <= set(state)
    state['state_dict']['head.heatmap_final.bias'] += 1.0
    lifted = str(tmp_path_factory.mktemp('lifted') / 'lifted.pth')
    torch.save(state, lifted)
    return lifted


def test_inferencer_keypoints_and_visualisation(checkpoint, tmp_path):
    from mmpose.apis import MMPoseInferencer
    inferencer = MMPoseInferencer(pose2d=TINY_COCO, pose2d_weights=checkpoint, device='cpu',
                                  show_progress=False)
    assert inferencer.inferencer.model.dataset_meta['num_keypoints'] == 17
    vis_dir, pred_dir = str(tmp_path / 'vis'), str(tmp_path / 'pred')
    result = next(inferencer(COCO_IMG, vis_out_dir=vis_dir, pred_out_dir=pred_dir,
                             return_vis=True, kpt_thr=0.0))
    preds = result['predictions'][0]
    # the tiny config keeps at most 5 people (pose_decoder.max_people) per image
    assert 1 <= len(preds) <= 5
    for p in preds:
        kpts = np.asarray(p['keypoints'])
        assert kpts.shape == (17, 2)
        assert np.isfinite(kpts).all()
        assert len(p['keypoint_scores']) == 17
    # the drawn image has the input's size and was written
    vis = result['visualization'][0]
    assert vis.shape == (392, 640, 3)
    out = osp.join(vis_dir, osp.basename(COCO_IMG))
    assert osp.isfile(out) and osp.getsize(out) > 1000
    with open(osp.join(pred_dir, '000000197388.json')) as f:
        assert len(json.load(f)) == len(preds)


def test_demo_on_folder(checkpoint, tmp_path):
    demo = _demo()
    folder = tmp_path / 'imgs'
    folder.mkdir()
    for name in ('000000197388.jpg', '000000040083.jpg'):
        shutil.copy(osp.join(ROOT, 'tests', 'data', 'coco', name), folder / name)
    (folder / 'notes.txt').write_text('not an image')
    out = tmp_path / 'out'
    results = demo.main([TINY_COCO, checkpoint, str(folder), '--out-dir', str(out),
                         '--no-flip', '--adaptation', 'partial', '--kpt-thr', '0'])
    assert [osp.basename(p) for p, _ in results] == ['000000040083.jpg', '000000197388.jpg']
    for path, preds in results:
        assert all(np.asarray(p['keypoints']).shape == (17, 2) for p in preds)
        assert osp.isfile(out / 'vis' / osp.basename(path))
        assert osp.isfile(out / 'predictions' / (osp.basename(path) + '.json'))


def test_inferencer_and_demo_take_precision_and_memory_format(checkpoint, tmp_path):
    """``test_cfg.precision`` / ``memory_format`` from a config (the inferencer) and from
    ``--precision`` / ``--memory-format`` (the demo) reach the model and give finite poses."""
    import torch
    from mmengine.config import Config
    from mmpose.apis import MMPoseInferencer
    cfg = Config.fromfile(TINY_COCO)
    cfg.model.test_cfg.update(precision='bf16', memory_format='contiguous')
    inferencer = MMPoseInferencer(pose2d=cfg, pose2d_weights=checkpoint, device='cpu',
                                  show_progress=False)
    model = inferencer.inferencer.model
    assert model.test_cfg['precision'] == 'bf16'
    preds = next(inferencer(COCO_IMG))['predictions'][0]
    assert 1 <= len(preds) <= 5
    assert all(np.isfinite(np.asarray(p['keypoints'])).all() for p in preds)
    assert not model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    demo = _demo()
    args = demo.parse_args([TINY_COCO, checkpoint, COCO_IMG, '--precision', 'bf16',
                            '--memory-format', 'channels_last', '--fuse-conv-bn'])
    model = demo.build_inferencer(args).inferencer.model
    assert (model.test_cfg['precision'], model.test_cfg['memory_format'],
            model.test_cfg['fuse_conv_bn']) == ('bf16', 'channels_last', True)
    results = demo.main([TINY_COCO, checkpoint, COCO_IMG, '--out-dir', str(tmp_path / 'o'),
                         '--precision', 'bf16', '--memory-format', 'channels_last'])
    assert len(results) == 1 and 1 <= len(results[0][1]) <= 5
    with pytest.raises(SystemExit):
        demo.parse_args([TINY_COCO, checkpoint, COCO_IMG, '--precision', 'half'])


def _save_state(cfg_path, path, edit=None):
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import logocap_mm  # noqa: F401
    from mmpose.registry import MODELS
    init_default_scope('mmpose')
    sd = MODELS.build(Config.fromfile(cfg_path).model).state_dict()
    if edit:
        edit(sd)
    torch.save({'state_dict': sd, 'meta': {}}, path)
    return path


def test_demo_rejects_checkpoint_of_other_architecture(tmp_path):
    """A 14-keypoint (CrowdPose) checkpoint for the 17-keypoint config: refused, keys named."""
    ckpt = _save_state(TINY_CROWDPOSE, str(tmp_path / 'crowdpose14.pth'))
    with pytest.raises(ValueError, match=r'head\.heatmap_final\.weight.*\(15, 8, 1, 1\)'):
        _demo().main([TINY_COCO, ckpt, COCO_IMG, '--out-dir', str(tmp_path / 'o')])
    assert not osp.exists(tmp_path / 'o')  # nothing written


def test_demo_rejects_checkpoint_with_missing_or_unexpected_keys(tmp_path):
    """Right shapes but a missing and an unexpected key: mmengine would only warn and run a
    random final CMP bias; demo.py refuses and names both keys."""
    import torch

    def edit(sd):
        sd['extra.weight'] = torch.zeros(1)
        del sd['head.local_adaptation.cmp.layers.9.bias']
    ckpt = _save_state(TINY_COCO, str(tmp_path / 'partial.pth'), edit)
    with pytest.raises(ValueError) as e:
        _demo().main([TINY_COCO, ckpt, COCO_IMG, '--out-dir', str(tmp_path / 'o')])
    msg = str(e.value)
    assert 'does not match the architecture' in msg
    assert 'missing keys (1): head.local_adaptation.cmp.layers.9.bias' in msg
    assert 'unexpected keys (1): extra.weight' in msg
    assert not osp.exists(tmp_path / 'o')


@pytest.mark.parametrize('which', ['config', 'checkpoint', 'input'])
def test_demo_missing_paths(tmp_path, which):
    args = {'config': TINY_COCO, 'checkpoint': COCO_IMG, 'input': COCO_IMG}
    args[which] = str(tmp_path / 'missing')
    with pytest.raises(FileNotFoundError, match=f'{which} not found: .*missing'):
        _demo().main([args['config'], args['checkpoint'], args['input']])


def test_demo_empty_folder(tmp_path):
    with pytest.raises(ValueError, match='has no images'):
        _demo().main([TINY_COCO, COCO_IMG, str(tmp_path)])


def _tiny_video(path, n=3):
    import cv2
    img = cv2.resize(cv2.imread(COCO_IMG), (160, 96))
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 5, (160, 96))
    assert w.isOpened()
    for i in range(n):
        w.write(np.roll(img, 4 * i, axis=1))
    w.release()
    return str(path)


def test_demo_on_video_writes_video_and_json(checkpoint, tmp_path, capsys):
    video = _tiny_video(tmp_path / 'clip.mp4')
    out = tmp_path / 'out'
    results = _demo().main([TINY_COCO, checkpoint, video, '--out-dir', str(out), '--no-flip'])
    (path, frames), = results
    assert path == video and len(frames) == 3
    drawn = out / 'vis' / 'clip.mp4'
    assert osp.isfile(drawn) and osp.getsize(drawn) > 1000
    import cv2
    cap = cv2.VideoCapture(str(drawn))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    cap.release()
    with open(out / 'predictions' / 'clip.mp4.json') as f:
        per_frame = json.load(f)
    assert len(per_frame) == 3
    assert [len(fr['instances']) for fr in per_frame] == [len(fr) for fr in frames]
    assert '3 frame(s)' in capsys.readouterr().out


def test_demo_pose_thr_filters_count_not_json(checkpoint, tmp_path, capsys):
    demo = _demo()
    runs = {}
    for thr in ('0', '1e9'):
        out = tmp_path / f'out_{thr}'
        (_, preds), = demo.main([TINY_COCO, checkpoint, COCO_IMG, '--out-dir', str(out),
                                 '--no-flip', '--pose-thr', thr])
        with open(out / 'predictions' / '000000197388.jpg.json') as f:
            runs[thr] = (len(json.load(f)), capsys.readouterr().out)
        assert len(preds) == runs[thr][0]  # JSON keeps every pose
        assert all('bbox_score' in p for p in preds)
    n = runs['0'][0]
    assert n >= 1 and runs['1e9'][0] == n
    assert f': {n} people' in runs['0'][1] and ': 0 people' in runs['1e9'][1]


def test_demo_skips_truncated_image_and_fails_at_the_end(checkpoint, tmp_path):
    demo = _demo()
    folder = tmp_path / 'imgs'
    folder.mkdir()
    shutil.copy(COCO_IMG, folder / 'b_good.jpg')
    with open(COCO_IMG, 'rb') as f:
        (folder / 'a_truncated.jpg').write_bytes(f.read()[:300])
    out = tmp_path / 'out'
    with pytest.raises(demo.InputErrors, match=r'1 of 2 input\(s\) failed:\n.*a_truncated\.jpg'
                       ) as e:
        demo.main([TINY_COCO, checkpoint, str(folder), '--out-dir', str(out), '--no-flip'])
    assert [osp.basename(p) for p, _ in e.value.failed] == ['a_truncated.jpg']
    assert 'cannot be decoded' in str(e.value)
    assert 'check whether the file exists' not in str(e.value)
    assert osp.isfile(out / 'vis' / 'b_good.jpg')
    assert osp.isfile(out / 'predictions' / 'b_good.jpg.json')
    assert not osp.exists(out / 'predictions' / 'a_truncated.jpg.json')


class _NotWeights:
    pass


def test_demo_refused_pickle_is_a_clean_error(tmp_path):
    import pickle

    import torch

    ckpt = _save_state(TINY_COCO, str(tmp_path / 'evil.pth'))
    state = torch.load(ckpt, weights_only=True)
    state['meta'] = {'obj': _NotWeights()}
    torch.save(state, ckpt)
    with pytest.raises(ValueError, match='refused') as e:
        _demo().main([TINY_COCO, ckpt, COCO_IMG, '--out-dir', str(tmp_path / 'o')])
    assert isinstance(e.value, ValueError) and not isinstance(e.value, pickle.UnpicklingError)
