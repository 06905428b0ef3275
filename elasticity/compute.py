"""Computing the chapters' training units ahead of their pages: what `elasticity compute` and `elasticity book` run.

A chapter's page reads its units from the results cache (`status.chapter_units`); computed here first, one by one,
each cached as it finishes, they leave the pages nothing to train, so no cell of a build waits on training and
an interrupted build resumes at the first unit it had not finished.
"""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

from elasticity import lifeline


def compute_units(chapter: str, workers: int = 1, *, watch: bool = True) -> int:
    """Compute the training units `chapter` reads with its default parameters at the current scale
    (`status.chapter_units`) that are not cached, one by one (in `workers` processes), each cached as it
    finishes, with a progress line per unit where `watch`. The chapter's pages then only read them: no cell of a
    build waits on training, and an interrupted run resumes at the first unit it had not finished.

    Returns:
        How many units were computed.
    """
    from elasticity import parallel, progress, results, status

    units = [u for u in dict.fromkeys(status.chapter_units(chapter)) if not u.is_cached()]
    if not units:
        return 0
    with progress.watch(chapter, progress.entries(units)) if watch else contextlib.nullcontext():
        for _ in parallel.map_unordered(results.Unit.ensure, units, workers, f"{chapter} units"):
            pass
    return len(units)


def compute_all(log: Path) -> int:
    """`elasticity compute` for every chapter, in a child process that ends with this one (which stays without
    torch while the build runs under it); its output, the progress bars of its training loops included, goes to
    `log`. Returns its exit code."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as sink:
        return subprocess.call([sys.executable, "-m", "elasticity.cli", "compute", "--no-progress"], stdout=sink,
                               stderr=subprocess.STDOUT, preexec_fn=lifeline.child_preexec(os.getpid()))


def log_tail(log: Path, lines: int = 25) -> str:
    """The last `lines` lines of a log, each progress bar's refreshes (carriage returns) down to its last one."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.splitlines()[-lines:])
