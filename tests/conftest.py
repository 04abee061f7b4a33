import os
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA = osp.join(ROOT, 'tests', 'data')


def fixtures_dir():
    """Folder of the reference parity fixture (env ``LOGOCAP_FIXTURES``)."""
    return os.environ.get('LOGOCAP_FIXTURES',
                          osp.join(ROOT, '..', 'shared', 'fixtures'))


@pytest.fixture(scope='session')
def fixture_dir():
    d = fixtures_dir()
    if not osp.isdir(d):
        if os.environ.get('CI'):
            pytest.fail(f'parity fixture folder missing: {d} (set LOGOCAP_FIXTURES)')
        pytest.skip(f'parity fixture folder missing: {d}')
    return d


@pytest.fixture(scope='session')
def data_root():
    return DATA
