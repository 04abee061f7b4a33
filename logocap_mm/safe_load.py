"""Weights-only checkpoint loading with an allow-list that exists only while a checkpoint loads.

mmengine's Runner writes numpy arrays / scalars (``meta``, ``message_hub``) and mmengine's
``HistoryBuffer`` into its checkpoints, which ``torch.load(weights_only=True)`` refuses by
default. :func:`checkpoint_safe_globals` allows them **only inside** a ``with`` block, and
:func:`install_scoped_checkpoint_loading` puts that block around mmengine's
``CheckpointLoader.load_checkpoint``, through which ``load_from``, ``--resume``, ``mim test
--checkpoint``, ``init_model``, ``MMPoseInferencer`` and ``tools/demo.py`` all load. torch's
process-wide allow-list (``torch.serialization.get_safe_globals()``) is never changed.

Inside the block the pickle can get only checked stand-ins, never numpy's own constructors:

* ``numpy.dtype(code)``: ``code`` must be a string for a plain bool / int / float / complex /
  str / bytes dtype; object dtypes, structured (void) dtypes and everything else are refused
  with an ``UnpicklingError`` that names the dtype;
* ``numpy.core.multiarray._reconstruct`` / ``scalar``: plain ``ndarray`` of such a dtype only;
* ``getattr``: resolves nothing but ``HistoryBuffer.min / max / current / mean`` (what
  mmengine's ``HistoryBuffer.__getstate__`` writes);
* the dtype classes are allow-listed only for building (``BUILD``) under names a pickle
  cannot ask for, so a pickle cannot call e.g. ``ObjectDType`` itself.

:func:`install_history_buffer_guard` keeps loaded ``HistoryBuffer`` state from rewriting
``HistoryBuffer``'s class-wide table of statistics methods.

The allow-list is process-global while the block runs (torch has no per-call list), so
another thread calling ``torch.load`` at the same moment sees it too.
"""
import contextlib
import pickle

__all__ = ['checkpoint_safe_globals', 'safe_global_entries', 'install_scoped_checkpoint_loading',
           'install_history_buffer_guard', 'HISTORY_BUFFER_STATISTICS', 'PLAIN_DTYPE_KINDS']

#: dtype kinds a checkpoint may hold: bool, signed / unsigned int, float, complex, str, bytes
PLAIN_DTYPE_KINDS = 'biufcUS'
#: the statistics methods mmengine's HistoryBuffer registers itself (and pickles by name)
HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')
_HIDDEN = 'logocap_mm:build-only:'  # no '.': a pickle's GLOBAL can never produce this key


def _refuse(what: str, why: str):
    raise pickle.UnpicklingError(
        f'logocap_mm refused {what} in a weights-only checkpoint load: {why}. Only plain '
        'numeric numpy arrays / scalars, mmengine HistoryBuffer state and tensors are allowed.')


def _checked_dtype_from(code, what: str):
    import numpy as np
    if isinstance(code, bytes):
        code = code.decode('latin1')
    if not isinstance(code, str):
        _refuse(what, f'the dtype is given as {type(code).__name__}, not a type code string')
    try:
        dt = np.dtype(code)
    except (TypeError, ValueError) as e:
        _refuse(what, f'not a numpy dtype ({e})')
    _check_dtype(dt, what)
    return dt


def _check_dtype(dt, what: str):
    import numpy as np
    if not isinstance(dt, np.dtype):
        _refuse(what, f'expected a numpy dtype, got {type(dt).__name__}')
    if dt.kind == 'O':
        _refuse(what, 'object dtypes can hold arbitrary Python objects (raw bytes become '
                      'object pointers)')
    if dt.kind not in PLAIN_DTYPE_KINDS or dt.fields is not None or dt.subdtype is not None:
        _refuse(what, f'dtype {dt!r} is not a plain bool/int/float/complex/str/bytes dtype '
                      '(structured and object-field dtypes are not allowed)')


def _np_dtype(code, align=False, copy=False):
    """Stand-in for ``numpy.dtype`` as a pickle calls it: ``dtype(code, align, copy)``."""
    import numpy as np
    dt = _checked_dtype_from(code, f'numpy.dtype({code!r})')
    return np.dtype(dt, bool(align), bool(copy))


class _NdarrayToken:
    """What ``GLOBAL numpy.ndarray`` resolves to: accepted only by :func:`_np_reconstruct`."""

    def __repr__(self):
        return '<numpy.ndarray (logocap_mm weights-only token)>'


_NDARRAY = _NdarrayToken()


def _np_reconstruct(subtype, shape, code):
    """Stand-in for ``numpy.core.multiarray._reconstruct(ndarray, (0,), code)``."""
    import numpy as np
    if subtype is not _NDARRAY:
        _refuse(f'numpy _reconstruct({subtype!r}, ...)', 'only plain numpy.ndarray is allowed')
    if tuple(shape) != (0, ):
        _refuse(f'numpy _reconstruct(ndarray, {shape!r}, ...)', 'numpy writes shape (0,) here')
    dt = _checked_dtype_from(code, f'numpy array of dtype {code!r}')
    return np.ndarray.__new__(np.ndarray, (0, ), dt)


def _np_scalar(dtype, data=None):
    """Stand-in for ``numpy.core.multiarray.scalar(dtype, raw_bytes)``."""
    _check_dtype(dtype, f'numpy scalar of dtype {dtype!r}')
    if not isinstance(data, (bytes, str)):
        _refuse(f'numpy scalar of dtype {dtype!r}', 'its data is not raw bytes')
    return _multiarray().scalar(dtype, data)


def _multiarray():
    try:
        from numpy._core import multiarray  # numpy 2
    except ImportError:
        from numpy.core import multiarray
    return multiarray


def _history_buffer_getattr(obj, name):
    """Stand-in for ``builtins.getattr``: only ``HistoryBuffer``'s own statistics methods."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    _refuse(f'getattr({obj!r}, {name!r})', 'getattr resolves only HistoryBuffer.'
            + '/'.join(HISTORY_BUFFER_STATISTICS))


def safe_global_entries() -> list:
    """The entries :func:`checkpoint_safe_globals` allow-lists (for ``safe_globals``)."""
    import collections

    import numpy as np
    from mmengine.config import ConfigDict
    from mmengine.logging.history_buffer import HistoryBuffer
    entries = [HistoryBuffer, ConfigDict, collections.OrderedDict, collections.defaultdict,
               (_history_buffer_getattr, 'builtins.getattr'),
               (_np_dtype, 'numpy.dtype'), (_NDARRAY, 'numpy.ndarray')]
    for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        entries += [(_np_reconstruct, f'{mod}._reconstruct'), (_np_scalar, f'{mod}.scalar')]
    # BUILD of arrays and of plain dtypes needs their types in the list; the keys hold no
    # '.', so a pickle cannot fetch (and call) these classes with GLOBAL
    plain = {type(np.dtype(c)) for c in '?bhilqBHILQefdgFDGUS'}
    entries += [(cls, f'{_HIDDEN}{cls.__name__}') for cls in sorted(plain, key=str)]
    entries.append((np.ndarray, f'{_HIDDEN}ndarray'))
    return entries


@contextlib.contextmanager
def checkpoint_safe_globals():
    """``with`` block in which ``torch.load(weights_only=True)`` accepts mmengine checkpoints.

    On exit torch's allow-list is exactly what it was before (nested blocks are fine).
    """
    import torch
    scope = getattr(torch.serialization, 'safe_globals', None)
    if scope is None:  # torch < 2.5: weights_only is not the default there
        yield
        return
    with scope(safe_global_entries()):
        yield


def install_scoped_checkpoint_loading() -> bool:
    """Run mmengine's ``CheckpointLoader.load_checkpoint`` (every scheme) inside
    :func:`checkpoint_safe_globals`. Idempotent; returns True if it installed the wrapper."""
    from mmengine.runner.checkpoint import CheckpointLoader
    orig = CheckpointLoader.load_checkpoint
    if getattr(orig, '_logocap_scoped', False):
        return False
    func = orig.__func__

    def load_checkpoint(cls, *args, **kwargs):
        with checkpoint_safe_globals():
            return func(cls, *args, **kwargs)

    load_checkpoint._logocap_scoped = True
    load_checkpoint.__doc__ = func.__doc__
    CheckpointLoader.load_checkpoint = classmethod(load_checkpoint)
    return True


def install_history_buffer_guard() -> bool:
    """Make ``HistoryBuffer.__setstate__`` leave the class-wide statistics table alone.

    mmengine's version ``update``\\ s ``HistoryBuffer._statistics_methods`` with the
    ``statistics_methods`` of the loaded state, so a checkpoint could map ``'mean'`` to
    another function for every buffer of the process. Here the loaded table is dropped: the
    built-in methods are registered by the class itself, custom ones by the code that
    defines them (at import). Idempotent; returns True if it installed the guard.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if getattr(HistoryBuffer.__setstate__, '_logocap_guard', False):
        return False

    def __setstate__(self, state):
        state = dict(state)
        state.pop('statistics_methods', None)
        self._set_default_statistics()
        self.__dict__.update(state)

    __setstate__._logocap_guard = True
    HistoryBuffer.__setstate__ = __setstate__
    return True
