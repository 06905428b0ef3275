"""Which settings still change the numbers: bitwise identity of a smoke-scale rebound run under each candidate.

Runs `elasticity run rebound` at smoke scale once per candidate (an inherited thread count, hash seed, allocator, worker
processes, an inherited kernel level, a later rerun, and the unpinned native kernels as the control that must
differ), each in a fresh process tree with an empty cache, and compares every cached unit's result with the
baseline's byte for byte. Prints one JSON line and writes it to benchmarks/latest/identity.json.

Usage: python benchmarks/identity.py [--keep DIR] [--no-write | --output PATH]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import record

from elasticity import numerics, parallel
from elasticity.machine import describe as describe_machine

LATEST = record.latest("identity")
UNIT_KINDS = ("rebound-base", "rebound-unit")
# name -> environment added to the baseline's; "native" opts out of pinning and is expected to differ.
CANDIDATES = {
    "inherited_threads_1": {"OMP_NUM_THREADS": "1"},
    "hash_seed_12345": {"PYTHONHASHSEED": "12345"},
    "malloc_one_arena_perturbed": {"MALLOC_ARENA_MAX": "1", "MALLOC_PERTURB_": "85"},
    "workers_2": {"ELASTICITY_WORKERS": "2"},
    "inherited_default_kernels": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"},
    "rerun_later": {},
    "native_kernels": {numerics.OPT_OUT: "1"},
}


def unit_results(cache: Path) -> dict[str, str]:
    """The cached units of a rebound run: '<kind>/<config key>' -> result.json text (the code key is dropped,
    since it is the same for every run of one checkout)."""
    return {f"{kind}/{p.parent.name.split('-')[0]}": p.read_text()
            for kind in UNIT_KINDS for p in sorted((cache / "results" / kind).glob("*/result.json"))}


def identical(base: dict[str, str], other: dict[str, str]) -> int:
    """How many of the baseline's units the other run reproduced byte for byte."""
    return sum(other.get(key) == text for key, text in base.items())


def fits(extra: dict[str, str]) -> bool:
    """Whether this machine holds the candidate's worker processes (each takes the pinned threads' cores)."""
    return int(extra.get(parallel.ENV, "1")) <= parallel.max_workers("tiny", "cpu")[0]


def run(work: Path, name: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (*numerics.PINNED, numerics.OPT_OUT, "ELASTICITY_WORKERS")}
    env.update({"ELASTICITY_SCALE": "smoke", "ELASTICITY_CACHE": str(work / name), "HF_HUB_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONHASHSEED": "0", **extra})
    command = [sys.executable, "-m", "elasticity.cli", "run", "rebound", "--out", str(work / f"out-{name}"),
               "--no-progress"]
    with open(work / f"{name}.log", "w") as log:
        subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    return unit_results(work / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", help="run in this directory instead of a temporary one")
    record.add_output_options(parser, LATEST)
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="elasticity-identity-"))
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    base = run(work, "baseline", {})
    counts = {name: identical(base, run(work, name, extra)) for name, extra in CANDIDATES.items() if fits(extra)}
    result = {
        "benchmark": "identity", "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "units": len(base), "identical_units": counts,
        "changes_the_numbers": sorted(name for name, count in counts.items() if count < len(base)),
        "not_run_here": sorted(set(CANDIDATES) - set(counts)),  # more workers than this machine holds
        "wall_s": round(time.perf_counter() - start, 1), "logs": str(work),
        "pinned": dict(numerics.PINNED), "machine": describe_machine(),
    }
    record.emit(result, args.output)


if __name__ == "__main__":
    main()
