"""Benchmark the default book build: wall time and peak memory, clean (empty caches) and warm (rebuild).

Prints one JSON line. Targets (issue 9): clean <= 1800 s (aim 1200), warm <= 30 s, peak RSS <= 4 GB, where peak
RSS is the largest sum, over the build's whole process tree (jupyter-book and its kernels), sampled every 0.2 s.

Usage: python benchmarks/book.py [--keep DIR]   (the clean build runs in a fresh cache and output directory)
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

TARGETS = {"clean_s": 1800.0, "warm_s": 30.0, "peak_rss_gb": 4.0}


def measured_build(output: Path, env: dict) -> dict:
    """Run `elasticity book` once, sampling the RSS of its process tree; return wall time, peak and exit code."""
    command = [sys.executable, "-m", "elasticity.cli", "book", "--path-output", str(output)]
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="elasticity-book-bench-"))
    env = dict(os.environ, ELASTICITY_CACHE=str(work / "cache"), ELASTICITY_SCALE="default")
    clean = measured_build(work, env)
    warm = measured_build(work, env)
    peak = max(clean["peak_rss_gb"], warm["peak_rss_gb"])
    print(json.dumps({
        "benchmark": "book", "clean": clean, "warm": warm,
        "ratios_to_target": {"clean": round(clean["wall_s"] / TARGETS["clean_s"], 3),
                             "warm": round(warm["wall_s"] / TARGETS["warm_s"], 3),
                             "peak_rss": round(peak / TARGETS["peak_rss_gb"], 3)},
        "targets": TARGETS, "cpu_count": os.cpu_count(), "machine": platform.platform(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
