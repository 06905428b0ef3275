"""Benchmark the default book build: wall time and peak memory, clean (empty caches) and warm (rebuild).

Prints one JSON line and writes it to benchmarks/latest/book.json. Targets (issue 9): clean <= 1800 s (aim
1200), warm <= 30 s, peak RSS <= 4 GB, where peak RSS is the largest sum, over the build's whole process tree
(jupyter-book and its kernels), sampled every 0.2 s. The clean build starts from an empty results cache
(`ELASTICITY_CACHE`: pre-training, the SmolLM2 conversion and every experiment run) and an empty output
directory; the JSON line also gives the time the clean build spent computing the chapters' training units
before any page ran (`units_s`, from its progress lines) and each page's execution time after that, read from
Jupyter's execution cache, and the build's log is kept beside the output.

Usage: python benchmarks/book.py [--keep DIR] [--no-write | --output PATH]
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import record

from elasticity.machine import describe as describe_machine

TARGETS = {"clean_s": 1800.0, "warm_s": 30.0, "peak_rss_gb": 4.0}
LATEST = record.latest("book")


def page_seconds(output: Path) -> dict[str, float]:
    """Execution seconds of each executed page, from the build's Jupyter cache (empty if unreadable)."""
    try:
        from jupyter_cache import get_cache

        cache = get_cache(output / "_build" / ".jupyter_cache")
        return {Path(r.uri).stem: round(float(r.data.get("execution_seconds", 0.0)), 1)
                for r in cache.list_cache_records()}
    except Exception as error:  # noqa: BLE001 - a missing cache must not lose the measured wall time
        return {"unreadable": str(error)}


def units_seconds(log: Path) -> float | None:
    """Seconds `elasticity book` spent computing the chapters' units before the pages ran: the time so far of
    the last of its progress lines (`book: n/N units, ...; H:MM:SS so far, ...`); None if it computed none."""
    text = log.read_text(errors="replace")
    found = re.findall(r"book: \d+/\d+ units, [^\r\n]*?; (?:(\d+):)?(\d+):(\d+) so far", text)
    if not found:
        return None
    hours, minutes, seconds = found[-1]
    return 3600 * int(hours or 0) + 60 * int(minutes) + int(seconds)


def measured_build(output: Path, env: dict, log: Path) -> dict:
    """Run `elasticity book` once, sampling the RSS of its process tree; return wall time, peak and exit code."""
    command = [sys.executable, "-m", "elasticity.cli", "book", "--path-output", str(output)]
    start = time.perf_counter()
    with open(log, "w") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        parent = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [parent, *parent.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = process.wait()
    done.set()
    sampler.join()
    return {"wall_s": round(time.perf_counter() - start, 1), "peak_rss_gb": round(peak / 2**30, 2), "exit": code}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", help="build into this directory instead of a temporary one")
    record.add_output_options(parser, LATEST)
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="elasticity-book-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, ELASTICITY_CACHE=str(work / "cache"), ELASTICITY_SCALE="default")
    clean = measured_build(work, env, work / "clean.log")
    clean["units_s"] = units_seconds(work / "clean.log")  # the training, before any page ran
    clean["pages_s"] = page_seconds(work)
    warm = measured_build(work, env, work / "warm.log")
    peak = max(clean["peak_rss_gb"], warm["peak_rss_gb"])
    result = {
        "benchmark": "book", "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "clean": clean, "warm": warm, "logs": str(work),
        "ratios_to_target": {"clean": round(clean["wall_s"] / TARGETS["clean_s"], 3),
                             "warm": round(warm["wall_s"] / TARGETS["warm_s"], 3),
                             "peak_rss": round(peak / TARGETS["peak_rss_gb"], 3)},
        "targets": TARGETS,
        "meets_targets": {"clean <= 1800 s": bool(clean["exit"] == 0 and clean["wall_s"] <= TARGETS["clean_s"]),
                          "warm <= 30 s": bool(warm["exit"] == 0 and warm["wall_s"] <= TARGETS["warm_s"]),
                          "peak RSS <= 4 GB": bool(peak <= TARGETS["peak_rss_gb"])},
        "machine": describe_machine(), "load_average_1m": round(os.getloadavg()[0], 2),
    }
    record.emit(result, args.output)


if __name__ == "__main__":
    main()
