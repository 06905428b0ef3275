"""Processes that end with the process that started them, however it ended (`kill -9` included).

A worker process or a `jupyter-book` build left running after its parent is gone keeps the cores and the
memory for as long as its work takes. On Linux the kernel delivers SIGKILL to a process whose parent
ends (`prctl(PR_SET_PDEATHSIG)`, kept across `exec`); elsewhere a daemon thread polls the parent's pid.
Notebook kernels need nothing from here: ipykernel polls the pid of the process that launched it
(`JPY_PARENT_PID`, set by jupyter_client) and exits a second after that process is gone.
"""

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
POLL_S = 0.5


def _parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent ends; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_S)
    os._exit(1)


def end_with_parent(parent_pid: int, *, watchdog: bool = True) -> None:
    """End this process at once when the process `parent_pid` that started it is gone.

    Args:
        parent_pid: the pid of the parent as the parent saw it (`os.getpid()` there, before starting us).
        watchdog: where the parent-death signal is unavailable, poll in a daemon thread (pass False in a
            `preexec_fn`, where the thread would not survive `exec`).
    """
    armed = _parent_death_signal()
    if os.getppid() != parent_pid:  # the parent ended before the signal was armed
        os._exit(1)
    if not armed and watchdog:
        threading.Thread(target=_watch, args=(parent_pid,), name="lifeline", daemon=True).start()


def child_preexec(parent_pid: int):
    """A `subprocess.Popen(preexec_fn=...)` that makes the child end with `parent_pid` (this process)."""
    return lambda: end_with_parent(parent_pid, watchdog=False)
