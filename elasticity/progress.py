"""Progress of a running chapter, read from the results cache: one line each time one of its units is cached.

A chapter's kernel runs out of sight (papermill, jupyter-book), so its own progress bars never reach the user.
The units it computes are written to the cache one by one, each atomically; a watcher thread beside the kernel
counts the chapter's units that are complete, and prints a line when the count grows: which unit, how many of
how many, the time so far, and the time left at this run's pace (its time per unit computed so far).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from elasticity import results, status

POLL_S = 2.0  # seconds between two looks at the cache


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class Tracker:
    """The units of a run and which of them are cached; `poll` returns a line per unit cached since the last look."""

    def __init__(self, label: str, units: list[results.Unit], cache: Path | None = None):
        self.label = label
        self.entries = {results.entry_dir(*u, cache): u for u in dict.fromkeys(units)}
        self.done = {entry for entry in self.entries if results.is_complete(entry)}
        self.cached_at_start = len(self.done)
        self.start = time.monotonic()

    @property
    def total(self) -> int:
        return len(self.entries)

    def opening(self) -> str:
        """The line before any work: units in all, already cached, to compute."""
        return (f"{self.label}: {self.total} units, {self.cached_at_start} cached, "
                f"{self.total - self.cached_at_start} to compute")

    def poll(self) -> list[str]:
        """A line for each unit found complete since the last poll."""
        lines = []
        for entry, unit in self.entries.items():
            if entry in self.done or not results.is_complete(entry):
                continue
            self.done.add(entry)
            elapsed = time.monotonic() - self.start
            computed = len(self.done) - self.cached_at_start
            left = (self.total - len(self.done)) * elapsed / computed
            lines.append(f"{self.label}: {len(self.done)}/{self.total} units, {unit.name} "
                         f"{status.describe(unit.config)}; {_duration(elapsed)} so far, "
                         f"about {_duration(left)} left")
        return lines


@contextmanager
def watch(label: str, units: list[results.Unit], *, out=None, poll_s: float = POLL_S) -> Iterator[Tracker]:
    """Print a line to `out` (standard error) for each of `units` cached while the block runs, in a daemon
    thread, and a last look when the block ends."""
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
