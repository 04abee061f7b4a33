import os
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA = osp.join(ROOT, 'tests', 'data')


def fixtures_dir():
    """Folder of the reference parity fixture (env ``LOGOCAP_FIXTURES``)."""
    return os.environ.get('LOGOCAP_FIXTURES',
                          osp.join(ROOT, '..', 'shared', 'fixtures'))


def _missing(msg):
    """A missing fixture folder (or one without per-image files) fails under env CI."""
    if os.environ.get('CI'):
        pytest.fail(f'{msg} (set LOGOCAP_FIXTURES)')
    pytest.skip(msg)


@pytest.fixture(scope='session')
def fixture_dir():
    d = fixtures_dir()
    if not osp.isdir(d):
        _missing(f'parity fixture folder missing: {d}')
    return d


def pytest_generate_tests(metafunc):
    """``fixture_image``: one test per per-image file ``(path, test size)`` of the folder."""
    if 'fixture_image' not in metafunc.fixturenames:
        return
    from logocap_mm.testing import image_files
    d = fixtures_dir()
    files = image_files(d) if osp.isdir(d) else []
    if files:
        metafunc.parametrize('fixture_image', files, indirect=True,
                             ids=[osp.splitext(osp.basename(p))[0] for p, _ in files])
    else:
        metafunc.parametrize('fixture_image', [None], indirect=True, ids=['no-image-files'])


@pytest.fixture
def fixture_image(request, fixture_dir):
    if request.param is None:
        _missing(f'fixture folder {fixture_dir} has no per-image .npz file')
    return request.param


@pytest.fixture(scope='session')
def fixture_file(fixture_dir):
    """``fixture_file(name, stage)``: path of a file of the folder; skips naming it if absent."""
    from logocap_mm.testing import missing_file

    def get(name, stage):
        reason = missing_file(fixture_dir, name, stage)
        if reason:
            pytest.skip(reason)
        return osp.join(fixture_dir, name)
    return get


@pytest.fixture(scope='session')
def require():
    """``require(path, keys, stage)``: skip naming the keys of ``keys`` the file lacks."""
    from logocap_mm.testing import missing_keys

    def check(path, keys, stage):
        reason = missing_keys(path, keys, stage)
        if reason:
            pytest.skip(reason)
    return check


@pytest.fixture(scope='session')
def data_root():
    return DATA
