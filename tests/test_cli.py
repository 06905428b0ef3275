"""Tests of the `elasticity` command: refusals are one line with exit code 2, before any work starts."""

import contextlib
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest
from conftest import alive, command_line

from elasticity import book, cli, parallel, paths

TOY_CHAPTER = """---
jupytext:
  text_representation: {extension: .md, format_name: myst, format_version: 0.13, jupytext_version: 1.19.6}
kernelspec: {display_name: Python 3, language: python, name: python3}
---

# Toy

```{code-cell} ipython3
:tags: [parameters]

family = "tiny"  # model family
steps = 3  # number of steps
learning_rate = 0.5  # a float
positive_sizes = (1, 2)  # a tuple
seeds = None  # None: the preset
```

```{code-cell} ipython3
print(f"RESULT family={family} steps={steps} rate={learning_rate} sizes={positive_sizes} seeds={seeds}")
```
"""


@pytest.fixture
def toy_notebooks(tmp_path, monkeypatch):
    (tmp_path / "toy.md").write_text(TOY_CHAPTER)
    monkeypatch.setattr(paths, "notebooks_dir", lambda: tmp_path)
    return tmp_path


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_unknown_chapter(capsys, toy_notebooks):
    code, _, err = run_cli(capsys, "run", "nope")
    assert code == 2
    assert err.strip() == "elasticity: error: unknown chapter 'nope'; accepted: toy"


def test_unknown_parameter_lists_accepted_names(capsys, toy_notebooks, tmp_path):
    code, _, err = run_cli(capsys, "run", "toy", "-p", "stepz", "4", "--out", str(tmp_path / "out"))
    assert code == 2
    assert err.count("\n") == 1
    assert ("unknown parameter 'stepz' of chapter 'toy'; accepted: family, steps, learning_rate, positive_sizes, "
            "seeds") in err
    assert not (tmp_path / "out").exists()  # refused before any work


def test_bad_worker_count_is_refused_before_any_work(capsys, toy_notebooks, tmp_path):
    code, _, err = run_cli(capsys, "run", "toy", "--workers", "0", "--out", str(tmp_path / "out"))
    assert code == 2 and err.count("\n") == 1
    assert "--workers 0; must be a positive integer" in err
    assert not (tmp_path / "out").exists()


def test_workers_beyond_the_machine_are_refused_before_any_process_starts(capsys, toy_notebooks, tmp_path,
                                                                        monkeypatch):
    def no_process(*args, **kwargs):
        raise AssertionError("a process was started")

    monkeypatch.setattr(subprocess.Popen, "__init__", no_process)
    monkeypatch.setattr(multiprocessing.Process, "start", no_process)
    code, _, err = run_cli(capsys, "run", "toy", "--workers", "999", "--out", str(tmp_path / "out"))
    most = parallel.max_workers("tiny", "cpu")[0]
    assert code == 2 and err.count("\n") == 1
    assert f"999 worker processes do not fit this machine: at most {most} (" in err
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv(parallel.ENV, "999")
    for argv in (["run", "toy"], ["book"]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and err.count("\n") == 1 and f"at most {most} (" in err


def test_workers_beyond_the_machine_exit_2_in_one_line_without_importing_torch():
    # No timed assertion (timings belong in benchmarks/): the refusal is fast because it reads only the chapter's
    # parameters cell and the torch-free family registry (measured: 0.3 s, where importing torch alone takes 1.5 s).
    code = ("import sys; from elasticity import cli; code = cli.main(['run', 'rebound', '--workers', '999']); "
            "print('torch' in sys.modules, 'papermill' in sys.modules); sys.exit(code)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 2
    assert completed.stderr.startswith("elasticity: error: 999 worker processes do not fit this machine")
    assert completed.stderr.count("\n") == 1
    assert completed.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("name, value, accepted", [
    ("steps", "many", "int >= 1, or None"), ("steps", "1.5", "int >= 1"), ("learning_rate", "'fast'", "float > 0"),
    ("positive_sizes", "3", "a tuple of ints >= 1 (distinct, increasing)"),
    ("seeds", "(0, 'a')", "a tuple of ints >= 0")])
def test_wrong_type(capsys, toy_notebooks, name, value, accepted):
    code, _, err = run_cli(capsys, "run", "toy", "-p", name, value)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"elasticity: error: parameter {name!r} = ")
    assert f"of chapter 'toy'; accepted: {accepted}" in err


def test_parse_values_parses_literals_and_converts_as_declared(toy_notebooks):
    given = [("family", "smollm2-135m"), ("learning_rate", "1"), ("positive_sizes", "[1, 2, 3]"),
             ("seeds", "(0, 1)")]
    assert book.parse_values(toy_notebooks / "toy.md", given) == {
        "family": "smollm2-135m", "learning_rate": 1.0, "positive_sizes": (1, 2, 3), "seeds": (0, 1)}


def test_kernel_parameters_are_what_papermill_writes_as_literals():
    from papermill.translators import PythonTranslator

    values = {"seeds": (0, 1), "pairs": ((1, 3), (2, 3)), "family": "tiny", "rate": 0.5}
    given = book.kernel_parameters(values)
    assert given == {"seeds": [0, 1], "pairs": [[1, 3], [2, 3]], "family": "tiny", "rate": 0.5}
    assert PythonTranslator.translate(given["pairs"]) == "[[1, 3], [2, 3]]"  # not the string "((1, 3), (2, 3))"
    from elasticity.experiments import resistance

    assert resistance.config(pairs=given["pairs"]).pairs == ((1, 3), (2, 3))  # the kernel's config takes it


def test_parameters_reads_literals(toy_notebooks):
    assert book.parameters(toy_notebooks / "toy.md") == {
        "family": "tiny", "steps": 3, "learning_rate": 0.5, "positive_sizes": (1, 2), "seeds": None}


@pytest.mark.notebooks
def test_run_injects_parameters(toy_notebooks, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = run_cli(capsys, "run", "toy", "-p", "steps", "7", "-p", "family", "smollm2-135m",
                              "-p", "seeds", "(0, 1)", "--out", str(out), "--no-progress")
    assert code == 0
    executed = (out / "toy.ipynb").read_text()
    # a tuple reaches the kernel as a sequence, not as the string papermill would write for it
    assert "RESULT family=smollm2-135m steps=7 rate=0.5 sizes=(1, 2) seeds=[0, 1]" in executed


def test_console_script_exit_code():
    completed = subprocess.run([sys.executable, "-m", "elasticity.cli", "run", "no-such-chapter"],
                               capture_output=True, text=True)
    assert completed.returncode == 2
    assert completed.stderr.startswith("elasticity: error: unknown chapter 'no-such-chapter'")
    assert completed.stderr.count("\n") == 1


# --------------------------------------------------------------------------------------------------
# An interrupted run: nothing of it survives, and a rerun resumes from the units it finished.
# --------------------------------------------------------------------------------------------------

REBOUND_UNITS = ("rebound-base", "rebound-unit")


def _start_rebound(cache, out, stderr=subprocess.DEVNULL):
    """`elasticity run rebound` at smoke scale with 2 workers, its own cache and output directory."""
    env = {**os.environ, "ELASTICITY_SCALE": "smoke", "ELASTICITY_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "ELASTICITY_NATIVE_KERNELS": "1"}  # unpinned threads, one core a worker: two workers fit 2 cores
    env.pop(parallel.ENV, None)
    argv = [sys.executable, "-m", "elasticity.cli", "run", "rebound", "--workers", "2", "--out", str(out),
            "--no-progress"]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=stderr)


def _unit_results(cache) -> dict[str, str]:
    """The cached rebound units: entry name -> result.json text."""
    return {f"{p.parent.parent.name}/{p.parent.name}": p.read_text()
            for name in REBOUND_UNITS for p in sorted((cache / "results" / name).glob("*/result.json"))}


def _kill_while_a_worker_computes(cache, out, signum) -> list:
    """Start a run, wait until a worker has finished a unit and workers are computing the next, send `signum`
    to the CLI; return the processes of the run at that moment (CLI, kernel, workers, tracker), with their
    command lines, once they have ended or 10 s have passed."""
    cli_process = _start_rebound(cache, out)
    run = psutil.Process(cli_process.pid)
    tree = [run]
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and cli_process.poll() is None:
            tree = [run, *run.children(recursive=True)]
            workers = [p for p in tree if "spawn_main" in command_line(p)]
            if workers and _unit_results(cache):
                break
            time.sleep(0.05)
        assert cli_process.poll() is None, "the run ended before it could be interrupted"
        assert workers and _unit_results(cache), "no worker finished a unit in time"
        tree = [run, *run.children(recursive=True)]
        commands = [command_line(p) for p in tree]
        cli_process.send_signal(signum)
        cli_process.wait()
        psutil.wait_procs(tree[1:], timeout=10)
        return list(zip(tree, commands, strict=True))
    finally:
        cli_process.kill()
        cli_process.wait()
        for process in alive(tree[1:]):  # leave nothing behind, whatever failed above
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()


def _role(command: str) -> str:
    for role, mark in (("kernel", "ipykernel"), ("tracker", "resource_tracker"), ("worker", "spawn_main"),
                       ("cli", "elasticity.cli")):
        if mark in command:
            return role
    return command


@pytest.fixture(scope="module")
def uninterrupted_rebound(tmp_path_factory):
    """The cached units of an uninterrupted smoke-scale rebound run with 2 workers."""
    cache = tmp_path_factory.mktemp("uninterrupted")
    with open(cache / "stderr", "w") as stderr:
        assert _start_rebound(cache / "cache", cache / "out", stderr).wait(timeout=600) == 0
    found = _unit_results(cache / "cache")
    # a progress line per unit, with the count and an estimate of the time left
    counts = re.findall(r"^rebound: (\d+)/(\d+) units, .* so far, about \d+:\d\d left$",
                        (cache / "stderr").read_text(), re.MULTILINE)
    assert sorted(int(k) for k, _ in counts) == list(range(1, len(found) + 1))
    assert {int(total) for _, total in counts} == {len(found)}
    return found


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_an_interrupted_run_leaves_no_process_and_a_rerun_resumes(tmp_path, signum, uninterrupted_rebound):
    cache, out = tmp_path / "cache", tmp_path / "out"
    tree = _kill_while_a_worker_computes(cache, out, signum)
    roles = [_role(command) for _, command in tree]
    assert roles.count("cli") == roles.count("kernel") == roles.count("tracker") == 1 and roles.count("worker") == 2
    survivors = [command for process, command in tree if alive([process])]
    assert not survivors, f"alive 10 s after the CLI was killed: {survivors}"
    finished = _unit_results(cache)
    assert 0 < len(finished) < len(uninterrupted_rebound)
    assert _start_rebound(cache, out).wait(timeout=600) == 0
    resumed = _unit_results(cache)
    assert {k: resumed[k] for k in finished} == finished  # the units the killed run finished were kept
    assert resumed == uninterrupted_rebound


@pytest.mark.slow
def test_finetune_with_lora_gives_identical_numbers_in_fresh_processes(tmp_path):
    env = {**os.environ, "ELASTICITY_SCALE": "smoke", "ELASTICITY_CACHE": str(tmp_path / "cache")}
    runs = []
    for name in ("first", "second"):
        argv = [sys.executable, "-m", "elasticity.cli", "finetune", "--family", "tiny", "--dataset",
                "rotten-tomatoes", "--label", "positive", "--n", "16", "--batch-size", "4", "--lora", "--seed", "0",
                "--learning-rate", "1e-2", "--out", str(tmp_path / name)]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        printed = json.loads(done.stdout.strip().splitlines()[-1])
        runs.append(((printed["steps"], printed["first_loss"], printed["final_loss"]),
                     (tmp_path / name / "adapter_model.safetensors").read_bytes()))
    (losses, weights), (losses_again, weights_again) = runs
    assert losses == losses_again and weights == weights_again


def test_book_prints_the_status_of_the_training_units_before_it_builds(capsys, monkeypatch, tmp_path):
    from elasticity import book, checksums, compute, progress, status

    built = []
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")  # restored after the test: `--scale` sets it for the build
    units = progress.entries(status.units())

    def compute_all(log):  # the units are computed first, here one of them
        units[-1].path.mkdir(parents=True)
        (units[-1].path / "result.json").write_text("{}")
        checksums.seal(units[-1].path)
        built.append("units")
        return 0

    monkeypatch.setattr(compute, "compute_all", compute_all)
    monkeypatch.setattr(book, "build", lambda output: built.append(output) or 0)
    code, _, err = run_cli(capsys, "book", "--scale", "smoke")
    assert code == 0 and built == ["units", None]
    assert err.startswith(f"training units at scale smoke in {tmp_path}:\n")
    assert "\nrebound: 34 training units: 0 present, 0 stale, 34 missing;" in err
    # then a line for each unit the build caches
    assert f"\nbook: {len(units)} units, 0 cached, {len(units)} to compute\n" in err
    assert f"\nbook: 1/{len(units)} units, {units[-1].label}; 0:00 so far, about " in err


def test_book_builds_nothing_when_computing_the_units_fails(capsys, monkeypatch, tmp_path):
    from elasticity import book, compute

    def compute_all(log):  # fails after a progress bar and a traceback
        log.write_text("fine-tune:  10%|#  | 1/10\rfine-tune:  20%|## | 2/10\nTraceback (most recent call last):\n"
                       "RuntimeError: a bug\n")
        return 1

    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")  # restored after the test: `--scale` sets it for the build
    monkeypatch.setattr(compute, "compute_all", compute_all)
    monkeypatch.setattr(book, "build", lambda output: pytest.fail("built after the units failed"))
    code, _, err = run_cli(capsys, "book", "--scale", "smoke")
    assert code == 1
    assert err.endswith("fine-tune:  20%|## | 2/10\nTraceback (most recent call last):\nRuntimeError: a bug\n"
                        f"elasticity: computing the chapters' units failed (exit 1; its log: {tmp_path}/compute.log); "
                        "nothing was built. The units it finished are cached: a rerun resumes after them.\n")


def test_python_m_elasticity_is_the_command_and_says_its_version():
    import tomllib

    import elasticity

    completed = subprocess.run([sys.executable, "-m", "elasticity", "--version"], capture_output=True, text=True)
    assert completed.returncode == 0 and completed.stdout == f"elasticity {elasticity.__version__}\n"
    project = tomllib.loads((paths.project_root() / "pyproject.toml").read_text())["project"]
    assert project["version"] == elasticity.__version__  # the two places a version is written agree
    refused = subprocess.run([sys.executable, "-m", "elasticity", "run", "no-such-chapter"], capture_output=True,
                             text=True)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1


def test_config_calls_are_read_from_the_chapter():
    calls = dict(book.config_calls(book.chapter_path("rebound")))
    assert "tasks = None if task is None else (task,)" in calls["rebound"]
    assert "'family': family" in calls["rebound"] and "**overrides" in calls["rebound"]


def test_every_chapter_passes_the_check_with_its_defaults(monkeypatch):
    for scale in ("smoke", "default"):
        monkeypatch.setenv("ELASTICITY_SCALE", scale)
        for path in book.chapters().values():
            book.check_config(path, {})  # no false refusal of a chapter as it ships
    assert {module for path in book.chapters().values() for module, _ in book.config_calls(path)} >= {
        "rebound", "resistance", "model_size", "pretraining_volume", "measured", "compression_protocol",
        "compression_with_models"}


def test_run_help_with_a_chapter_lists_its_parameters(capsys):
    code, out, _ = run_cli(capsys, "run", "rebound", "--help")
    assert code == 0 and "usage:" in out and "parameters of rebound (-p NAME VALUE):" in out
    for name in book.parameters(book.chapter_path("rebound")):
        assert f"  {name} = " in out
    assert "  device = 'cpu'\n      accepts: a device: cpu, cuda, cuda:N, mps\n      torch device:" in out
    assert "  seeds = None\n      accepts: a tuple of ints >= 0 (distinct), or None (the preset's)\n" in out
    # a comment continued on the next line of the cell is one line of help
    assert "\n      model family: tiny | smollm2-135m | a hub family (runs the IMDb and BeaverTails tasks)\n" in out
    code, _, err = run_cli(capsys, "run", "nope", "--help")
    assert code == 2 and "unknown chapter 'nope'" in err
    code, _, err = run_cli(capsys, "run")
    assert code == 2 and err.startswith("elasticity: error: a chapter is needed; accepted: ")
