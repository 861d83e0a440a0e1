"""A child process that dies with its parent: the kernel's lifeline (PR_SET_PDEATHSIG).

Standard library only, and the one place that makes the call: the lab host's workers, the
lab's own processes, the Markdown renderer, the embedded Redis, the launcher's children
and the tests' servers all use it. Never import Django or the project's apps here.
"""

from __future__ import annotations

import ctypes
import os
import signal
from typing import Any

PR_SET_PDEATHSIG = 1

# Looked up here, at import, in the parent: a preexec_fn then runs only the call between
# fork and exec, with no dlopen that could deadlock on a loader lock held by another thread.
_prctl: Any
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: callers keep their own second guard
    _prctl = None


def die_with_parent() -> None:
    """The kernel SIGKILLs the calling process when the thread that spawned it ends.

    Use it as a subprocess preexec_fn, or call it first thing in the child (which lets the
    parent spawn with vfork). Unlike a watchdog in the child, it also ends a stopped one.
    """
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))


def die_with(parent: int) -> bool:
    """die_with_parent() from inside the child; False when `parent` was already gone
    before the lifeline took hold (the caller should exit at once)."""
    die_with_parent()
    return os.getppid() == parent
