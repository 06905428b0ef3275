"""What benchmark scripts share: where a script's latest record lives, its --output / --no-write options, and
printing the record as one JSON line and keeping it (indented) in that file."""

import argparse
import json
from pathlib import Path

LATEST_DIR = Path(__file__).resolve().parent / "latest"


def latest(name: str) -> Path:
    """Where the latest record of benchmark `name` is kept: benchmarks/latest/<name>.json."""
    return LATEST_DIR / f"{name}.json"


def add_output_options(parser: argparse.ArgumentParser, default: Path) -> None:
    """`--output PATH` (default `default`) and `--no-write` (print only), both into `args.output`."""
    parser.add_argument("--output", type=Path, default=default, help=f"JSON file to write (default {default})")
    parser.add_argument("--no-write", dest="output", action="store_const", const=None, help="print only")


def emit(result: dict, output: Path | None) -> None:
    """Print `result` as one JSON line; write it, indented, to `output` unless that is None."""
    print(json.dumps(result))
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=1) + "\n")
