"""The OpenVINO backend: the same exported file, the same poses as ONNX Runtime."""
import glob
import os.path as osp

import numpy as np
import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))  # tests/<group>/<file>
IMAGES = sorted(glob.glob(osp.join(ROOT, 'tests', 'data', '*', '*.jpg')))
KPT_TOL, SCORE_TOL = 1e-2, 1e-4


@pytest.mark.parametrize('level', ['full', 'none'])
def test_openvino_equals_onnxruntime(deploy_export, need_module, level):
    need_module('openvino')
    from logocap_rt import LogoCapONNX
    path = deploy_export(level)
    ort, ov = LogoCapONNX(path), LogoCapONNX(path, backend='openvino', num_threads=1)
    assert ov.backend == 'openvino' and ov.meta == ort.meta
    total = 0
    for img in IMAGES + [np.zeros((240, 320, 3), np.uint8)]:
        a, b = ort(img), ov(img)
        assert len(a) == len(b), f'{img}: {len(a)} poses (ORT) vs {len(b)} (OpenVINO)'
        total += len(a)
        if not a:
            continue
        for k, tol in (('keypoints', KPT_TOL), ('bbox', KPT_TOL),
                       ('keypoint_scores', SCORE_TOL), ('bbox_score', SCORE_TOL)):
            d = np.abs(np.array([p[k] for p in a]) - np.array([p[k] for p in b])).max()
            assert d <= tol, f'{img} {level}: {k} differ by {d:.3g}'
    assert total > 0
    # runs in two threads at once: one infer request per thread, the same poses
    imgs = IMAGES[:4]
    for a, b in zip(ov.predict(imgs, workers=2), [ov(i) for i in imgs]):
        assert len(a) == len(b)
        if a:
            np.testing.assert_array_equal(np.array([p['keypoints'] for p in a]),
                                          np.array([p['keypoints'] for p in b]))


def test_unknown_or_missing_backend_is_refused(deploy_export, monkeypatch):
    import sys

    from logocap_rt import LogoCapONNX
    path = deploy_export('none')
    with pytest.raises(ValueError, match='backend must be one of'):
        LogoCapONNX(path, backend='tensorrt')
    monkeypatch.setitem(sys.modules, 'openvino', None)  # as if not installed
    # a missing engine is an ImportError (MissingDependency) naming the extra to install
    with pytest.raises(ImportError, match=r'logocap-mm\[openvino\]'):
        LogoCapONNX(path, backend='openvino')
    with pytest.raises(ValueError, match='num_threads'):
        LogoCapONNX(path, num_threads=0)
