"""Tests of elasticity.lifeline: a child ends when its parent is killed, by the signal or by the watchdog."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from elasticity import lifeline

# A parent that starts one child and prints its pid, then waits to be killed. The child arms the lifeline
# in a preexec_fn (as `elasticity book` starts jupyter-book), or itself at start (as a worker does), with
# the parent-death signal or, where `WATCHDOG` is set, with the polling thread.
PARENT = textwrap.dedent("""
    import os, subprocess, sys, time
    from elasticity import lifeline
    how = sys.argv[1]
    if how == "preexec":
        child = subprocess.Popen(["sleep", "60"], preexec_fn=lifeline.child_preexec(os.getpid()))
    else:
        code = ("import sys, time; from elasticity import lifeline; "
                "lifeline._parent_death_signal = (lambda: False) if sys.argv[2] == 'watchdog' else "
                "lifeline._parent_death_signal; lifeline.end_with_parent(int(sys.argv[1])); time.sleep(60)")
        child = subprocess.Popen([sys.executable, "-c", code, str(os.getpid()), how])
    print(child.pid, flush=True)
    time.sleep(60)
""")


def _ended(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("how", ["preexec", "signal", "watchdog"])
def test_a_child_ends_when_its_parent_is_killed(how):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, how], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        time.sleep(1.0)  # the child has armed its lifeline
        assert not _ended(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while not _ended(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _ended(child), f"the child {child} outlived its parent ({how})"
    finally:
        if not _ended(child):
            os.kill(child, signal.SIGKILL)
        parent.kill()


def test_a_process_whose_parent_is_already_gone_exits_at_once():
    code = "import os; from elasticity import lifeline; lifeline.end_with_parent(os.getppid() + 10**6); print('ran')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stdout == ""


def test_the_parent_death_signal_is_armed_on_linux():
    if not sys.platform.startswith("linux"):
        pytest.skip("prctl is Linux-only; elsewhere the watchdog thread polls")
    code = "from elasticity import lifeline; print(lifeline._parent_death_signal())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "True"
    assert lifeline.PR_SET_PDEATHSIG == 1
