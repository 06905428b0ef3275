"""Progress of a running chapter, read from the results cache: one line each time one of its units is cached.

A chapter's kernel runs out of sight (papermill, jupyter-book), so its own progress bars never reach the user.
The units it computes are written to the cache one by one, each atomically; a watcher thread beside the kernel
counts the chapter's units that are complete, and prints a line when the count grows: which unit, how many of
how many, the time so far, and the time left at this run's pace (its time per unit computed so far).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from elasticity import results

POLL_S = 2.0  # seconds between two looks at the cache


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class Entry(NamedTuple):
    """A unit as progress sees it: where the cache keeps it, and its name in a line."""

    path: Path
    label: str


def entries(units: list[results.Unit], cache: Path | None = None) -> list[Entry]:
    """The cache entries of `units` (each once), named by kind and the fields that tell them apart."""
    from elasticity import status  # it reads the experiments (and torch): not needed to watch entries

    return [Entry(u.entry(cache), f"{u.name} {status.describe(u.config)}".strip())
            for u in dict.fromkeys(units)]


def write_entries(found: list[Entry], path: Path) -> None:
    """Keep entries in a JSON file (for a process that watches without importing the experiments)."""
    path.write_text(json.dumps([[str(e.path), e.label] for e in found]))


def read_entries(path: Path) -> list[Entry]:
    """The entries `write_entries` kept."""
    return [Entry(Path(p), label) for p, label in json.loads(path.read_text())]


class Tracker:
    """The units of a run and which of them are cached; `poll` returns a line per unit cached since the last look."""

    def __init__(self, label: str, units: list[Entry]):
        self.label = label
        self.units = list(dict.fromkeys(units))
        self.done = {u for u in self.units if results.is_complete(u.path)}
        self.cached_at_start = len(self.done)
        self.start = time.monotonic()

    @property
    def total(self) -> int:
        return len(self.units)

    def opening(self) -> str:
        """The line before any work: units in all, already cached, to compute."""
        return (f"{self.label}: {self.total} units, {self.cached_at_start} cached, "
                f"{self.total - self.cached_at_start} to compute")

    def poll(self) -> list[str]:
        """A line for each unit found complete since the last poll."""
        lines = []
        for unit in self.units:
            if unit in self.done or not results.is_complete(unit.path):
                continue
            self.done.add(unit)
            elapsed = time.monotonic() - self.start
            computed = len(self.done) - self.cached_at_start
            left = (self.total - len(self.done)) * elapsed / computed
            lines.append(f"{self.label}: {len(self.done)}/{self.total} units, {unit.label}; "
                         f"{_duration(elapsed)} so far, about {_duration(left)} left")
        return lines


@contextmanager
def watch(label: str, units: list[Entry], *, out=None, poll_s: float = POLL_S) -> Iterator[Tracker]:
    """Print a line to `out` (standard error) for each of `units` (`entries`) cached while the block runs, in a
    daemon thread, and a last look when the block ends."""
    out = out or sys.stderr
    tracker = Tracker(label, units)
    print(tracker.opening(), file=out, flush=True)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(poll_s):
            for line in tracker.poll():
                print(line, file=out, flush=True)

    thread = threading.Thread(target=loop, name="elasticity-progress", daemon=True)
    thread.start()
    try:
        yield tracker
    finally:
        stop.set()
        thread.join()
        for line in tracker.poll():
            print(line, file=out, flush=True)
