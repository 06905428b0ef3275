"""What `make book-real` costs: the time of each run it archives, read from the archives' own provenance.

`make book-real` runs each real-model chapter with `--archive` (`elasticity run CHAPTER -p family F --archive`);
each archive it writes under `results/<family>/` records every unit's wall time and when it finished, measured
by the package as it computed them. Per archive this prints its units, their compute time (the union of their
intervals, as the archive states it), the span from the first unit's start to the last unit's end (the run's
wall time while it computed, the kernel's own overhead between units included), the commit, and whether its
measuring code still matches the checkout (`stale`: then its time is a past run's). The totals are what a reader
regenerating every archive from an empty cache waits for on the same machine; a run that was interrupted and
resumed shows a span longer than its compute time.

Prints one JSON line and writes it to benchmarks/latest/book_real.json.

Usage: python benchmarks/book_real.py [--family smollm2-135m] [--no-write | --output PATH]
"""

import argparse
import datetime
import importlib
import json

import record

from elasticity import archived
from elasticity.machine import describe as describe_machine

LATEST = record.latest("book_real")


def _span(units: dict) -> float:
    """Seconds from the first unit's start to the last unit's end."""
    ends = [datetime.datetime.fromisoformat(r["created_utc"]).timestamp() for r in units.values()]
    starts = [end - r["wall_time_s"] for end, r in zip(ends, units.values(), strict=True)]
    return max(ends) - min(starts)


def runs(family: str) -> list[dict]:
    """One record per archive of `family` (a chapter's experiment, or its pilot)."""
    found = []
    for path in sorted((archived.archive_dir() / family).glob("*.json")):
        module = importlib.import_module(f"elasticity.experiments.{json.loads(path.read_text())['experiment']}")
        archive = archived.read(path, module)
        p = archive.provenance
        found.append({"archive": str(path.relative_to(archived.archive_dir().parent)), "chapter": archive.chapter,
                      "command": p["command"], "commit": p["commit"][:10], "created_utc": p["created_utc"],
                      "stale": archive.is_stale(module), "units": len(p["units"]),
                      "compute_s": p["wall_time_s"], "span_s": round(_span(p["units"]), 1),
                      "threads": (p["numerics"] or {}).get("torch_threads"),
                      "cpus": p["machine"].get("cpus")})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="smollm2-135m", help="the family whose archives to read")
    record.add_output_options(parser, LATEST)
    args = parser.parse_args()
    found = runs(args.family)
    current = [r for r in found if not r["stale"]]
    result = {
        "benchmark": "book_real",
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "family": args.family,
        "runs": found,
        "total_compute_s": round(sum(r["compute_s"] for r in found), 1),
        "total_span_s": round(sum(r["span_s"] for r in found), 1),
        "all_current": bool(found) and len(current) == len(found),
        "machine": describe_machine(),
    }
    record.emit(result, args.output)
    print(json.dumps({r["archive"]: f"{r['span_s'] / 60:.1f} min" for r in found}))


if __name__ == "__main__":
    main()
