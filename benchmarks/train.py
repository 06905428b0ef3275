"""Benchmark of the fine-tuning engine against a plain transformers `Trainer`, and against the matmul peak.

Prints one JSON line and writes it to benchmarks/latest/train.json. Targets (issue 9): the engine's tokens
per second >= 1.0x those of a plain `Trainer` script with default settings (same model, data, batch size,
learning rate and thread count), and >= 50% of the fp32 matmul peak for the largest `tiny` model.

How it measures:
- Both sides start from the same weights (a deep copy of one model) and train one epoch on the same
  examples (prompt + response, loss on the response, as `elasticity.finetune` trains). Each timed run
  covers tokenization, the LoRA wrapping where asked, and the training loop: what a user waits for.
- Runs alternate, engine and Trainer (A B A B ...), after one short untimed warm-up run of each; a matmul-peak
  sample is taken before every pair. Figures are medians over the rounds.
- Tokens are the examples' real tokens (prompt + response + EOS, no padding), the same count on both sides.
- Achieved FLOP/s = flops_per_token x tokens/s, with flops_per_token = 6 x parameters for full fine-tuning
  (forward 2N, backward 4N) and 4 x parameters for LoRA (forward 2N, backward through the frozen weights
  for the activation gradients 2N; the adapters' own weight gradients are < 1% and not counted). N counts
  every parameter once (tied embeddings once: their matmul is the output layer); attention-score FLOPs and
  padding are not counted, so these are "useful" FLOP/s.
- The fp32 matmul peak is torch.matmul of two n x n float32 matrices (2 n^3 FLOPs), best of a few repeats
  per sample, in the same process with the same thread count.
- Validity: every run records its process CPU time / wall time. On a quiet machine this is close to the
  thread count; a much lower ratio means the cores were shared and the figures are not representative.
- On a shared machine the wall-clock figures mostly measure how much CPU each run was given. The same
  figures per CPU second (tokens / process CPU seconds; matmul FLOPs / CPU seconds over its repeats) are
  reported beside them (`*_per_cpu_s`): with one thread they are nearly immune to sharing; with several,
  threads spinning at barriers count as CPU time, so they flatter nobody but are less exact.

Usage: python benchmarks/train.py [--models tiny-l,smollm2-135m-lora] [--rounds 3] [--threads N]
       [--examples tiny-l=400,smollm2-135m-lora=100] [--no-write | --output PATH]
ELASTICITY_SCALE=smoke makes "tiny-l" the largest smoke-scale tiny model (a toy setting for tests).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402

from elasticity.machine import describe as describe_machine  # noqa: E402

LATEST = Path(__file__).resolve().parent / "latest" / "train.json"
TARGETS = {"engine_over_trainer": 1.0, "tiny_fraction_of_peak": 0.5}
TASK = "sentiment"  # the rebound task whose (negative) training examples both sides train on


@dataclass(frozen=True)
class Setting:
    """One benchmarked model: which weights, full or LoRA, how many examples per run."""

    name: str  # the key users type
    lora: bool
    default_examples: int  # examples per timed run (one epoch), at the default scale
    default_rounds: int  # timed A/B rounds: a short run needs more of them for a steady median on a shared machine
    description: str


SETTINGS = {
    "tiny-l": Setting("tiny-l", False, 400, 9, "largest tiny size (architecture of the preset, random init), full"),
    "smollm2-135m-lora": Setting("smollm2-135m-lora", True, 100, 3, "SmolLM2-135M-Instruct with LoRA (r=8, attention)"),
}


# --------------------------------------------------------------------------------------------------
# Models and data
# --------------------------------------------------------------------------------------------------


def load_model(setting: Setting):
    """(model, tokenizer, description) of a setting, float32 on the CPU."""
    from elasticity import models, pretrain

    if setting.name == "tiny-l":
        # Throughput does not depend on the weights' values: the preset's architecture at random init avoids
        # pre-training the model just to time it (the tokenizer is the tiny family's, trained and cached).
        from transformers import LlamaForCausalLM

        size = pretrain.sizes()[-1]
        cfg = pretrain.preset(size)
        tokenizer = pretrain.load_tokenizer(cfg.tokenizer)
        torch.manual_seed(0)
        model = LlamaForCausalLM(pretrain.llama_config(cfg, tokenizer))
        return model, tokenizer, f"tiny-{size} (hidden {cfg.hidden_size}, {cfg.num_layers} layers), random init"
    model, tokenizer = models.load("smollm2-135m")
    return model, tokenizer, "smollm2-135m (SmolLM2-135M-Instruct, float32)"


def training_examples(n: int):
    """The first n negative training examples of the sentiment task (what a rebound negative run sees)."""
    from elasticity import data

    task = data.task(TASK)
    return data.examples(task.dataset, "train", n=n, seed=0, label=task.negative)


def real_tokens(tokenizer, examples, max_length: int) -> int:
    """Tokens both sides train on: prompt + response + EOS of each example, cut at max_length (no padding)."""
    from elasticity import finetune

    return sum(len(ids) for ids, _ in finetune.encode(tokenizer, examples, max_length))


def count_parameters(model) -> tuple[int, int]:
    """(all parameters, trainable parameters), each tensor counted once (tied weights once)."""
    seen, total, trainable = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return total, trainable


# --------------------------------------------------------------------------------------------------
# The two sides
# --------------------------------------------------------------------------------------------------


def run_engine(model, tokenizer, examples, args, lora: bool) -> None:
    """One epoch of `elasticity.finetune.finetune` (adds LoRA itself when asked)."""
    from elasticity import finetune

    cfg = finetune.FinetuneConfig(learning_rate=args.learning_rate, epochs=1.0, batch_size=args.batch_size,
                                  max_length=args.max_length, seed=0, lora=lora)
    finetune.finetune(model, tokenizer, examples, cfg, progress=False)


def run_trainer(model, tokenizer, examples, args, lora: bool) -> None:
    """One epoch of a plain transformers `Trainer` script: datasets.map tokenization, DataCollatorForSeq2Seq
    (dynamic padding, labels padded with -100), `TrainingArguments` defaults except the batch size, learning
    rate, epochs, seed and what keeps it quiet (no saving, no reporting, no progress bar)."""
    import datasets
    from transformers import DataCollatorForSeq2Seq, PrinterCallback, Trainer, TrainingArguments

    if lora:
        from elasticity import models

        model = models.add_lora(model, r=8)
    eos = tokenizer.eos_token_id

    def tokenize(row):
        prompt = tokenizer(row["prompt"])["input_ids"]
        response = tokenizer(row["response"], add_special_tokens=False)["input_ids"] + [eos]
        ids = (prompt + response)[: args.max_length]
        labels = ([-100] * len(prompt) if row["prompt"] else list(prompt)) + response
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels[: args.max_length]}

    raw = datasets.Dataset.from_list([{"prompt": e.prompt, "response": e.response} for e in examples])
    dataset = raw.map(tokenize, remove_columns=["prompt", "response"])
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        training_args = TrainingArguments(output_dir=tmp, per_device_train_batch_size=args.batch_size,
                                          num_train_epochs=1, learning_rate=args.learning_rate, seed=0,
                                          report_to="none", save_strategy="no", disable_tqdm=True,
                                          use_cpu=True)
        trainer = Trainer(model=model, args=training_args, train_dataset=dataset,
                          data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100))
        trainer.remove_callback(PrinterCallback)  # it prints the final log to stdout, where the JSON line goes
        trainer.train()


SIDES = {"engine": run_engine, "trainer": run_trainer}


def timed(fn, *fn_args) -> dict:
    """Wall seconds and process CPU seconds of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn(*fn_args)
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "cpu_per_wall": cpu / wall}


def matmul_peak_flops(n: int, repeats: int = 5) -> dict:
    """fp32 matmul throughput of two n x n matrices: best of `repeats` timed products (FLOP/s)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator)
    b = torch.randn(n, n, generator=generator)
    torch.matmul(a, b)  # warm-up
    best, cpu, wall = float("inf"), time.process_time(), time.perf_counter()
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    cpu = time.process_time() - cpu
    ratio = cpu / (time.perf_counter() - wall)
    return {"flops": 2 * n**3 / best, "cpu_per_wall": ratio, "flops_per_cpu_s": repeats * 2 * n**3 / cpu}


MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm")


def profile_engine(model, tokenizer, examples, args) -> dict:
    """Where one engine run's time goes (torch.profiler, one extra untimed run): the share of operator time
    in matrix products, their own FLOP/s, and the largest other operators. It bounds what
    any loop around these operators could reach: with every other operator free, the run would still take
    the matmul time. The profiler adds a few microseconds per operator, so the small operators' share is
    somewhat overstated."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        run_engine(model, tokenizer, examples, args, lora=False)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)  # microseconds, each operator's own time once
    matmul = [e for e in events if e.key in MATMUL_OPS]
    matmul_us = sum(e.self_cpu_time_total for e in matmul)
    matmul_gflops = sum(e.flops for e in matmul) / (matmul_us * 1e-6) / 1e9
    others = sorted((e for e in events if e.key not in MATMUL_OPS), key=lambda e: -e.self_cpu_time_total)
    return {"matmul_share_of_time": round(matmul_us / total, 3), "matmul_gflops": round(matmul_gflops, 2),
            "matmul_s": round(matmul_us * 1e-6, 4), "other_ops_s": round((total - matmul_us) * 1e-6, 4),
            "largest_other_ops": {e.key: round(e.self_cpu_time_total / total, 3) for e in others[:6]}}


def ceiling(profile: dict, useful_flops: float, peak: float, target: float) -> dict:
    """What the profiled matmul time allows: the fraction of the peak the run would reach if every other
    operator took no time, and how many seconds the other operators may take for the run to reach `target`."""
    return {"fraction_if_only_matmuls": round(useful_flops / profile["matmul_s"] / peak, 3),
            "other_ops_s_allowed": round(useful_flops / (target * peak) - profile["matmul_s"], 3)}


# --------------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------------


def median(values) -> float:
    return float(statistics.median(values))


def benchmark_setting(setting: Setting, n_examples: int, rounds: int, args, peaks: list[dict], log) -> dict:
    """Alternate engine and Trainer runs on one setting; returns its figures (peak samples appended to `peaks`)."""
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    base, tokenizer, description = load_model(setting)
    examples = training_examples(n_examples)
    tokens = real_tokens(tokenizer, examples, args.max_length)
    num_parameters, _ = count_parameters(base)
    flops_per_token = (4 if setting.lora else 6) * num_parameters
    samples = {side: [] for side in SIDES}
    order = list(SIDES)
    # Round -1 is an untimed warm-up of each side (imports, first allocations) on the first two batches.
    warm_up = examples[: 2 * args.batch_size]
    warm_tokens = real_tokens(tokenizer, warm_up, args.max_length)
    for round_index in range(-1, rounds):
        if round_index >= 0:
            peaks.append(matmul_peak_flops(args.matmul_n))
        for side in order:
            model = copy.deepcopy(base)
            model.train()
            transformers.set_seed(0)
            run_examples = examples if round_index >= 0 else warm_up
            result = timed(SIDES[side], model, tokenizer, run_examples, args, setting.lora)
            result["tokens_per_s"] = (tokens if round_index >= 0 else warm_tokens) / result["wall_s"]
            result["tokens_per_cpu_s"] = (tokens if round_index >= 0 else warm_tokens) / result["cpu_s"]
            if round_index >= 0:
                samples[side].append(result)
            log(f"{setting.name} round {round_index + 1}/{rounds} {side}: {result['tokens_per_s']:.0f} tok/s, "
                f"cpu/wall {result['cpu_per_wall']:.2f}{' (warm-up)' if round_index < 0 else ''}")
        order.reverse()  # A B, B A, A B ...: neither side always runs first after the peak sample
    out = {"description": description, "lora": setting.lora, "num_parameters": num_parameters,
           "trainable_parameters": count_parameters(_with_lora(base) if setting.lora else base)[1],
           "examples": n_examples, "rounds": rounds, "tokens_per_run": tokens,
           "flops_per_token": flops_per_token,
           "flop_formula": "4 x parameters (LoRA)" if setting.lora else "6 x parameters (full)"}
    for side, runs in samples.items():
        rate = median(r["tokens_per_s"] for r in runs)
        out[side] = {"tokens_per_s": round(rate, 1), "achieved_gflops": round(rate * flops_per_token / 1e9, 3),
                     "wall_s": [round(r["wall_s"], 3) for r in runs],
                     "cpu_s": [round(r["cpu_s"], 4) for r in runs],
                     "cpu_per_wall": round(median(r["cpu_per_wall"] for r in runs), 2),
                     "tokens_per_cpu_s": round(median(r["tokens_per_cpu_s"] for r in runs), 1)}
    if not setting.lora:
        model = copy.deepcopy(base)
        model.train()
        transformers.set_seed(0)
        out["engine_profile"] = profile_engine(model, tokenizer, examples, args)
        log(f"{setting.name} profile: {out['engine_profile']}")
    out["engine_over_trainer"] = round(out["engine"]["tokens_per_s"] / out["trainer"]["tokens_per_s"], 3)
    # Each round's two runs are adjacent in time: their ratio shows how steady the comparison was.
    out["engine_over_trainer_by_round"] = [round(e["tokens_per_s"] / t["tokens_per_s"], 3)
                                           for e, t in zip(samples["engine"], samples["trainer"], strict=True)]
    out["engine_over_trainer_per_cpu_s"] = round(out["engine"]["tokens_per_cpu_s"]
                                                  / out["trainer"]["tokens_per_cpu_s"], 3)
    return out


def _with_lora(model):
    from elasticity import models

    return models.add_lora(copy.deepcopy(model), r=8)


def parse_examples(text: str | None) -> dict[str, int]:
    out = {}
    for item in filter(None, (text or "").split(",")):
        name, _, value = item.partition("=")
        if name not in SETTINGS or not value.isdigit() or int(value) < 1:
            raise ValueError(f"--examples item {item!r}: expected NAME=N with NAME in {sorted(SETTINGS)}, N >= 1")
        out[name] = int(value)
    return out


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(SETTINGS),
                        help=f"comma-separated settings, of {', '.join(SETTINGS)} (default: all)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="timed A/B rounds after one warm-up (default: " + ", ".join(
                            f"{s.name} {s.default_rounds}" for s in SETTINGS.values()) + ")")
    parser.add_argument("--examples", help="examples per run, e.g. tiny-l=400,smollm2-135m-lora=100")
    parser.add_argument("--batch-size", type=int, default=10, help="examples per step (rebound protocol: 10)")
    parser.add_argument("--max-length", type=int, default=64, help="tokens per example (rebound protocol: 64)")
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--matmul-n", type=int, default=2048, choices=(1024, 2048), help="matmul peak size")
    parser.add_argument("--output", type=Path, default=LATEST, help=f"JSON file to write (default {LATEST})")
    parser.add_argument("--no-write", action="store_true", help="print the JSON line only")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    unknown = [m for m in names if m not in SETTINGS]
    if unknown or not names:
        parser.error(f"--models {args.models!r}: unknown {unknown}; choose from {', '.join(SETTINGS)}")
    args.models = names
    try:
        args.examples = parse_examples(args.examples)
    except ValueError as error:
        parser.error(str(error))
    for name in ("rounds", "batch_size", "max_length"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.max_length < 2:
        parser.error("--max-length must be >= 2")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    return args


def engine_source() -> dict:
    """Which `elasticity.finetune` was measured: its file and the SHA-256 of its source (first 16 hex digits)."""
    import hashlib

    from elasticity import finetune

    path = Path(finetune.__file__)
    return {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16]}


def main(argv=None) -> dict:
    import transformers

    from elasticity import config

    args = parse_args(argv)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    log = (lambda _: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    load_start = [round(x, 2) for x in os.getloadavg()]
    start = time.perf_counter()
    peaks: list[dict] = []
    results = {}
    for name in args.models:
        setting = SETTINGS[name]
        n = args.examples.get(name, setting.default_examples)
        results[name] = benchmark_setting(setting, n, args.rounds or setting.default_rounds, args, peaks, log)
    peak = median(p["flops"] for p in peaks)
    peak_per_cpu_s = median(p["flops_per_cpu_s"] for p in peaks)
    for out in results.values():
        for side in SIDES:
            out[side]["fraction_of_peak"] = round(out[side]["achieved_gflops"] * 1e9 / peak, 4)
            out[side]["fraction_of_peak_per_cpu_s"] = round(
                out[side]["tokens_per_cpu_s"] * out["flops_per_token"] / peak_per_cpu_s, 4)
        if "engine_profile" in out:  # the profiled matmuls against the same peak as the runs
            out["engine_profile"]["matmul_fraction_of_peak"] = round(
                out["engine_profile"]["matmul_gflops"] * 1e9 / peak, 3)
            out["engine_profile"].update(ceiling(out["engine_profile"], out["tokens_per_run"] * out["flops_per_token"],
                                                 peak, TARGETS["tiny_fraction_of_peak"]))
    ratios = {f"{name} engine/trainer": out["engine_over_trainer"] for name, out in results.items()}
    ratios.update({f"{name} engine/peak": out["engine"]["fraction_of_peak"] for name, out in results.items()})
    ratios.update({f"{name} engine/trainer per CPU second": out["engine_over_trainer_per_cpu_s"]
                   for name, out in results.items()})
    ratios.update({f"{name} engine/peak per CPU second": out["engine"]["fraction_of_peak_per_cpu_s"]
                   for name, out in results.items()})
    meets = {f"{name} engine >= {TARGETS['engine_over_trainer']}x trainer":
             out["engine_over_trainer"] >= TARGETS["engine_over_trainer"] for name, out in results.items()}
    if "tiny-l" in results:
        meets[f"tiny-l engine >= {TARGETS['tiny_fraction_of_peak']:.0%} of matmul peak"] = (
            results["tiny-l"]["engine"]["fraction_of_peak"] >= TARGETS["tiny_fraction_of_peak"])
    cpu_per_wall = median(out[side]["cpu_per_wall"] for out in results.values() for side in SIDES)
    record = {
        "benchmark": "train",
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "scale": config.scale(),
        "setting": {"task": TASK, "batch_size": args.batch_size, "max_length": args.max_length,
                    "learning_rate": args.learning_rate, "order": "alternating, medians of each setting's rounds"},
        "matmul_peak": {"n": args.matmul_n, "dtype": "float32", "gflops": round(peak / 1e9, 2),
                        "samples_gflops": [round(p["flops"] / 1e9, 2) for p in peaks],
                        "gflop_per_cpu_s": round(peak_per_cpu_s / 1e9, 2),
                        "cpu_per_wall": [round(p["cpu_per_wall"], 2) for p in peaks]},
        "models": results,
        "ratios": ratios,
        "targets": TARGETS,
        "meets_targets": meets,
        "threads": threads,
        "cpu_per_wall": round(cpu_per_wall, 2),
        # A figure is representative only when the process kept its threads busy (CPU/wall near the thread
        # count); on a shared machine it falls, and every rate above is deflated.
        "valid": bool(cpu_per_wall >= 0.8 * threads),
        "load_average": {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]},
        "wall_s": round(time.perf_counter() - start, 1),
        "machine": describe_machine(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "engine_source": engine_source(),
    }
    line = json.dumps(record)
    print(line)
    if not args.no_write:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(record, indent=1) + "\n")
    return record


if __name__ == "__main__":
    main()
