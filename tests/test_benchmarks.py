"""Tests of the benchmark scripts (benchmarks/train.py, benchmarks/gpu.py): arguments and JSON shape.

No timing is asserted: the figures are whatever the (shared) machine gives; the tests check that the
scripts refuse bad arguments, that the JSON they print holds every figure with consistent ratios, and that
the GPU script refuses to run without CUDA.
"""

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, load_script


def load_benchmark(name: str):
    return load_script(f"benchmarks/{name}.py", f"bench_{name}")


@pytest.fixture(scope="module")
def train():
    return load_benchmark("train")


@pytest.fixture(scope="module")
def gpu():
    return load_benchmark("gpu")


# --------------------------------------------------------------------------------------------------
# train.py
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["--models", "tiny-xl"],
    ["--models", ""],
    ["--examples", "tiny-l=0"],
    ["--examples", "tiny-l"],
    ["--examples", "nope=3"],
    ["--rounds", "0"],
    ["--batch-size", "0"],
    ["--max-length", "1"],
    ["--threads", "0"],
    ["--matmul-n", "512"],
])
def test_train_refuses_bad_arguments(train, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_train_defaults_cover_both_settings(train):
    args = train.parse_args([])
    assert args.models == ["tiny-l", "smollm2-135m-lora"]
    assert args.examples == {} and args.rounds is None and args.output == train.LATEST
    args = train.parse_args(["--models", "tiny-l", "--examples", "tiny-l=7,smollm2-135m-lora=3"])
    assert args.models == ["tiny-l"] and args.examples == {"tiny-l": 7, "smollm2-135m-lora": 3}


def test_matmul_peak_is_a_positive_rate(train):
    peak = train.matmul_peak_flops(1024, repeats=1)
    assert peak["flops"] > 0 and peak["cpu_per_wall"] > 0


def test_count_parameters_counts_tied_weights_once(train, tiny_model):
    total, trainable = train.count_parameters(tiny_model)
    unique = {id(p): p for p in tiny_model.parameters()}
    assert total == sum(p.numel() for p in unique.values()) == trainable
    tiny_model.model.embed_tokens.weight.requires_grad_(False)
    assert train.count_parameters(tiny_model)[1] == total - tiny_model.model.embed_tokens.weight.numel()


def test_train_toy_run_prints_and_writes_consistent_json(train, tmp_path, monkeypatch, capsys):
    """A toy setting (smoke-scale tiny-l, a few examples, one round): shape and internal consistency."""
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    torch_threads = torch.get_num_threads()
    output = tmp_path / "train.json"
    try:
        record = train.main(["--models", "tiny-l", "--rounds", "1", "--examples", "tiny-l=4", "--batch-size", "2",
                             "--matmul-n", "1024", "--threads", "1", "--quiet", "--output", str(output)])
    finally:
        torch.set_num_threads(torch_threads)
    line = capsys.readouterr().out.strip()
    assert json.loads(line) == record == json.loads(output.read_text())
    assert record["benchmark"] == "train" and record["scale"] == "smoke" and record["threads"] == 1
    assert {"platform", "cpu", "cpu_count"} <= set(record["machine"])
    assert len(record["load_average"]["start"]) == 3 and record["torch"] == torch.__version__
    assert record["engine_source"]["path"].endswith("finetune.py") and len(record["engine_source"]["sha256"]) == 16
    assert isinstance(record["valid"], bool) and record["cpu_per_wall"] > 0
    peak = record["matmul_peak"]
    assert peak["gflops"] > 0 and len(peak["samples_gflops"]) == 1
    tiny = record["models"]["tiny-l"]
    assert not tiny["lora"] and tiny["examples"] == 4 and tiny["rounds"] == 1 and tiny["tokens_per_run"] > 4
    assert tiny["num_parameters"] == tiny["trainable_parameters"] > 0
    assert tiny["flops_per_token"] == 6 * tiny["num_parameters"]
    for side in ("engine", "trainer"):
        figures = tiny[side]
        assert len(figures["wall_s"]) == 1 and figures["tokens_per_s"] > 0
        wall = figures["wall_s"][0]  # rounded to 1 ms
        assert math.isclose(figures["tokens_per_s"], tiny["tokens_per_run"] / wall, rel_tol=0.001 + 0.0006 / wall)
        assert math.isclose(figures["achieved_gflops"], figures["tokens_per_s"] * tiny["flops_per_token"] / 1e9,
                            rel_tol=1e-3, abs_tol=1e-3)
        assert math.isclose(figures["fraction_of_peak"], figures["achieved_gflops"] / peak["gflops"],
                            rel_tol=0.02, abs_tol=1e-4)
    assert math.isclose(tiny["engine_over_trainer"], tiny["engine"]["tokens_per_s"] / tiny["trainer"]["tokens_per_s"],
                        rel_tol=1e-2)
    (by_round,) = tiny["engine_over_trainer_by_round"]  # one round: its ratio is the ratio of the medians
    assert math.isclose(by_round, tiny["engine_over_trainer"], rel_tol=1e-2)
    for side in ("engine", "trainer"):  # the same figures per CPU second
        figures = tiny[side]
        cpu = figures["cpu_s"][0]
        assert cpu > 0 and math.isclose(figures["tokens_per_cpu_s"], tiny["tokens_per_run"] / cpu,
                                        rel_tol=0.001 + 0.0006 / cpu)
        assert math.isclose(figures["fraction_of_peak_per_cpu_s"], figures["tokens_per_cpu_s"]
                            * tiny["flops_per_token"] / (peak["gflop_per_cpu_s"] * 1e9), rel_tol=0.02, abs_tol=1e-4)
    assert math.isclose(tiny["engine_over_trainer_per_cpu_s"],
                        tiny["engine"]["tokens_per_cpu_s"] / tiny["trainer"]["tokens_per_cpu_s"], rel_tol=1e-2)
    assert record["ratios"]["tiny-l engine/trainer"] == tiny["engine_over_trainer"]
    profile = tiny["engine_profile"]  # where the engine's time goes: matmuls and the largest other operators
    assert 0 < profile["matmul_share_of_time"] < 1 and profile["matmul_gflops"] > 0
    assert math.isclose(profile["matmul_fraction_of_peak"], profile["matmul_gflops"] / record["matmul_peak"]["gflops"],
                        rel_tol=2e-2)  # against the peak the runs' fractions use
    assert set(profile["largest_other_ops"]).isdisjoint(train.MATMUL_OPS)
    assert 0 < sum(profile["largest_other_ops"].values()) <= 1 - profile["matmul_share_of_time"] + 1e-3
    share = profile["matmul_s"] / (profile["matmul_s"] + profile["other_ops_s"])  # both rounded to 0.1 ms
    assert math.isclose(share, profile["matmul_share_of_time"], abs_tol=0.005 + 0.0002 / profile["matmul_s"])
    useful = tiny["tokens_per_run"] * tiny["flops_per_token"]  # the ceiling: the run with only its matmuls' time
    assert math.isclose(profile["fraction_if_only_matmuls"], useful / profile["matmul_s"] / (peak["gflops"] * 1e9),
                        rel_tol=0.01 + 0.0002 / profile["matmul_s"])
    allowed = useful / (0.5 * peak["gflops"] * 1e9) - profile["matmul_s"]
    assert math.isclose(profile["other_ops_s_allowed"], allowed, abs_tol=0.002 + 0.01 * abs(allowed))
    assert set(record["meets_targets"]) == {"tiny-l engine >= 1.0x trainer", "tiny-l engine >= 50% of matmul peak"}


def test_trainer_side_trains_the_same_objective(train, tiny_model, tiny_tokenizer):
    """The plain Trainer script changes the weights (it really trains) on the examples it is given."""
    from elasticity.data import Example

    examples = [Example("the film is", " a delight."), Example("", "the quick brown fox.")] * 2
    args = train.parse_args(["--batch-size", "2", "--max-length", "32", "--learning-rate", "1e-2"])
    before = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    train.run_trainer(tiny_model, tiny_tokenizer, examples, args, lora=False)
    changed = [n for n, p in tiny_model.named_parameters() if not torch.equal(before[n], p)]
    assert changed == list(before)


# --------------------------------------------------------------------------------------------------
# gpu.py
# --------------------------------------------------------------------------------------------------


def test_gpu_arguments(gpu):
    args = gpu.parse_args([])
    assert args.family == "smollm2-135m" and args.precision == "bf16-autocast" and args.output == gpu.LATEST
    assert args.workers == gpu.DEFAULT_GPU_WORKERS
    dry = gpu.parse_args(["--dry-run"])
    assert dry.family == "tiny" and dry.precision == "fp32" and dry.output is None and dry.workers == 1
    assert gpu.parse_args(["--workers", "3"]).workers == 3
    for argv in (["--dry-run", "--precision", "bf16-autocast"], ["--no-write", "--output", "x.json"],
                 ["--precision", "fp16"], ["--workers", "0"], ["--workers", "two"]):
        with pytest.raises(SystemExit) as exit_info:
            gpu.parse_args(argv)
        assert exit_info.value.code == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_gpu_exits_with_a_message_without_cuda():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--no-write"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "needs a CUDA GPU" in done.stderr and "--dry-run" in done.stderr
    assert done.stdout == ""


def test_nominal_peak_matches_card_names(gpu):
    assert gpu.nominal_peak("NVIDIA H100 80GB HBM3") == ("H100 80GB HBM3", 989.4e12)
    assert gpu.nominal_peak("NVIDIA H100 PCIe")[1] == 756.0e12
    assert gpu.nominal_peak("NVIDIA H200")[1] == 989.4e12
    assert gpu.nominal_peak("NVIDIA A100-SXM4-80GB")[1] == 312.0e12
    assert gpu.nominal_peak("Some Other Card") == (None, None)


def test_flop_counter_charges_forward_training_and_lora(gpu, tiny_model):
    from elasticity import models

    counter = gpu.FlopCounter()
    counter.attach(tiny_model)
    n = sum(p.numel() for p in {id(p): p for p in tiny_model.parameters()}.values())
    ids = torch.ones((2, 5), dtype=torch.long)
    with torch.no_grad():
        tiny_model(input_ids=ids)
    assert counter.tokens["forward"] == 10 and counter.flops == 2 * n * 10
    tiny_model(input_ids=ids)  # grad enabled, every weight trains: forward + backward
    assert counter.tokens["train_full"] == 10 and counter.flops == (2 + 6) * n * 10
    peft_model = models.add_lora(tiny_model, r=2)  # the hook sits on the wrapped model, still called
    peft_model(input_ids=ids[:1])
    assert counter.tokens["train_partial"] == 5 and counter.flops == (2 + 6) * n * 10 + 4 * n * 5


@pytest.mark.slow
def test_gpu_dry_run_on_cpu(gpu, tmp_path, monkeypatch, capsys):
    """The whole script on a CPU: the smoke-scale rebound sweep of the tiny family, FLOPs counted."""
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path / "usual-cache"))
    output = tmp_path / "gpu.json"
    record = gpu.main(["--dry-run", "--output", str(output)])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == record == json.loads(output.read_text())
    assert record["dry_run"] and record["scale"] == "smoke" and record["family"] == "tiny"
    assert record["sweep"]["curve_rows"] > 0 and record["sweep_s"] > 0
    assert record["tokens"]["train_full"] > 0 and record["tokens"]["forward"] > 0
    assert record["counted_tflop"] > 0 and record["fraction_of_measured_peak"] > 0
    assert record["meets_targets"] == {} and record["nominal_bf16_peak_tflops"] is None
    assert {"platform", "cpu", "cpu_count", "memory_gb"} <= set(record["machine"])  # elasticity.machine.describe
    phases = record["phases_s"]
    assert set(phases) == {*gpu.PHASES, "other"}
    assert all(v >= 0 for v in phases.values()) and phases["sft"] > 0 and phases["generate"] > 0
    calls = record["phase_calls"]  # every phase ran; KL once per evaluation, the base log-probs once per unit
    assert all(calls[k] > 0 for k in gpu.PHASES) and calls["kl"] > calls["kl_base"]
    assert sum(phases.values()) == pytest.approx(record["unit_s"], abs=0.5)  # in process: every unit
    assert record["unit_s"] <= record["sweep_s"] and record["workers"] == 1
    assert record["sweep"]["units"] == record["units_done"] == 34 and record["completed"]
    from elasticity import models
    assert models.load.__module__ == "elasticity.models"  # the phase functions are restored afterwards


@pytest.mark.slow
def test_gpu_dry_run_in_two_workers(tmp_path):
    """The script as a command, its units in two worker processes: each unit measured where it ran."""
    output = tmp_path / "gpu.json"
    env = {**os.environ, "ELASTICITY_CACHE": str(tmp_path / "usual-cache"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--dry-run", "--workers", "2",
                           "--output", str(output)], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(output.read_text())
    assert record["workers"] == 2 and record["completed"] and record["sweep"]["units"] == record["units_done"] == 34
    # a load per unit, and one per first fine-tune (2 tasks x 2 positive sizes x 2 seeds, which the SFT and preference
    # curves share, and 2 negative sizes x 2 seeds of the reversed direction); counted in the workers
    assert record["phase_calls"]["load"] == 34 + 8 + 4 and record["phases_s"]["sft"] > 0
    assert record["tokens"]["train_full"] > 0 and record["counted_tflop"] > 0
    assert sum(record["phases_s"].values()) == pytest.approx(record["unit_s"], abs=0.5)


def test_phase_clock_counts_nested_time_in_the_innermost_phase(gpu, monkeypatch):
    now = iter(range(100))
    monkeypatch.setattr(gpu.time, "perf_counter", lambda: float(next(now)))
    clock = gpu.PhaseClock()  # reads t=0

    def generate():  # enters at t=2, leaves at t=3
        return "text"

    def finetune():  # enters at t=1, leaves at t=5: 1 s of its own before the call, 2 s after
        assert clock.timed("generate", generate)() == "text"
        next(now)
        return 7

    assert clock.timed("sft", finetune)() == 7
    assert clock.seconds["sft"] == 3 and clock.seconds["generate"] == 1 and clock.seconds["kl"] == 0
    assert clock.calls["sft"] == 1 and clock.calls["generate"] == 1 and clock.calls["kl"] == 0


def test_units_done_counts_finished_rebound_units(gpu, tmp_path):
    for kind, names in (("rebound-base", ["a", "b"]), ("rebound-unit", ["c", ".tmp-d"]), ("other", ["e"])):
        for name in names:
            (tmp_path / "results" / kind / name).mkdir(parents=True)
    (tmp_path / "results" / "rebound-unit" / "c.lock").touch()
    assert gpu.units_done(tmp_path) == 3


# --------------------------------------------------------------------------------------------------
# identity.py
# --------------------------------------------------------------------------------------------------


def test_identity_compares_units_byte_for_byte(tmp_path):
    identity = load_benchmark("identity")

    def cache(name, texts):
        for key, text in texts.items():
            entry = tmp_path / name / "results" / "rebound-unit" / f"{key}-codekey{name}"
            entry.mkdir(parents=True)
            (entry / "result.json").write_text(text)
        return identity.unit_results(tmp_path / name)

    base = cache("a", {"k1": '{"x": 1.0}', "k2": '{"x": 2.0}'})
    assert set(base) == {"rebound-unit/k1", "rebound-unit/k2"}  # the code key is dropped
    assert identity.identical(base, cache("b", {"k1": '{"x": 1.0}', "k2": '{"x": 2.0}'})) == 2
    assert identity.identical(base, cache("c", {"k1": '{"x": 1.0}', "k2": '{"x": 2.0000001}'})) == 1
    assert identity.identical(base, cache("d", {"k1": '{"x": 1.0}'})) == 1
    assert identity.CANDIDATES["native_kernels"] == {"ELASTICITY_NATIVE_KERNELS": "1"}  # the control


# --------------------------------------------------------------------------------------------------
# rejudge.py
# --------------------------------------------------------------------------------------------------


def test_rejudge_reads_the_status_lines_and_edits_only_judging_modules(tmp_path):
    rejudge = load_benchmark("rejudge")
    text = ("training units at scale default in /c:\n"
            "rebound: 36 training units: 30 present, 6 stale (code changed: elasticity.finetune), 0 missing; "
            "about 5 min to recompute in one process\n"
            "resistance: 48 training units: 48 present, 0 stale, 0 missing\n"
            "verdicts: no training units\n")
    assert rejudge.parse_status(text) == {
        "rebound": {"units": 36, "present": 30, "stale": 6, "missing": 0, "why": "code changed: elasticity.finetune"},
        "resistance": {"units": 48, "present": 48, "stale": 0, "missing": 0, "why": ""}}
    names = {p.name for p in rejudge.judging_files(ROOT / "elasticity")}
    assert {"verdicts.py", "paper.py", "plotting.py", "rebound_judge.py", "rebound_figures.py", "rebound.py",
            "model_size.py", "measured.py"} <= names
    assert not {n for n in names if n.endswith("_units.py")} and "finetune.py" not in names
    assert "compression_with_models.py" in names  # its tables are a unit of their own now
    assert "compression_with_models_units.py" not in names
    (tmp_path / "results" / "kind").mkdir(parents=True)
    (tmp_path / "results" / "kind" / "abc-def").mkdir()
    (tmp_path / "results" / "kind" / ".abc-def.lock").touch()
    assert rejudge.entries(tmp_path) == {"kind": 1}


def test_record_options_and_emit(tmp_path, capsys):
    import argparse

    record = load_script("benchmarks/record.py", "bench_record")
    assert record.latest("book") == ROOT / "benchmarks" / "latest" / "book.json"
    parser = argparse.ArgumentParser()
    record.add_output_options(parser, tmp_path / "default.json")
    assert parser.parse_args([]).output == tmp_path / "default.json"
    assert parser.parse_args(["--no-write"]).output is None
    target = tmp_path / "deep" / "out.json"
    record.emit({"a": 1}, target)
    assert capsys.readouterr().out == '{"a": 1}\n' and json.loads(target.read_text()) == {"a": 1}
    record.emit({"b": 2}, None)
    assert capsys.readouterr().out == '{"b": 2}\n'


# --------------------------------------------------------------------------------------------------
# book_real.py
# --------------------------------------------------------------------------------------------------


def test_book_real_span_runs_from_the_first_start_to_the_last_end():
    book_real = load_benchmark("book_real")
    units = {"a": {"created_utc": "2026-12-07T06:01:40+00:00", "wall_time_s": 100.0},  # 06:00:00-06:01:40
             "b": {"created_utc": "2026-12-07T06:10:30+00:00", "wall_time_s": 30.0}}  # resumed at 06:10:00
    assert book_real._span(units) == pytest.approx(630.0)


def test_book_real_reads_every_archive_of_the_repository(monkeypatch):
    """One record per committed SmolLM2 archive, its figures read from that archive's provenance."""
    from elasticity import archived

    monkeypatch.setenv(archived.ENV, str(ROOT / "results"))
    book_real = load_benchmark("book_real")
    found = book_real.runs("smollm2-135m")
    archives = sorted((ROOT / "results" / "smollm2-135m").glob("*.json"))
    assert [r["archive"] for r in found] == [str(p.relative_to(ROOT)) for p in archives] and found
    for r, path in zip(found, archives, strict=True):
        provenance = json.loads(path.read_text())["provenance"]
        assert r["units"] == len(provenance["units"]) > 0 and r["compute_s"] == provenance["wall_time_s"]
        assert r["span_s"] >= r["compute_s"] - 1  # the union of the units' intervals lies within their span
        assert r["command"].startswith(f"elasticity run {r['chapter']} ") and isinstance(r["stale"], bool)


def test_book_units_seconds_reads_the_last_progress_line(tmp_path):
    book_bench = load_benchmark("book")
    log = tmp_path / "clean.log"
    log.write_text("book: 3 units, 0 cached, 3 to compute\nbar 10%\rbook: 1/3 units, a x=1; 0:07 so far, about 0:14 "
                   "left\nbook: 3/3 units, c; 1:02:03 so far, about 0:00 left\nRunning Sphinx\n")
    assert book_bench.units_seconds(log) == 3723
    log.write_text("book: 3 units, 3 cached, 0 to compute\n")
    assert book_bench.units_seconds(log) is None
