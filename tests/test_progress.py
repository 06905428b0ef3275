"""Tests of the progress lines of a running chapter, read from the results cache."""

import io
import re
from dataclasses import dataclass

from elasticity import progress, results


@dataclass(frozen=True)
class Toy:
    seed: int


def _square(cfg: Toy) -> dict:
    return {"value": cfg.seed ** 2}


def _units(n: int) -> list[results.Unit]:
    return [results.Unit("toy-unit", Toy(seed), _square) for seed in range(n)]


def test_a_line_per_unit_cached_with_the_count_and_the_time_left(tmp_path):
    units = _units(3)
    units[0].ensure(tmp_path)  # cached before the run: counted, never announced
    tracker = progress.Tracker("toy", progress.entries(units + units[:1], tmp_path))  # listed twice, counted once
    assert tracker.opening() == "toy: 3 units, 1 cached, 2 to compute"
    assert tracker.poll() == []
    units[2].ensure(tmp_path)
    (line,) = tracker.poll()
    assert re.fullmatch(r"toy: 2/3 units, toy-unit seed=2; \d+:\d\d so far, about \d+:\d\d left", line)
    assert tracker.poll() == []  # announced once
    units[1].ensure(tmp_path)
    (line,) = tracker.poll()
    assert line.startswith("toy: 3/3 units, toy-unit seed=1;") and line.endswith("about 0:00 left")


def test_watch_prints_the_opening_and_a_line_for_a_unit_cached_in_the_block(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    out = io.StringIO()
    units = _units(2)
    with progress.watch("toy", progress.entries(units), out=out, poll_s=0.01):
        units[1].ensure()
    lines = out.getvalue().splitlines()
    assert lines[0] == "toy: 2 units, 0 cached, 2 to compute"
    assert len(lines) == 2 and lines[1].startswith("toy: 1/2 units, toy-unit seed=1;")


def test_durations_read_as_clock_times():
    assert progress._duration(5) == "0:05" and progress._duration(754) == "12:34"
    assert progress._duration(3 * 3600 + 61) == "3:01:01"
