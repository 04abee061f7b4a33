"""The ONNX speed peers' pieces (logocap_mm.benchmark.peers_onnx) give MMPose's own
predictions: the numpy box NMS, CID's graph module and RTMO's network + NMS + DCC, in eager
mode (the export itself is exercised by tools/deploy/bench_onnx.py --peers)."""
import numpy as np
import pytest
import torch

import logocap_mm  # noqa: F401


def test_box_nms_known_answer():
    from logocap_mm.benchmark.peers_onnx import box_nms
    boxes = np.float32([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 5],
                        [21, 20, 31, 30]])
    scores = np.float32([.9, .8, .7, .95, .1])
    # IoU(0, 1) = 90/110 > .65: 1 dropped; IoU(3, 0) = .5 kept; IoU(4, 2) = 90/110: dropped
    assert box_nms(boxes, scores, .65).tolist() == [3, 0, 2]
    assert box_nms(boxes, scores, .65, max_keep=2).tolist() == [3, 0]
    assert box_nms(boxes, scores, .95).tolist() == [3, 0, 1, 2, 4]
    assert box_nms(boxes[:0], scores[:0], .5).tolist() == []


def test_published_ap_is_read_from_mmpose_metafiles():
    from logocap_mm.benchmark.peers_onnx import PEERS, published_ap
    ap = published_ap()
    assert set(ap) == set(PEERS)
    for name, v in ap.items():
        assert 50. < v['ap'] < 90., (name, v)
        assert v['source'].startswith('MMPose model zoo') and v['source'].endswith('.yml)')
    assert ap['rtmo-s']['ap'] < ap['rtmo-m']['ap'] < ap['rtmo-l']['ap']


def test_cid_graph_equals_cid_predict():
    from logocap_mm.benchmark.cid import COCO_FLIP, build_cid, cid_samples
    from logocap_mm.benchmark.peers_onnx import CidGraph
    model, msg = build_cid('cpu', input_size=128)
    if model is None:
        pytest.skip(msg)
    x = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    N = 3
    with torch.no_grad():
        hm, sc = CidGraph(model, N, COCO_FLIP)(x)
        kpts, scores = model.head.decoder.decode(hm.numpy(), sc.numpy()[:, None])
        model.test_cfg = dict(model.test_cfg, max_instances=N, score_threshold=-1.)
        feats = [model.extract_feat(x), model.extract_feat(x.flip(-1))]
        ref = model.head.predict(feats, cid_samples(128), test_cfg=model.test_cfg)[0]
    assert hm.shape == (N, 17, 32, 32) and kpts.shape == (N, 17, 2)
    np.testing.assert_allclose(kpts + 128 / 32 / 2, ref.keypoints, atol=1e-3)
    np.testing.assert_allclose(scores, ref.keypoint_scores, rtol=1e-4, atol=1e-6)


def test_rtmo_pieces_equal_rtmo_predict():
    from mmpose.structures import PoseDataSample
    from mmpose.structures.bbox import bbox_xyxy2cs

    from logocap_mm.benchmark.peers_onnx import RtmoDcc, RtmoNetwork, box_nms, build_rtmo
    model, test_cfg = build_rtmo('rtmo-s')
    x = torch.randn(1, 3, 640, 640, generator=torch.Generator().manual_seed(0))
    head = model.head
    with torch.no_grad():
        scores, boxes, vis, pose = RtmoNetwork(model)(x)
        keep = box_nms(boxes.numpy(), scores.numpy(), test_cfg['nms_thr'], 5)
        c, s = bbox_xyxy2cs(boxes[keep], head.bbox_padding)
        kpts = RtmoDcc(head.dcc)(pose[keep], torch.cat([c, s], 1),
                                 head.flatten_priors[keep]).reshape(len(keep), -1, 2)
        sample = PoseDataSample(metainfo=dict(input_size=(640, 640)))
        ref = head.predict(model.extract_feat(x), [sample],
                           test_cfg=dict(test_cfg, score_thr=-1.))[0]
    assert len(keep) == 5 and len(ref.keypoints) >= 5
    order = np.argsort(-ref.scores, kind='stable')[:5]
    np.testing.assert_allclose(scores.numpy()[keep], ref.scores[order], rtol=1e-6)
    np.testing.assert_allclose(kpts.numpy(), ref.keypoints[order], atol=1e-3)
    np.testing.assert_allclose(vis.numpy()[keep], ref.keypoint_scores[order], atol=1e-6)
