"""Tests of elasticity.parallel: the worker count from the environment, and units in worker processes."""

import math
import os

import pytest

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
