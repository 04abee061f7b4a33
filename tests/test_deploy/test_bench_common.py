"""tools/deploy/bench_common.py: the runtime side that bench_onnx.py and bench_runtime.py
time gives the runtime's own poses (the file's outputs carry a batch axis)."""
import glob
import os.path as osp

import numpy as np

from logocap_mm.testing import REPO_ROOT, load_tool

IMAGES = sorted(glob.glob(osp.join(REPO_ROOT, 'tests', 'data', '*', '*.jpg')))


def test_ort_image_gives_the_runtime_instances(deploy_export):
    from logocap_rt import LogoCapONNX, read_image
    bench = load_tool('tools/deploy/bench_common.py', 'bench_common_under_test')
    rt = LogoCapONNX(deploy_export('full'))
    img = read_image(IMAGES[0])
    x, cmeta = rt.preprocess(img)
    got, want = bench.ort_image(rt, x, cmeta)(), rt(img)
    assert len(want) > 0 and len(got) == len(want)
    for k in ('keypoints', 'keypoint_scores', 'bbox'):
        np.testing.assert_array_equal(np.array([p[k] for p in got]),
                                      np.array([p[k] for p in want]))
