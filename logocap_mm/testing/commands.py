# Copyright (c) logocap_mm contributors.
"""Running the environment's commands (``mim``, python) on the checkout, for the end-to-end
tests: one way of setting their environment everywhere."""
import os
import os.path as osp
import subprocess
import sys
from typing import List, Tuple

from .builders import REPO_ROOT

__all__ = ['BIN', 'command_env', 'run_command', 'mim']

BIN = osp.dirname(sys.executable)  # the environment's bin/ (mim, python)


def command_env(**extra) -> dict:
    """The current environment with the venv's ``bin`` first on ``PATH``, without
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` (checkpoints must load weights-only), unbuffered
    output, plus ``extra``."""
    env = dict(os.environ)
    env['PATH'] = BIN + os.pathsep + env.get('PATH', '')
    env.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    env.setdefault('PYTHONUNBUFFERED', '1')
    env.update(extra)
    return env


def run_command(args: List[str], timeout: float = 300, **env) -> Tuple[int, str]:
    """Run a command in the repository root; ``(returncode, stdout + stderr)``."""
    p = subprocess.run(args, cwd=REPO_ROOT, env=command_env(**env), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return p.returncode, p.stdout


def mim(*args: str, timeout: float = 300) -> Tuple[int, str]:
    """``mim ARGS...`` of the environment, in the repository root."""
    return run_command([osp.join(BIN, 'mim'), *args], timeout=timeout)
