"""Tests of elasticity.parallel: the worker count from the environment, and units in worker processes."""

import contextlib
import math
import os

import pytest
from conftest import alive, command_line

from elasticity import parallel
from elasticity.config import UserError


def test_workers_default_to_one_and_read_the_environment(monkeypatch):
    monkeypatch.delenv(parallel.ENV, raising=False)
    assert parallel.workers() == 1
    monkeypatch.setenv(parallel.ENV, "3")
    assert parallel.workers() == 3


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5", ""])
def test_bad_worker_counts_are_refused_in_one_line(monkeypatch, text):
    monkeypatch.setenv(parallel.ENV, text)
    with pytest.raises(UserError, match=r"ELASTICITY_WORKERS = .*must be a positive integer"):
        parallel.workers()
    with pytest.raises(UserError, match="workers = 0"):
        list(parallel.map_unordered(math.factorial, [3], 0, "test"))


def test_one_worker_runs_in_order_in_this_process():
    seen = []
    assert list(parallel.map_unordered(lambda n: seen.append(n) or n * n, [3, 1, 2], 1, "test")) == [9, 1, 4]
    assert seen == [3, 1, 2]


def test_worker_processes_compute_every_item_and_raise_the_first_error():
    assert sorted(parallel.map_unordered(math.factorial, [5, 3, 4, 0], 2, "test")) == [1, 6, 24, 120]
    with pytest.raises(ValueError, match="negative"):
        list(parallel.map_unordered(math.factorial, [3, -1, 4], 2, "test"))


def test_a_worker_that_dies_is_reported_in_one_line():
    with pytest.raises(RuntimeError, match=r"a worker process of 'test' died .* fewer than 2 workers"):
        list(parallel.map_unordered(os._exit, [1, 1], 2, "test"))


class _Memory:
    def __init__(self, available_gib: float):
        self.available = int(available_gib * 2**30)


def test_workers_are_limited_by_cores_and_memory(monkeypatch):
    import psutil

    monkeypatch.setattr(parallel, "cores", lambda: 8)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: _Memory(20))
    # each worker computes with the pinned thread count (2), so it takes two cores
    assert parallel.max_workers("tiny", "cpu") == (4, "8 cores, 2 per worker")
    parallel.check_fits(4, "tiny", "cpu")
    with pytest.raises(UserError, match=r"^5 worker processes do not fit this machine: at most 4 \(8 cores, 2 per "
                                        r"worker\); give --workers or ELASTICITY_WORKERS 4 or fewer$"):
        parallel.check_fits(5, "tiny", "cpu")
    monkeypatch.setenv("ELASTICITY_NATIVE_KERNELS", "1")  # opted out: threads are not pinned, one core a worker
    assert parallel.max_workers("tiny", "cpu") == (8, "8 cores, 1 per worker")
    monkeypatch.delenv("ELASTICITY_NATIVE_KERNELS")
    monkeypatch.setattr(parallel, "cores", lambda: 16)
    # SmolLM2-135M trains in float32 on a CPU: about 3.2 GiB a worker; 20 GiB less the kernel's 0.75 hold 6
    most, reason = parallel.max_workers("smollm2-135m", "cpu")
    assert most == 6
    assert reason == "20.0 GiB of memory available, about 3.2 GiB per worker of family 'smollm2-135m' on cpu"
    with pytest.raises(UserError, match=r"at most 6 \(20\.0 GiB of memory available"):
        parallel.check_fits(7, "smollm2-135m", "cpu")
    parallel.check_fits(1, "llama2-7b", "cpu")  # one: no worker process (models.load refuses what cannot fit)


def test_the_cpu_estimate_uses_the_width_models_train_in_on_a_cpu():
    import torch

    from elasticity import models

    for family in models.FAMILIES.values():
        assert models.dtype_for(family, "cpu") == torch.float32
    assert parallel.CPU_WEIGHT_BYTES == torch.float32.itemsize


# A parent that runs two sleeping units in worker processes and waits to be killed.
PARENT = """
import time
from elasticity import parallel
list(parallel.map_unordered(time.sleep, [60, 60], 2, "test"))
"""


def test_workers_end_when_their_parent_is_killed():
    import signal
    import subprocess
    import sys
    import time

    import psutil

    parent = subprocess.Popen([sys.executable, "-c", PARENT], stderr=subprocess.DEVNULL)
    tree = psutil.Process(parent.pid)
    children = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            children = tree.children(recursive=True)
            if sum("spawn_main" in command_line(c) for c in children) == 2:
                break
            time.sleep(0.2)
        assert sum("spawn_main" in command_line(c) for c in children) == 2, "the workers did not start"
        time.sleep(1.0)  # the workers have run their initializer
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        psutil.wait_procs(children, timeout=5)
        survivors = alive(children)
        assert not survivors, f"outlived their parent: {[command_line(p) for p in survivors]}"
    finally:  # leave nothing behind, whatever failed
        parent.kill()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
