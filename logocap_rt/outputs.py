"""The rules every logocap tool follows when it writes a file (numpy-free, stdlib only).

* Output names: a result is named after the input's full file name, extension included
  (``a.jpg`` -> ``a.jpg.json``; the drawing keeps the name ``a.jpg``), so ``a.jpg`` and
  ``a.png`` of one folder keep two results. Two inputs that would still write the same
  output (the same file name in two folders, or names that differ in case only, which
  are one file on case-insensitive file systems) are refused before anything runs.
* An output is refused (``ValueError`` naming both paths) if it resolves to an input
  (same path, a symlink or a hard link to it), or if it exists and is not a regular file
  (a directory, a device such as ``/dev/null``, a FIFO, a socket).
* Files are written atomically: into a temporary file in the same folder, then renamed
  over the target, with the permissions a plain ``open(path, 'w')`` would give
  (``0o666 & ~umask``). A failed or interrupted write leaves the old file (or none).
* The output folder must be a folder (created if missing) that this process can write to;
  otherwise one ``ValueError`` line says why.
"""
import contextlib
import json
import os
import os.path as osp
import stat
import tempfile
from typing import Callable, Dict, Iterable, Optional, Sequence, Union

__all__ = ['json_text', 'same_file', 'check_output', 'check_out_dir', 'atomic_write', 'temp_path',
           'publish', 'result_names', 'partial_name', 'InputSet']


def _plain(obj):
    """numpy scalars / arrays (anything with ``tolist``) -> Python values for JSON."""
    if hasattr(obj, 'tolist'):
        return obj.tolist()
    raise TypeError(f'Object of type {type(obj).__name__} is not JSON serializable')


def json_text(obj, indent: int = 2, sort_keys: bool = False) -> str:
    """``obj`` as indented JSON text; numpy scalars and arrays become numbers and lists."""
    return json.dumps(obj, indent=indent, sort_keys=sort_keys, default=_plain)


def same_file(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are one file: same inode if both exist (symlinks, hard links),
    else the same resolved path."""
    try:
        if osp.exists(a) and osp.exists(b):
            return osp.samefile(a, b)
    except OSError:
        pass
    return osp.realpath(a) == osp.realpath(b)


class InputSet:
    """The files a run reads (images, videos, the model, configs): no output may be one.

    Looked up by inode (symlinks, hard links) and by resolved path, in constant time per
    query (a folder of many images stays fast)."""

    def __init__(self, paths: Iterable[Optional[str]] = ()):
        self._by_inode: Dict[tuple, str] = {}
        self._by_path: Dict[str, str] = {}
        self.add(*paths)

    @staticmethod
    def _inode(path: str) -> Optional[tuple]:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def add(self, *paths: Optional[str]) -> None:
        for p in paths:
            if p is None or _is_stream(str(p)):
                continue
            p = str(p)
            key = self._inode(p)
            if key is not None:
                self._by_inode.setdefault(key, p)
            self._by_path.setdefault(osp.realpath(p), p)

    def which(self, path: str) -> Optional[str]:
        """The input that ``path`` resolves to, or None."""
        key = self._inode(path)
        if key is not None and key in self._by_inode:
            return self._by_inode[key]
        return self._by_path.get(osp.realpath(path))


def _is_stream(src: str) -> bool:
    """Camera indices and URLs are not files."""
    return src.isdigit() or '://' in src


def check_output(path: str, inputs: Optional[InputSet] = None, what: str = 'output') -> None:
    """Refuse ``path`` as an output: it is (or links to) an input, or it exists and is not a
    regular file, or its folder is not a folder.

    Raises:
        ValueError: one line naming ``path`` and the reason.
    """
    if inputs is not None:
        hit = inputs.which(path)
        if hit is not None:
            raise ValueError(f'{what} {path} is the input {hit} (same path, a symlink or a '
                             'hard link): writing it would destroy the input; choose another '
                             'output path')
    if osp.lexists(path):
        try:
            mode = os.stat(path).st_mode  # follows a symlink: what would be replaced
        except OSError:
            mode = os.lstat(path).st_mode  # a dangling symlink: replaced itself
        if stat.S_ISDIR(mode):
            raise ValueError(f'{what} {path} is a directory; give the path of a file')
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            raise ValueError(f'{what} {path} exists and is not a regular file (a device, FIFO '
                             'or socket); refusing to replace it')
    parent = osp.dirname(osp.abspath(path))
    while not osp.exists(parent):  # the first existing ancestor must be a folder
        parent = osp.dirname(parent)
    if not osp.isdir(parent):
        raise ValueError(f'{what} {path}: {parent} is not a directory')


def check_out_dir(path: str, create: bool = True, what: str = '--out-dir') -> str:
    """Make sure ``path`` is a writable folder (created with its parents if missing).

    Raises:
        ValueError: one line: ``path`` is a file, cannot be created or is not writable.
    """
    if osp.exists(path) and not osp.isdir(path):
        raise ValueError(f'{what} {path} exists and is not a directory')
    if not osp.exists(path):
        if not create:
            raise ValueError(f'{what} {path} does not exist')
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as e:
            raise ValueError(f'{what} {path} cannot be created: '
                             f'{e.strerror or type(e).__name__}') from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f'{what} {path} is not writable')
    return path


def _normal_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def temp_path(path: str, suffix: Optional[str] = None) -> str:
    """A new empty temporary file next to ``path`` (``.NAME.XXXX.tmp`` + ``suffix``; give the
    target's extension as ``suffix`` for writers that choose the format by it)."""
    fd, tmp = tempfile.mkstemp(dir=osp.dirname(osp.abspath(path)),
                               prefix=f'.{osp.basename(path)}.', suffix='.tmp' + (suffix or ''))
    os.close(fd)
    return tmp


def publish(tmp: str, path: str, inputs: Optional[InputSet] = None) -> str:
    """Rename the finished temporary file ``tmp`` over ``path`` (checked again just before,
    normal permissions); ``tmp`` is removed if that fails."""
    try:
        check_output(path, inputs)
        os.chmod(tmp, _normal_mode())  # mkstemp's 0600 -> the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def atomic_write(path: str, data: Union[bytes, str, Callable], inputs: Optional[InputSet] = None,
                 fsync: bool = False) -> str:
    """Write ``data`` (bytes, text, or a callable ``write(binary_file)``) to ``path``
    atomically after :func:`check_output`; on any error ``path`` is left as it was."""
    check_output(path, inputs)
    tmp = temp_path(path)
    try:
        with open(tmp, 'wb') as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode('utf-8') if isinstance(data, str) else data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return publish(tmp, path, inputs)


def result_names(inputs: Sequence[str]) -> Dict[str, str]:
    """``input path -> output base name`` (its full file name, e.g. ``a.jpg``).

    Raises:
        ValueError: two different inputs would get the same name (compared case-insensitively);
            both are named.
    """
    seen: Dict[str, str] = {}
    out: Dict[str, str] = {}
    for p in inputs:
        name = osp.basename(osp.normpath(p)) if not _is_stream(p) else _stream_name(p)
        key = name.casefold()
        if key in seen and not same_file(seen[key], p):
            raise ValueError(f'{p} and {seen[key]} would write the same outputs ({name}); '
                             'run them separately or rename one')
        seen.setdefault(key, p)
        out[p] = name
    return out


def _stream_name(src: str) -> str:
    """Output name of a camera index (``camera0``) or a URL (its last path part)."""
    if src.isdigit():
        return f'camera{src}'
    tail = src.split('://', 1)[1].split('?', 1)[0].rstrip('/')
    name = tail.rsplit('/', 1)[-1] if '/' in tail else tail
    return ''.join(c if c.isalnum() or c in '._-' else '_' for c in name) or 'stream'


def partial_name(path: str) -> str:
    """Name of the outputs of an interrupted run: ``clip.mp4`` -> ``clip.partial.mp4``,
    ``clip.mp4.json`` -> ``clip.mp4.partial.json`` (a complete earlier result is kept)."""
    root, ext = osp.splitext(path)
    return f'{root}.partial{ext}'
