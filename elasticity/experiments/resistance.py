"""Resistance: forward against inverse alignment between SFT checkpoints (the paper's Tables 1 and 2)."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

import elasticity.config
from elasticity import data, finetune, generate, models, paper, plotting, results, scoring, verdicts
from elasticity.config import UserError, check_types

NAME = "resistance"
CHAPTER = "resistance"  # the notebook stem that shows this experiment
CLAIMS = ("resistance", "resistance_kl")  # keys of paper.CLAIMS this experiment tests

# The paper's three alignment datasets (Alpaca, TruthfulQA, BeaverTails), registered in `data.DATASETS`
# by hub id; a hub family runs them when `datasets` is left unset.
PAPER_DATASETS = ("alpaca", "truthfulqa", "beavertails")
OFFLINE_DATASETS = ("rotten-tomatoes", "tweets-safety")

_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


def default_pairs(num_checkpoints: int) -> tuple[tuple[int, int], ...]:
    """The checkpoint pairs (k, l), k < l, compared by default: neighbours, then first with last.

    With 3 checkpoints these are the paper's Table 1 columns (1, 2), (2, 3), (1, 3); with 7 they are
    the seven pairs of its finer Table 2 (six neighbours and (1, 7)).
    """
    pairs = [(k, k + 1) for k in range(1, num_checkpoints)]
    if num_checkpoints > 2:
        pairs.append((1, num_checkpoints))
    return tuple(pairs)


def pair_label(pair: tuple[int, int]) -> str:
    """A Table 1 column heading: 'θ2→θ1 vs θ1→θ2' (inverse vs forward) for the pair (1, 2)."""
    early, late = pair
    return f"θ{late}→θ{early} vs θ{early}→θ{late}"


@dataclass(frozen=True)
class Config:
    """The resistance experiment.

    From the pre-trained model theta_0 of `family`, one epoch of SFT on `num_sft` examples of each dataset
    saves `num_checkpoints` checkpoints theta_1..theta_n at equal fractions of the epoch. Each checkpoint
    answers the same `num_samples` held-out prompts: dataset D_k (and `num_eval` further held-out prompts,
    never trained on, on which losses and KLs are evaluated). For each pair (k, l), forward alignment
    trains theta_k on D_l and inverse alignment trains theta_l on D_k, both for `steps` optimizer steps
    with the same learning rate, batch size and data size. Everything is repeated for each seed.
    """

    family: str = "tiny"  # key of models.FAMILIES
    size: str | None = None  # key of models.sizes(family); None: models.default_size(family)
    datasets: tuple[str, ...] = OFFLINE_DATASETS  # keys of data.DATASETS: the alignment datasets
    num_checkpoints: int = 3  # SFT checkpoints theta_1..theta_n along one epoch
    pairs: tuple[tuple[int, int], ...] | None = None  # (k, l), 1 <= k < l <= n; None: default_pairs(n)
    num_sft: int = 256  # examples in the SFT epoch that makes the checkpoints
    sft_learning_rate: float = 3e-3  # learning rate of that SFT
    num_samples: int = 128  # held-out prompts answered by each checkpoint: |D_k|, the training data
    num_eval: int = 32  # further held-out prompts each checkpoint answers, for evaluation only
    max_new_tokens: int = 24  # length of each generated response, tokens
    steps: int = 16  # optimizer steps of each forward and inverse fine-tune
    learning_rate: float = 2e-4  # learning rate of the forward and inverse fine-tunes
    batch_size: int = 8  # examples per optimizer step, everywhere
    max_length: int = 64  # tokens per training example (prompt + response), everywhere
    lora: bool = False  # LoRA instead of full fine-tuning, everywhere
    seeds: tuple[int, ...] = (0, 1, 2)  # one full replicate (SFT, sampling, fine-tunes) per seed
    device: str = "cpu"  # torch device: cpu | cuda | cuda:N | mps

    def __post_init__(self) -> None:
        if isinstance(self.pairs, list | tuple):  # papermill and YAML give lists of lists
            pairs = tuple(tuple(p) if isinstance(p, list) else p for p in self.pairs)
            object.__setattr__(self, "pairs", pairs)
        check_types(self)
        elasticity.config.choice("family", self.family, models.FAMILIES)
        if self.size is not None:
            elasticity.config.choice(f"size of family {self.family!r}", self.size, models.sizes(self.family))
        if not self.datasets:
            raise UserError("datasets is empty; give at least one key of data.DATASETS")
        for name in self.datasets:
            elasticity.config.choice("dataset", name, data.DATASETS)
        if len(set(self.datasets)) != len(self.datasets):
            raise UserError(f"datasets {self.datasets!r} repeats a name")
        if self.num_checkpoints < 2:
            raise UserError(f"num_checkpoints = {self.num_checkpoints}; needs at least 2 checkpoints to pair")
        for pair in self.pairs or ():
            early, late = pair
            if not 1 <= early < late <= self.num_checkpoints:
                raise UserError(
                    f"checkpoint pair {pair!r} is out of range; needs 1 <= k < l <= num_checkpoints "
                    f"= {self.num_checkpoints}"
                )
        if self.pairs is not None and (not self.pairs or len(set(self.pairs)) != len(self.pairs)):
            raise UserError(f"pairs {self.pairs!r} is empty or repeats a pair")
        for name in ("num_sft", "num_samples", "num_eval", "max_new_tokens", "steps", "batch_size",
                     "max_length"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} = {getattr(self, name)}; must be at least 1")
        if self.num_sft < self.num_checkpoints:
            raise UserError(f"num_sft = {self.num_sft} is fewer than num_checkpoints "
                            f"= {self.num_checkpoints}")
        for name in ("learning_rate", "sft_learning_rate"):
            if not 0 < getattr(self, name) < 1:
                raise UserError(f"{name} = {getattr(self, name)}; must be in (0, 1)")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise UserError(f"seeds {self.seeds!r} is empty or repeats a seed")
        if not _DEVICE.match(self.device):
            raise UserError(f"device {self.device!r} is not one of cpu, cuda, cuda:N, mps")

    @property
    def checkpoint_pairs(self) -> tuple[tuple[int, int], ...]:
        """The pairs (k, l) this run compares."""
        return self.pairs or default_pairs(self.num_checkpoints)

    @property
    def model(self) -> str:
        """The model's name in tables: family, and size where the family has several."""
        if len(models.sizes(self.family)) < 2:
            return self.family
        return f"{self.family}-{self.size or models.default_size(self.family)}"


# The default scale runs the middle tiny size (280k parameters; the 1.05M default size costs 3.8 times the
# FLOPs per token): 2 datasets x 3 seeds x 3 pairs x 2 directions = 36 fine-tunes, plus 6 SFT epochs and 18 sampling
# runs, within the chapter's 5-minute budget on 2 CPU cores.
PRESETS = {
    "default": Config(size="m"),
    "smoke": Config(size="s", datasets=("rotten-tomatoes",), num_sft=24, num_samples=8, num_eval=8, max_new_tokens=8,
                    steps=2, batch_size=4, max_length=32, seeds=(0, 1)),
}


def config(**overrides) -> Config:
    """The preset of the current scale (`ELASTICITY_SCALE`) with the non-None overrides.

    Another family than the preset's starts from its own default size; a hub family (not tiny, not
    smollm2-135m) runs the paper's three datasets when `datasets` is not given.
    """
    base = PRESETS[elasticity.config.scale()]
    family = overrides.get("family") or base.family
    if family != base.family:
        base = dataclasses.replace(base, family=family, size=None)  # the preset's size is a tiny size
    if overrides.get("datasets") is None and models.family(family).kind == "hub":
        overrides = {**overrides, "datasets": PAPER_DATASETS}
    return elasticity.config.replace(base, **overrides)


# ---------------------------------------------------------------------------------------------------------
# Cached units. An interrupted run resumes at the first unit not yet cached.
#   1. `_Sft`: one epoch of SFT of theta_0 on one dataset and seed: checkpoints theta_1..theta_n (files).
#   2. `_Samples`: the held-out prompts and each checkpoint's responses D_1..D_n (training part and
#      evaluation part), with the loss of each evaluation part under its own generating checkpoint (the
#      floor that normalises Table 1's cells).
#   3. `_Align`: one forward or inverse fine-tune on one pair, its final loss and the KL to the target.
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sft:
    family: str
    size: str | None
    dataset: str
    num_sft: int
    num_checkpoints: int
    learning_rate: float
    batch_size: int
    max_length: int
    lora: bool
    seed: int
    device: str


@dataclass(frozen=True)
class _Samples:
    sft: _Sft
    num_samples: int
    num_eval: int
    max_new_tokens: int


@dataclass(frozen=True)
class _Align:
    samples: _Samples
    pair: tuple[int, int]
    direction: str  # forward: theta_k trained on D_l; inverse: theta_l trained on D_k
    steps: int
    learning_rate: float


def _sft_unit(cfg: Config, dataset: str, seed: int) -> _Sft:
    return _Sft(cfg.family, cfg.size, dataset, cfg.num_sft, cfg.num_checkpoints, cfg.sft_learning_rate,
                cfg.batch_size, cfg.max_length, cfg.lora, seed, cfg.device)


def alignment_label(dataset: str) -> str | None:
    """The label of `dataset` a model is aligned with: a rebound task's positive label ("positive",
    "safe") when a task uses the dataset, else "positive" if the dataset has it, else all examples (None).
    """
    for task in data.TASKS.values():
        if task.dataset == dataset:
            return task.positive
    return "positive" if "positive" in data.DATASETS[dataset].labels else None


def heldout_prompts(dataset: str, n: int, seed: int) -> list[str]:
    """The held-out prompts every checkpoint answers: a rebound task's prompts when a task uses the dataset
    (for Rotten Tomatoes: openings of positive and negative reviews, not of plot summaries), else the
    dataset's eval-split prompts."""
    for task in data.TASKS.values():
        if task.dataset == dataset:
            return task.eval_prompts(n, seed=seed)
    return data.prompts(dataset, "eval", n=n, seed=seed)


def _sd(values) -> float:
    return float(np.std(np.asarray(values, dtype=float), ddof=1)) if len(values) > 1 else math.nan


def _build_checkpoints(unit: _Sft, directory: Path) -> None:
    """One epoch of SFT from theta_0, saving theta_1..theta_n as `directory/theta_<k>`."""
    model, tokenizer = models.load(unit.family, size=unit.size, device=unit.device, lora=unit.lora,
                                   seed=unit.seed)
    label = alignment_label(unit.dataset)
    train = data.examples(unit.dataset, "train", n=unit.num_sft, seed=unit.seed, label=label)
    fractions = tuple((k + 1) / unit.num_checkpoints for k in range(unit.num_checkpoints))
    ft = finetune.FinetuneConfig(learning_rate=unit.learning_rate, epochs=1.0, batch_size=unit.batch_size,
                                 max_length=unit.max_length, seed=unit.seed, lora=unit.lora,
                                 checkpoint_fractions=fractions)
    out = finetune.finetune(model, tokenizer, train, ft, output_dir=directory / "run", progress=False)
    if len(out.checkpoints) != unit.num_checkpoints:
        raise RuntimeError(f"finetune saved {len(out.checkpoints)} checkpoints, "
                           f"expected {unit.num_checkpoints}")
    for k, path in enumerate(out.checkpoints, start=1):
        Path(path).rename(directory / f"theta_{k}")


def _checkpoints(unit: _Sft) -> Path:
    return results.artifact_dir(f"{NAME}-sft", unit, _build_checkpoints)


def _load_checkpoint(unit: _Sft, k: int):
    """A fresh trainable copy of theta_k of a cached SFT run, with its tokenizer."""
    return finetune.load_checkpoint(_checkpoints(unit) / f"theta_{k}", device=unit.device)


def _examples(prompts: list[str], responses: list[str]) -> list[data.Example]:
    return [data.Example(prompt=p, response=r) for p, r in zip(prompts, responses, strict=True)]


def _compute_samples(unit: _Samples) -> dict:
    sft = unit.sft
    # Nested prompts: the first num_samples are trained on, the next num_eval only evaluated on.
    prompts = heldout_prompts(sft.dataset, unit.num_samples + unit.num_eval, sft.seed)
    responses, floor = [], []
    for k in range(1, sft.num_checkpoints + 1):
        model, tokenizer = _load_checkpoint(sft, k)
        model.eval()
        texts = generate.generate(model, tokenizer, prompts, max_new_tokens=unit.max_new_tokens,
                                  seed=sft.seed, batch_size=32, progress=False)
        responses.append(texts)
        own = _examples(prompts, texts)[unit.num_samples:]
        floor.append(finetune.mean_loss(model, tokenizer, own, max_length=sft.max_length))
        del model
    return {"prompts": prompts, "responses": responses, "floor_loss_nats": floor}


def _samples(unit: _Samples) -> dict:
    return results.load_or_run(f"{NAME}-samples", unit, _compute_samples)


def _compute_align(unit: _Align) -> dict:
    sft = unit.samples.sft
    early, late = unit.pair
    start, target = (early, late) if unit.direction == "forward" else (late, early)
    samples = _samples(unit.samples)
    target_data = _examples(samples["prompts"], samples["responses"][target - 1])
    train, held_out = target_data[: unit.samples.num_samples], target_data[unit.samples.num_samples :]

    model, tokenizer = _load_checkpoint(sft, start)
    reference, _ = _load_checkpoint(sft, target)
    reference.eval()
    model.eval()
    # KL(target checkpoint || model) over the response tokens of the target's held-out answers, nats/token.
    kl_before = scoring.kl_divergence(reference, model, tokenizer, held_out, max_length=sft.max_length)

    # Same number of optimizer steps in both directions: epochs is chosen so that `steps` batches are drawn.
    batches_per_epoch = math.ceil(len(train) / sft.batch_size)
    ft = finetune.FinetuneConfig(learning_rate=unit.learning_rate, epochs=unit.steps / batches_per_epoch,
                                 batch_size=sft.batch_size, max_length=sft.max_length, seed=sft.seed,
                                 lora=sft.lora)
    out = finetune.finetune(model, tokenizer, train, ft, progress=False)
    trained = out.model
    trained.eval()
    kl_after = scoring.kl_divergence(reference, trained, tokenizer, held_out, max_length=sft.max_length)
    # The trained model's loss on the target's held-out answers, evaluated as the floor is (same examples,
    # EOS included). Unlike the final training loss it cannot be lowered by memorising the training set.
    heldout_loss = finetune.mean_loss(trained, tokenizer, held_out, max_length=sft.max_length)
    return {
        "final_loss_nats": float(out.final_loss),
        "heldout_loss_nats": float(heldout_loss),
        "losses": [float(x) for x in out.losses],
        "steps": len(out.losses),
        "kl_before_nats": float(kl_before),
        "kl_after_nats": float(kl_after),
        "target_floor_nats": float(samples["floor_loss_nats"][target - 1]),
    }


def _align(unit: _Align) -> dict:
    return results.load_or_run(f"{NAME}-align", unit, _compute_align)


# ---------------------------------------------------------------------------------------------------------
# The experiment.
# ---------------------------------------------------------------------------------------------------------


def run(cfg: Config) -> dict:
    """Run the resistance protocol for every dataset, seed and checkpoint pair.

    Returns:
        A dict of tidy DataFrames:
        `runs`: one row per (dataset, seed, pair, direction): final training loss (nats/token, the
            paper's Table 1 quantity: mean over the last 10% of steps); on the target checkpoint's answers
            to the `num_eval` evaluation prompts: the trained model's loss (`heldout_loss_nats`), the
            target checkpoint's own loss (`target_floor_nats`), the excess (`heldout_loss_nats -
            target_floor_nats`), the KL (nats/token) from the target checkpoint to the model before and
            after training, and its change (`kl_change_nats` = before - after).
        `curves`: the per-step training loss of every fine-tune.
        `cells`: one row per (dataset, model, pair, metric): forward and inverse means and standard
            deviations over seeds, the paired difference and whether the paper's ordering holds beyond
            the seed spread.
        `table1`: our cells in the paper's layout; `paper_table1`, `paper_table2`: the paper's.
        `verdicts`: the computed verdicts (claims `resistance` and `resistance_kl`).
    """
    sfts = [_sft_unit(cfg, d, s) for d in cfg.datasets for s in cfg.seeds]
    units = [
        _Align(_Samples(sft, cfg.num_samples, cfg.num_eval, cfg.max_new_tokens), pair, direction, cfg.steps,
               cfg.learning_rate)
        for sft in sfts for pair in cfg.checkpoint_pairs for direction in ("forward", "inverse")
    ]
    rows, curves = [], []
    threads = torch.get_num_threads()
    if models.family(cfg.family).kind == "tiny" and cfg.device == "cpu":
        torch.set_num_threads(1)  # a 1M-parameter model gains nothing from intra-op threads; a busy CPU loses
    try:
        outs = [_align(unit) for unit in tqdm(units, desc="resistance: fine-tunes", unit="run")]
    finally:
        torch.set_num_threads(threads)
    for unit, out in zip(units, outs, strict=True):
        sft = unit.samples.sft
        key = {"dataset": sft.dataset, "model": cfg.model, "seed": sft.seed, "k": unit.pair[0],
               "l": unit.pair[1], "pair": pair_label(unit.pair), "direction": unit.direction}
        names = ("final_loss_nats", "heldout_loss_nats", "target_floor_nats", "kl_before_nats", "kl_after_nats",
                 "steps")
        rows.append({**key, **{n: out[n] for n in names}})
        curves.extend({**key, "step": i + 1, "loss_nats": x} for i, x in enumerate(out["losses"]))
    runs = pd.DataFrame(rows)
    runs["excess_loss_nats"] = runs["heldout_loss_nats"] - runs["target_floor_nats"]
    runs["kl_change_nats"] = runs["kl_before_nats"] - runs["kl_after_nats"]
    cells = summarize(runs)
    return {
        "runs": runs,
        "curves": pd.DataFrame(curves),
        "cells": cells,
        "table1": layout(cells, "final_loss_nats"),
        "paper_table1": paper_layout(),
        "paper_table2": paper_table2(),
        "verdicts": verdicts.to_frame(judge(cells, num_seeds=len(cfg.seeds))),
    }


def load_or_run(cfg: Config) -> dict:
    """The cached result of `run(cfg)`, computed (and cached unit by unit) on first use."""
    return results.load_or_run(NAME, cfg, run)


# ---------------------------------------------------------------------------------------------------------
# Summaries, verdicts and the paper's layout.
# ---------------------------------------------------------------------------------------------------------

# The metrics compared per cell. For each, the paper's ordering reads "forward - inverse > 0":
# a lower final loss, excess loss or remaining KL for inverse alignment (Table 1), and a larger KL change
# for forward alignment (Table 2, "forward > inverse").
METRICS = {
    "final_loss_nats": "inverse < forward",  # Table 1: final training loss
    "excess_loss_nats": "inverse < forward",  # held-out target loss less its loss under its own checkpoint
    "kl_after_nats": "inverse < forward",  # KL from the target checkpoint left after training
    "kl_change_nats": "forward > inverse",  # Table 2: change of that KL, before - after
}


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model, pair, metric): means and SDs over seeds and the paired seed difference.

    `difference_mean` is the mean over seeds of forward - inverse (same seed, so paired); the paper's
    ordering holds "beyond the seed spread" when that mean is of the predicted sign by the book's one-sided
    t-test (`verdicts.above_zero`: |mean| > t_critical(n) x SD / sqrt(n)), the rule of every chapter. With
    one seed there is no standard error and no cell passes or fails.
    """
    rows = []
    keys = ["dataset", "model", "k", "l", "pair"]
    for key, group in runs.groupby(keys, sort=False):
        wide = group.pivot(index="seed", columns="direction")
        for metric, prediction in METRICS.items():
            fwd, inv = wide[(metric, "forward")], wide[(metric, "inverse")]
            diff = (fwd - inv).to_numpy()
            n = len(diff)
            sd = float(np.std(diff, ddof=1)) if n > 1 else float("nan")
            mean = float(np.mean(diff))
            se = sd / math.sqrt(n) if n > 1 else float("nan")
            rows.append({
                **dict(zip(keys, key, strict=True)), "metric": metric, "prediction": prediction,
                "forward_mean": float(fwd.mean()), "forward_sd": _sd(fwd),
                "inverse_mean": float(inv.mean()), "inverse_sd": _sd(inv),
                "difference_mean": mean, "difference_sd": sd, "num_seeds": n,
                "holds_beyond_spread": verdicts.above_zero(mean, se, n) is True,
                "fails_beyond_spread": verdicts.above_zero(-mean, se, n) is True,
            })
    return pd.DataFrame(rows)


def layout(cells: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One metric's cells in the paper's layout: rows dataset x model, columns pairs, 'inverse vs forward'."""
    sub = cells[cells["metric"] == metric].copy()
    sub["cell"] = [
        f"{r.inverse_mean:.3f}±{r.inverse_sd:.3f} vs {r.forward_mean:.3f}±{r.forward_sd:.3f}"
        for r in sub.itertuples()
    ]
    order = list(dict.fromkeys(sub["pair"]))
    table = sub.pivot(index=["dataset", "model"], columns="pair", values="cell")[order]
    return table.reset_index().rename_axis(columns=None)


def paper_layout() -> pd.DataFrame:
    """The paper's Table 1 cells that were transcribed, in its layout; untranscribed cells are 'n/a'."""
    p = paper.table1_resistance()
    p["pair_label"] = [pair_label(tuple(x)) for x in p["pair"]]
    p["cell"] = [f"{r.inverse_loss:g} vs {r.forward_loss:g}" for r in p.itertuples()]
    order = [pair_label(x) for x in default_pairs(3)]
    table = p.pivot(index=["dataset", "model"], columns="pair_label", values="cell").reindex(columns=order)
    table = table.reindex(pd.MultiIndex.from_product([paper.RESISTANCE_DATASETS, paper.RESISTANCE_MODELS],
                                                     names=["dataset", "model"]))
    return table.fillna("n/a").reset_index().rename_axis(columns=None)


def paper_table2() -> pd.DataFrame:
    """The paper's Table 2 cells that were transcribed, with the pair written as in our tables."""
    table = paper.table2_kl_change()
    table["pair"] = [f"θ{k}/θ{late}" for k, late in table["pair"]]
    return table


def judge(cells: pd.DataFrame, *, num_seeds: int) -> list[verdicts.Verdict]:
    """The verdicts on Table 1 (final loss) and Table 2 (KL change), computed from the cells."""
    out = []
    for claim, metric, paper_figure in (
        ("resistance", "final_loss_nats",
         f"{paper.TABLE1_CELLS_INVERSE_LOWER} of {paper.TABLE1_CELLS} cells inverse < forward "
         "(no seeds reported)"),
        ("resistance_kl", "kl_change_nats",
         f"{paper.TABLE2_PAIRS} of {paper.TABLE2_PAIRS} pairs forward > inverse (no seeds reported)"),
    ):
        sub = cells[cells["metric"] == metric]
        n = len(sub)
        held, failed = int(sub["holds_beyond_spread"].sum()), int(sub["fails_beyond_spread"].sum())
        what = "inverse < forward" if metric == "final_loss_nats" else "forward > inverse"
        ours = f"{held} of {n} cells {what} beyond the seed spread, {failed} the reverse ({num_seeds} seeds)"
        if metric == "final_loss_nats":
            excess = cells[cells["metric"] == "excess_loss_nats"]
            relative = int(excess["holds_beyond_spread"].sum())
            ours += f"; relative to each target's own-checkpoint loss: {relative} of {len(excess)}"
        comparable = num_seeds > 1
        out.append(verdicts.Verdict(
            claim=claim, chapter=CHAPTER, ours=ours, paper=paper_figure,
            outcome=verdicts.decide(held == n, comparable=comparable),
            reason=(f"reproduced only if every cell shows {what}: the mean paired difference over seeds beyond "
                    f"{verdicts.t_text(num_seeds)} (one-sided t-test at 95%; the tables give ± 1 SD)" if comparable
                    else "one seed gives no spread to compare a difference with"),
        ))
    return out


def plot_cells(result: dict, metric: str = "final_loss_nats"):
    """Paired differences forward - inverse of one metric per cell: one dot per seed, the mean with +-1 SD.

    Above zero is the paper's ordering (inverse lower loss, or forward larger KL change); a cell counts
    for the paper when its mean lies above zero by more than its SD bar.
    """
    runs = result["runs"]
    wide = runs.pivot_table(index=["dataset", "k", "l", "pair", "seed"], columns="direction", values=metric)
    diff = (wide["forward"] - wide["inverse"]).rename("difference").reset_index()
    groups = list(diff.groupby(["dataset", "k", "l", "pair"], sort=False))
    fig, ax = plotting.new_figure(width=max(6.4, 0.9 * len(groups)), height=3.4)
    rng = np.random.default_rng(0)
    for i, (_, group) in enumerate(groups):
        values = group["difference"].to_numpy()
        mean, sd = values.mean(), _sd(values)
        ax.errorbar(i, mean, yerr=0 if math.isnan(sd) else sd, fmt="o", color=plotting.COLORS["base"], capsize=4,
                    label="mean ± SD over seeds" if i == 0 else None)
        ax.scatter(i + 0.15 + rng.uniform(-0.04, 0.04, len(values)), values, s=12,
                   color=plotting.COLORS["inverse"], label="one seed" if i == 0 else None)
    ax.axhline(0.0, color=plotting.COLORS["theory"], linewidth=0.8)
    ax.set_xticks(range(len(groups)), [f"{d}\nθ{k}/θ{late}" for (d, k, late, _), _ in groups], fontsize=7)
    ax.set_ylabel(f"forward − inverse, {metric.removesuffix('_nats').replace('_', ' ')} (nats/token)", fontsize=8)
    ax.legend(fontsize=8)
    return fig


__all__ = ["NAME", "Config", "PRESETS", "config", "run", "load_or_run", "summarize", "layout", "paper_layout",
           "judge", "plot_cells", "default_pairs", "pair_label"]
