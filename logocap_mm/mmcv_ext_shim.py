"""``mmcv._ext`` stand-in for mmcv-lite, importable without torch, mmcv or logocap_mm.

MMPose imports ``mmcv.ops`` at module level in a few heads (e.g. EDPose), so with mmcv-lite
(no compiled ops) ``from mmpose.apis import MMPoseInferencer`` fails with
``No module named 'mmcv._ext'`` before a config's ``custom_imports`` can load logocap_mm.
This module only uses the standard library, so a ``.pth`` file in the environment's
site-packages (written by ``tools/install_env.sh`` for mmcv-lite, see :func:`write_pth`)
can load it at interpreter start; :func:`install_finder` then appends a meta-path finder
that answers for ``mmcv._ext`` only, and only after every other finder found no real one,
so a full mmcv is never shadowed. Nothing is imported eagerly.

Any op of the stand-in that is *called* raises ``NotImplementedError`` naming the op.
"""
import importlib.abc
import importlib.machinery
import os
import sys
import types

NAME = 'mmcv._ext'
PTH_NAME = 'logocap_mm_mmcv_ext.pth'


def is_stub(module) -> bool:
    """True if ``module`` is this stand-in (not mmcv's compiled extension)."""
    return bool(getattr(module, '__logocap_stub__', False))


def make_stub() -> types.ModuleType:
    """A new ``mmcv._ext`` module whose every attribute is an op that raises when called."""
    stub = types.ModuleType(NAME)
    stub.__doc__ = 'logocap_mm stand-in for mmcv-lite: compiled ops are unavailable.'
    stub.__logocap_stub__ = True

    def _getattr(name):
        if name.startswith('__'):
            raise AttributeError(name)

        def _missing(*args, **kwargs):
            raise NotImplementedError(
                f'mmcv op "{name}" needs full mmcv with compiled ops; this environment '
                'has mmcv-lite (LOGO-CAP itself needs none). Rebuild the environment '
                'with `MMCV=full make test` to get them.')
        _missing.__name__ = name
        return _missing

    stub.__getattr__ = _getattr
    # mmengine's mmcv_full_available() calls pkgutil.find_loader('mmcv._ext'); a spec with
    # loader=None makes it report False, as for an environment without the extension.
    stub.__spec__ = importlib.machinery.ModuleSpec(NAME, None)
    return stub


class MmcvExtFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Last-resort finder/loader for ``mmcv._ext``; ignores every other module name."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != NAME:
            return None
        return importlib.machinery.ModuleSpec(NAME, self)

    def create_module(self, spec):
        return make_stub()

    def exec_module(self, module):
        module.__spec__ = importlib.machinery.ModuleSpec(NAME, None)


def install_finder() -> bool:
    """Append the finder to ``sys.meta_path`` once; returns True if it was added."""
    if any(isinstance(f, MmcvExtFinder) for f in sys.meta_path):
        return False
    sys.meta_path.append(MmcvExtFinder())
    return True


def install_stub() -> bool:
    """Make ``import mmcv._ext`` work now; True if the stand-in (not the real op) is used."""
    if NAME not in sys.modules:
        install_finder()
        try:
            __import__(NAME)
        except ImportError:  # mmcv itself is not installed
            sys.modules[NAME] = make_stub()
    return is_stub(sys.modules[NAME])


def pth_line(module_file: str = __file__) -> str:
    """The one ``.pth`` line that loads this file by path and installs the finder.

    Loading by path keeps ``logocap_mm/__init__`` (torch, MMPose) out of interpreter start;
    the module is registered as ``logocap_mm.mmcv_ext_shim`` so that logocap_mm reuses it.
    A missing file (plugin removed) is skipped silently.
    """
    f = os.path.abspath(module_file)
    code = ('import os, sys, importlib.util as u\n'
            f'f = {f!r}\n'
            'if os.path.isfile(f) and "logocap_mm.mmcv_ext_shim" not in sys.modules:\n'
            '    s = u.spec_from_file_location("logocap_mm.mmcv_ext_shim", f)\n'
            '    m = u.module_from_spec(s)\n'
            '    sys.modules[s.name] = m\n'
            '    s.loader.exec_module(m)\n'
            '    m.install_finder()\n')
    return f'import sys; exec({code!r})\n'


def write_pth(site_dir: str) -> str:
    """Write :data:`PTH_NAME` into ``site_dir`` atomically; returns its path."""
    path = os.path.join(site_dir, PTH_NAME)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as fh:
        fh.write(pth_line())
    os.replace(tmp, path)
    return path


if __name__ == '__main__':
    # python logocap_mm/mmcv_ext_shim.py SITE_DIR   (tools/install_env.sh, mmcv-lite only)
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit('usage: python logocap_mm/mmcv_ext_shim.py SITE_PACKAGES_DIR')
    print(write_pth(sys.argv[1]))
