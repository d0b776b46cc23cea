"""Child processes of the dev server that end with it, however it ends.

A ``finally`` in the parent covers a clean exit only: ``kill -9`` (or a crash) of the dev server would leave the
embedded redis-server and the worker running, re-parented to PID 1, holding the Redis data directory and the
port. On Linux the kernel can signal a child when its parent dies (``prctl(PR_SET_PDEATHSIG)``); the child asks
for it between fork and exec, so it holds from the first instruction of the new program.

The signal goes when the *thread* that started the child ends, not the process: start children from a thread
that lives as long as they should (the main thread, or the supervisor's own thread).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def _parent_death_signal(sig: int, parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died between fork and prctl: nobody would ever signal us
        os.kill(os.getpid(), sig)


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess.Popen`` that makes the child receive ``sig`` when this process (the
    calling thread) dies; ``None`` where the kernel has no such feature (then only a clean exit stops children).
    SIGTERM lets redis-server flush its append-only file and a worker drain its batch."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()
    return lambda: _parent_death_signal(sig, parent)


def describe_exit(returncode: int) -> str:
    """``exit status 1`` or ``signal 9 (SIGKILL)`` for a ``Popen.returncode``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown"
        return f"signal {-returncode} ({name})"
    return f"exit status {returncode}"
