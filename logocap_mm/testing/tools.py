# Copyright (c) logocap_mm contributors.
"""Loading a script of the checkout's ``tools/`` folder as a module, for its tests."""
import importlib.util
import os.path as osp
from types import ModuleType

from .builders import REPO_ROOT

__all__ = ['load_tool']


def load_tool(rel_path: str, name: str = None) -> ModuleType:
    """Import ``REPO_ROOT/rel_path`` (e.g. ``'tools/benchmark.py'``) as a fresh module
    (not through ``sys.path``); ``name`` defaults to the file's stem."""
    path = osp.join(REPO_ROOT, rel_path)
    if not osp.isfile(path):
        raise ValueError(f'tool script not found: {path}')
    name = name or osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
