"""Weights-only checkpoint loading: the allow-list exists only while a checkpoint loads, numpy
object / structured dtypes are refused, and loaded HistoryBuffer state cannot change the class."""
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import logocap_mm  # noqa: F401
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint

from logocap_mm.testing import REPO_ROOT as ROOT


def _run(code):
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_import_does_not_change_torch_allow_list(tmp_path):
    """``get_safe_globals()`` is the same before and after ``import logocap_mm`` and after a
    Runner-style checkpoint (numpy meta, HistoryBuffer) was loaded through mmengine."""
    r = _run(f"""
        import numpy as np, torch
        import torch._dynamo, torch.distributed.tensor, mmengine.runner  # torch's own entries
        before = sorted(map(str, torch.serialization.get_safe_globals()))
        import logocap_mm, mmpose.apis
        after_import = sorted(map(str, torch.serialization.get_safe_globals()))
        from mmengine.logging import MessageHub
        from mmengine.runner.checkpoint import _load_checkpoint
        hub = MessageHub.get_instance('t')
        hub.update_scalar('train/loss', np.float64(0.5))
        torch.save(dict(meta=dict(s=np.array([0.1], np.float32)), message_hub=hub.state_dict(),
                        state_dict={{}}), {str(tmp_path / 'c.pth')!r})
        c = _load_checkpoint({str(tmp_path / 'c.pth')!r}, map_location='cpu')
        assert c['meta']['s'].tolist() == [np.float32(0.1)]
        after_load = sorted(map(str, torch.serialization.get_safe_globals()))
        print('SAME', before == after_import == after_load)
        print('FOREIGN', [g for g in after_load if 'numpy' in g or 'mmengine' in g
                          or 'getattr' in g or 'logocap' in g])
        """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'SAME True' in r.stdout and 'FOREIGN []' in r.stdout, r.stdout


class _Reduce:
    """Pickles as ``func(*args)`` followed by ``BUILD state`` (a hand-made pickle)."""

    def __init__(self, func, args, state=None):
        self.r = (func, args) if state is None else (func, args, state)

    def __reduce__(self):
        return self.r


def _multiarray():
    try:
        from numpy._core import multiarray
    except ImportError:
        from numpy.core import multiarray
    return multiarray


def _forged_object_array():
    """A void dtype with an object field, flags 0 (no list pickle) and raw bytes as data: with
    numpy's own constructors the bytes become an object pointer."""
    obj_field = _Reduce(np.dtype, ('O8', False, True), (3, '|', None, None, None, -1, -1, 63))
    dt = _Reduce(np.dtype, ('V8', False, True),
                 (3, '|', None, ('a', ), {'a': (obj_field, 0)}, 8, 1, 0))
    return _Reduce(_multiarray()._reconstruct, (np.ndarray, (0, ), b'b'),
                   (1, (1, ), dt, False, b'\x41' * 8))


@pytest.mark.parametrize('payload,match', [
    (lambda: np.array([{'a': 1}], dtype=object), r"numpy\.dtype\('O8'\).*object"),
    (lambda: np.zeros(2, dtype=[('a', 'O'), ('b', 'f8')]), r"numpy\.dtype\('V16'\)"),
    (_forged_object_array, r"numpy\.dtype\('V8'\)"),
    (lambda: _Reduce(_multiarray()._reconstruct, (np.ndarray, (0, ), b'O')),
     r"numpy array of dtype b?'O'"),
    (lambda: _Reduce(_multiarray().scalar, (np.dtype('O'), 1)), r"numpy\.dtype\('O8'\)"),
], ids=['object-array', 'object-field', 'forged-pointer', 'reconstruct-O', 'object-scalar'])
def test_numpy_object_dtypes_are_refused_naming_them(tmp_path, payload, match):
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'meta': {'x': payload()}}, path)
    with pytest.raises(pickle.UnpicklingError, match=match):
        _load_checkpoint(path, map_location='cpu')


def test_plain_numpy_values_load(tmp_path):
    vals = dict(f=np.array([[0.5, 1.5]], np.float32), i=np.arange(3), b=np.array([True]),
                c=np.array([1 + 2j]), u=np.array(['ab']), s=np.float64(2.5), n=np.int64(-3),
                t=np.bool_(False), h=np.float16(1.0))
    path = str(tmp_path / 'ok.pth')
    torch.save({'state_dict': {'w': torch.ones(1)}, 'meta': vals}, path)
    got = _load_checkpoint(path, map_location='cpu')['meta']
    for k, v in vals.items():
        assert type(got[k]) is type(v) and np.array_equal(got[k], v), k
        assert np.asarray(got[k]).dtype == np.asarray(v).dtype, k


def test_history_buffer_state_cannot_rewrite_the_class_table(tmp_path, monkeypatch):
    table = HistoryBuffer._statistics_methods
    saved = dict(table)
    HistoryBuffer()  # registers the built-in statistics
    state = dict(max_length=10, _log_history=np.array([1., 5.]),
                 _count_history=np.array([1, 1]),
                 statistics_methods={'mean': HistoryBuffer.max})  # pickled as getattr(...)
    path = str(tmp_path / 'hub.pth')
    with monkeypatch.context() as m:  # a HistoryBuffer whose pickled state is ``state``
        m.setattr(HistoryBuffer, '__getstate__', lambda self: state)
        torch.save({'message_hub': {'b': HistoryBuffer()}}, path)
    try:
        buf = _load_checkpoint(path, map_location='cpu')['message_hub']['b']
        assert isinstance(buf, HistoryBuffer)
        assert table['mean'] is HistoryBuffer.mean
        assert buf.mean() == 3.0 and HistoryBuffer([2., 4.], [1, 1]).mean() == 3.0
        assert buf.max() == 5.0
    finally:
        table.clear()
        table.update(saved)


def test_allow_list_is_gone_outside_checkpoint_loading(tmp_path):
    """The same Runner-style file: mmengine's loader reads it, a bare torch.load refuses."""
    path = str(tmp_path / 'm.pth')
    torch.save({'meta': {'seed': np.int64(1)}}, path)
    assert _load_checkpoint(path, map_location='cpu')['meta']['seed'] == 1
    with pytest.raises(pickle.UnpicklingError, match='numpy'):
        torch.load(path, map_location='cpu', weights_only=True)
