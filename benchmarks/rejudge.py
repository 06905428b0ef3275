"""Benchmark re-judging: in a warm checkout, edit every judging module and rebuild the book; nothing retrains.

From a directory kept by `benchmarks/book.py --keep DIR` (its warm results cache and its built book), this
copies the checkout's tracked files to a temporary directory and there appends a comment line to
`elasticity/verdicts.py`, `paper.py`, `plotting.py`, every `experiments/*_judge.py` and `*_figures.py`, and
every experiment module that judges units (one that imports a `*_units` module). Run from that copy on the
warm cache, `elasticity status` must report no stale or missing training unit, and `elasticity book` (into a
copy of the built book) must add no training unit to the cache; its wall time is set against the 180 s
target. Then a comment appended to `finetune.py` must make `elasticity status` mark every training chapter's
units stale. The checkout itself is never edited.

Prints one JSON line and writes it to benchmarks/latest/rejudge.json.

Usage: python benchmarks/rejudge.py --warm DIR [--no-write | --output PATH]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import record

from elasticity import book, paths, status
from elasticity.machine import describe as describe_machine

TARGET_S = 180.0
LATEST = record.latest("rejudge")
JUDGING = ("verdicts.py", "paper.py", "plotting.py")
_COUNTS = re.compile(r"^(\S+): (\d+) training units: (\d+) present, (\d+) stale(?: \((.*)\))?, (\d+) missing")


def parse_status(text: str) -> dict[str, dict]:
    """Chapter -> {units, present, stale, missing, why} from the lines of `elasticity status`."""
    found = {}
    for line in text.splitlines():
        if match := _COUNTS.match(line):
            chapter, units, present, stale, why, missing = match.groups()
            found[chapter] = {"units": int(units), "present": int(present), "stale": int(stale),
                              "missing": int(missing), "why": why or ""}
    return found


def entries(cache: Path) -> dict[str, int]:
    """Cache entry kind -> number of entries under `<cache>/results/<kind>/`."""
    results = cache / "results"
    return {d.name: sum(1 for e in d.iterdir() if not e.name.startswith(".")) for d in sorted(results.iterdir())
            if d.is_dir()} if results.is_dir() else {}


def copy_checkout(root: Path, target: Path) -> None:
    """The checkout's tracked files (as they are in the working tree) under `target`."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source = root / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def append_comment(paths_: list[Path], text: str) -> list[str]:
    for path in paths_:
        path.write_text(path.read_text() + f"\n# {text}\n")
    return [str(p) for p in paths_]


def judging_files(package: Path) -> list[Path]:
    """The judging, figure and chapter-experiment modules of a copy of the package."""
    found = [package / name for name in JUDGING]
    experiments = package / "experiments"
    found += sorted(experiments.glob("*_judge.py")) + sorted(experiments.glob("*_figures.py"))
    found += [p for p in sorted(experiments.glob("*.py")) if not p.stem.endswith(("_units", "_judge", "_figures"))
              and re.search(r"^from elasticity\.experiments import .*_units", p.read_text(), flags=re.M)]
    return found


def cli(copy: Path, env: dict, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "elasticity.cli", *argv], cwd=copy, env=env, capture_output=True,
                          text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm", type=Path, required=True, help="a directory kept by benchmarks/book.py --keep")
    record.add_output_options(parser, LATEST)
    args = parser.parse_args()
    cache, built = args.warm / "cache", args.warm / "_build"
    if not (cache / "results").is_dir() or not built.is_dir():
        parser.error(f"--warm {args.warm} holds no results cache and built book (run benchmarks/book.py --keep DIR)")
    root = paths.project_root()
    with tempfile.TemporaryDirectory(prefix="elasticity-rejudge-") as tmp:
        copy, output = Path(tmp) / "checkout", Path(tmp) / "output"
        copy_checkout(root, copy)
        shutil.copytree(built, output / "_build", symlinks=True)
        env = dict(os.environ, PYTHONPATH=str(copy), ELASTICITY_CACHE=str(cache), ELASTICITY_SCALE="default",
                   PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
        edited = append_comment(judging_files(copy / "elasticity"), "an edit of the judging (benchmarks/rejudge.py)")
        before = entries(cache)
        before_build = cli(copy, env, "status")
        start = time.perf_counter()
        build = cli(copy, env, "book", "--path-output", str(output))
        wall = time.perf_counter() - start
        added = {kind: n - before.get(kind, 0) for kind, n in entries(cache).items() if n != before.get(kind, 0)}
        append_comment([copy / "elasticity" / "finetune.py"], "an edit of the training (benchmarks/rejudge.py)")
        after_training_edit = cli(copy, env, "status")
    judged = parse_status(before_build.stdout)
    # The cache kinds of every chapter's training units (`elasticity status`), and the tiny family's pre-training.
    training_kinds = {u.name for chapter in book.chapters() for u in status.chapter_units(chapter)}
    training_kinds |= {"tiny-pretrain", "tiny-tokenizer"}
    retrained = {kind: n for kind, n in added.items() if kind in training_kinds}
    stale_after_training_edit = parse_status(after_training_edit.stdout)
    result = {
        "benchmark": "rejudge", "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "edited_modules": [str(Path(p).relative_to(copy)) for p in edited],
        "status_after_judging_edits": judged,
        "build": {"wall_s": round(wall, 1), "exit": build.returncode},
        "cache_entries_added": added,
        "training_entries_added": sum(retrained.values()),
        "status_after_finetune_edit": stale_after_training_edit,
        "target_s": TARGET_S, "ratio_to_target": round(wall / TARGET_S, 3),
        "meets_targets": {
            "no stale or missing training unit after judging edits": bool(judged) and all(
                c["stale"] == 0 and c["missing"] == 0 for c in judged.values()),
            "the rebuild computes no training unit": build.returncode == 0 and not retrained,
            f"rebuild <= {TARGET_S:.0f} s": build.returncode == 0 and wall <= TARGET_S,
            "a finetune.py edit marks every training chapter stale": bool(stale_after_training_edit) and all(
                c["stale"] == c["units"] for c in stale_after_training_edit.values()),
        },
        "machine": describe_machine(), "load_average_1m": round(os.getloadavg()[0], 2),
    }
    if build.returncode:
        result["build"]["log_tail"] = (build.stdout + build.stderr)[-2000:]
    record.emit(result, args.output)


if __name__ == "__main__":
    main()
