"""How fast the `elasticity` command refuses bad input: each case of a table of bad inputs across the verbs,
run as a user runs it (a fresh process), timed, beside the 2-second target.

Every case must exit 2 with one line on stderr, no traceback, nothing written and its inputs untouched;
tests/test_refusals.py checks that on the same table, this script measures the time.

    python benchmarks/refusals.py [--output PATH | --no-write]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import record

from elasticity.machine import describe as describe_machine

TARGET_S = 2.0  # the most a refusal may take, start to exit

# (argv, a fragment of the refusal). Placeholders: {tmp} an empty folder, {text} a text file in it, {folder} a
# folder in it; each case starts from a fresh copy of them, and nothing else may appear there (`refuse` sends a
# `run` case's notebook to {tmp}/out, which must not appear). Every one of these is refused before torch is
# imported: a chapter's parameters against `elasticity.parameters`, the other verbs' names and paths first.
CASES = [
    # run: chapters and their parameters (names, types, ranges, choices), options
    (["run", "nope"], "unknown chapter 'nope'"),
    (["run"], "a chapter is needed"),
    (["run", "rebound", "-p", "nope", "1"], "unknown parameter 'nope'"),
    (["run", "rebound", "-p", "family", "tinyy"], "parameter 'family' = 'tinyy' of chapter 'rebound'; accepted:"),
    (["run", "rebound", "-p", "size", "xxl"], "parameter 'size' = 'xxl' of chapter 'rebound'; accepted: one of s, m"),
    (["run", "rebound", "-p", "family", "qwen1.5", "-p", "size", "l"], "accepted: one of 0.5b, 4b, 7b"),
    (["run", "rebound", "-p", "device", "gpu"], "parameter 'device' = 'gpu' of chapter 'rebound'; accepted: a device"),
    (["run", "rebound", "-p", "task", "poetry"], "parameter 'task' = 'poetry'"),
    (["run", "rebound", "-p", "seeds", "abc"], "parameter 'seeds' = 'abc' of chapter 'rebound'; accepted: a tuple of"),
    (["run", "rebound", "-p", "seeds", "(1, 1)"], "parameter 'seeds' = (1, 1)"),
    (["run", "rebound", "-p", "positive_sizes", "(0, 10)"], "accepted: a tuple of ints >= 1 (distinct, increasing)"),
    (["run", "rebound", "-p", "negative_sizes", "(10, 5)"], "parameter 'negative_sizes' = (10, 5)"),
    (["run", "rebound", "-p", "algorithms", "ppo2"], "parameter 'algorithms' = 'ppo2' of chapter 'rebound'; accepted: "
     "a tuple of names from dpo, kto, simpo"),
    (["run", "rebound", "-p", "algorithms", "('dpo', 'ppo')"], "accepted: a tuple of names from dpo, kto, simpo"),
    (["run", "rebound", "-p", "positive_epochs", "'many'"], "parameter 'positive_epochs' = 'many'"),
    (["run", "rebound", "-p", "control", "1"], "accepted: True or False"),
    (["run", "rebound", "--workers", "0"], "--workers 0; must be a positive integer"),
    (["run", "resistance", "-p", "family", "gpt-17"], "parameter 'family' = 'gpt-17'"),
    (["run", "resistance", "-p", "pairs", "((2, 1),)"], "pairs (k, l) of ints, 1 <= k < l"),
    (["run", "model_size", "-p", "family", "smollm2"], "parameter 'family' = 'smollm2'"),
    (["run", "pretraining_volume", "-p", "budgets", "(123,)"], "a tuple of 2 or more ints"),
    (["run", "pretraining_volume", "-p", "family", "qwen1.5"], "accepted: one of tiny, tinyllama-1.1b"),
    (["run", "elasticity_measured", "-p", "protocol", "mixed"], "accepted: one of sequential, joint"),
    (["run", "elasticity_measured", "-p", "family", "smollm2-135m"], "accepted: one of tiny (pre-trained here"),
    (["run", "compression_with_models", "-p", "num_bytes", "0"], "accepted: int >= 1"),
    (["run", "theory_elasticity", "-p", "normalization", "gamma"], "accepted: one of log-leaves"),
    # compute, book, status, pretrain
    (["compute", "nope"], "unknown chapter 'nope'"),
    (["compute", "rebound", "--workers", "0"], "--workers 0; must be a positive integer"),
    (["book", "--scale", "huge"], "invalid choice: 'huge'"),
    (["status", "nope"], "unknown chapter 'nope'"),
    (["status", "--entries", "/proc/entries.json"], "output '/proc/entries.json': cannot write in '/proc'"),
    (["status", "--entries", "{folder}"], "output '{folder}' is a directory"),
    (["book", "--path-output", "/proc/book"], "output folder '/proc/book': cannot write in '/proc'"),
    (["book", "--path-output", "{text}"], "output folder '{text}' is a file"),
    (["run", "rebound", "--out", "{text}"], "output folder '{text}' is a file"),
    (["pretrain", "--size", "xxl"], "unknown size of family 'tiny' 'xxl'"),
    (["pretrain", "--family", "x"], "unrecognized arguments: --family x"),
    # finetune
    (["finetune", "--dataset", "rotten-tomatoes"], "the following arguments are required: --out"),
    (["finetune", "--dataset", "poems", "--out", "{tmp}/ft"], "unknown dataset 'poems'"),
    (["finetune", "--dataset", "rotten-tomatoes", "--label", "happy", "--out", "{tmp}/ft"],
     "unknown label of rotten-tomatoes 'happy'"),
    (["finetune", "--dataset", "rotten-tomatoes", "--family", "gpt-17", "--out", "{tmp}/ft"], "unknown family"),
    (["finetune", "--dataset", "rotten-tomatoes", "--n", "0", "--out", "{tmp}/ft"],
     "argument --n: '0'; must be above zero"),
    (["finetune", "--dataset", "rotten-tomatoes", "--batch-size", "-2", "--out", "{tmp}/ft"], "must be above zero"),
    (["finetune", "--dataset", "rotten-tomatoes", "--epochs", "x", "--out", "{tmp}/ft"], "'x' is not a float"),
    (["finetune", "--dataset", "rotten-tomatoes", "--out", "{tmp}/ft", "--device", "tpu"], "--device 'tpu'"),
    (["finetune", "--dataset", "rotten-tomatoes", "--out", "{text}"], "output folder '{text}' is a file"),
    (["finetune", "--dataset", "rotten-tomatoes", "--out", "/proc/ft"], "output folder '/proc/ft': cannot write"),
    # compress, decompress: devices, names, missing, unreadable and unwritable paths, output equal to input
    (["compress", "{text}", "-o", "{tmp}/out.elz", "--device", "tpu"], "--device 'tpu'; accepted: cpu, cuda"),
    (["compress", "{text}", "-o", "{tmp}/out.elz", "--family", "gpt-17"], "unknown family 'gpt-17'"),
    (["compress", "{text}", "-o", "{tmp}/out.elz", "--size", "xl"], "unknown size of family 'tiny' 'xl'"),
    (["compress", "{tmp}/missing.txt", "-o", "{tmp}/out.elz"], "input file '{tmp}/missing.txt' does not exist"),
    (["compress", "{folder}", "-o", "{tmp}/out.elz"], "input file '{folder}' does not exist or is not a file"),
    (["compress", "{text}", "-o", "{text}"], "output '{text}' is the input file"),
    (["compress", "{text}", "-o", "{folder}"], "output '{folder}' is a directory"),
    (["compress", "{text}", "-o", "/proc/x.elz"], "output '/proc/x.elz': cannot write in '/proc'"),
    (["compress", "{text}", "-o", "{tmp}/no/such/out.elz"], "its folder"),
    (["decompress", "{text}", "-o", "{tmp}/out.txt", "--device", "gpu"], "--device 'gpu'"),
    (["decompress", "{tmp}/missing.elz", "-o", "{tmp}/out.txt"], "does not exist"),
    (["decompress", "{text}", "-o", "/proc/out.txt"], "cannot write in '/proc'"),
    (["nope"], "invalid choice: 'nope'"),
]

# Refusals that need an experiment's config or the model code (which import torch only where they compute):
# relations between a chapter's parameters, which its experiment config checks (a checkpoint pair beyond
# `num_checkpoints`, a budget the family has no checkpoint at), a chapter with nothing to archive, a fine-tuned
# checkpoint that is not there. Still before any work, and before torch is imported.
LATER_CASES = [
    (["run", "resistance", "-p", "pairs", "((1, 5),)"], "checkpoint pair (1, 5) is out of range"),
    (["run", "pretraining_volume", "-p", "budgets", "(1, 2)"], "unknown token budget of family 'tiny' 1"),
    (["run", "theory_token_tree", "--archive"], "has no archivable experiment"),
    (["compress", "{text}", "-o", "{tmp}/out.elz", "--checkpoint", "{tmp}/none"], "is not a directory"),
]


class Refusal(NamedTuple):
    """What a case gave: exit code, stdout, stderr, seconds, and whether torch was imported."""

    code: int
    out: str
    err: str
    seconds: float
    torch_imported: bool


def prepare(folder: Path) -> dict[str, str]:
    """The placeholders' files in `folder`: a text file and a subfolder."""
    (folder / "input.txt").write_text("some text\n")
    (folder / "folder").mkdir()
    return {"tmp": str(folder), "text": str(folder / "input.txt"), "folder": str(folder / "folder")}


def contents(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for a folder): what a refusal must leave as it was."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def refuse(argv: list[str], places: dict[str, str], cwd: Path) -> Refusal:
    """Run `elasticity ARGV` (placeholders filled) in a fresh process, as the console script does."""
    code = ("import sys; from elasticity import cli; code = cli.main(sys.argv[1:]); "
            "print('torch' in sys.modules); sys.exit(code)")
    filled = [a.format(**places) for a in argv]
    if argv[:1] == ["run"] and "--out" not in argv:  # its notebook would go to {tmp}/out: a refusal must not create it
        filled += ["--out", str(Path(places["tmp"]) / "out")]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *filled], capture_output=True, text=True, cwd=cwd)
    seconds = time.perf_counter() - start
    return Refusal(done.returncode, done.stdout, done.stderr, seconds, done.stdout.split()[-1:] == ["True"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    record.add_output_options(parser, record.latest("refusals"))
    args = parser.parse_args(argv)
    rows = []
    for case, _ in CASES + LATER_CASES:
        with tempfile.TemporaryDirectory() as tmp:
            got = refuse(case, prepare(Path(tmp)), Path(tmp))
        rows.append({"argv": " ".join(case), "exit": got.code, "seconds": round(got.seconds, 2),
                     "torch_imported": got.torch_imported, "needs_model_code": case in [c for c, _ in LATER_CASES]})
    slowest = max(rows, key=lambda r: r["seconds"])
    record.emit({
        "benchmark": "refusals", "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cases": len(rows), "target_s": TARGET_S, "slowest": slowest,
        "ratio_slowest_to_target": round(slowest["seconds"] / TARGET_S, 3),
        "all_within_target": all(r["seconds"] <= TARGET_S for r in rows),
        "all_exit_2": all(r["exit"] == 2 for r in rows),
        "with_torch_imported": sum(r["torch_imported"] for r in rows),
        "rows": rows, "machine": describe_machine(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
