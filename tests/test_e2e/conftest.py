"""Set-ups shared by the end-to-end tests (each runs once per session)."""
import pytest

from logocap_mm.testing import mim

TINY_COCO = 'tests/configs/tiny_coco.py'


@pytest.fixture(scope='session')
def tiny_coco_trained(tmp_path_factory):
    """One ``mim train`` iteration of tests/configs/tiny_coco.py (mmengine's Runner, seed 0):
    ``(work_dir, log)`` with ``work_dir/epoch_1.pth``. Read-only for its users: copy the
    folder before training on in it."""
    work = str(tmp_path_factory.mktemp('mim') / 'train')
    rc, log = mim('train', 'mmpose', TINY_COCO, '--work-dir', work, '--gpus', '0', timeout=600)
    assert rc == 0, log[-4000:]
    return work, log
