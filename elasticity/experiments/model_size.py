"""Model size: the rebound protocol on models of several sizes (the paper's Figures 5 and 9)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

import elasticity.config
from elasticity import models, paper, pretrain, results, verdicts
from elasticity.config import UserError
from elasticity.experiments import rebound, rebound_figures, rebound_judge, rebound_units

NAME = "model_size"
CHAPTER = "model_size"


@dataclass(frozen=True)
class Config(rebound_units.Sweep):
    """The rebound protocol (see `rebound_units.Protocol`) on one task, for each model size of a family."""

    sizes: tuple[str, ...] | None = None  # keys of models.sizes(family), smallest first; None: all of them

    def __post_init__(self) -> None:
        self._check_sweep()
        for size in self.sizes or ():
            elasticity.config.choice(f"size of family {self.family!r}", size, models.sizes(self.family))
        if self.sizes is not None and (not self.sizes or len(set(self.sizes)) != len(self.sizes)):
            raise UserError(f"sizes {self.sizes!r} is empty or repeats a size")

    @property
    def model_sizes(self) -> tuple[str, ...]:
        """The sizes swept, smallest first."""
        return self.sizes or tuple(models.sizes(self.family))


# The paper's sizes divided by 20 (as in the rebound chapter).
PRESETS = {"default": Config(), "smoke": Config(**rebound_units.SWEEP_SMOKE)}


def config(**overrides) -> Config:
    """The preset of the current scale (`ELASTICITY_SCALE`) with the non-None overrides (a family other
    than tiny gets `rebound.PRETRAINED_LEARNING_RATE` unless told otherwise)."""
    return rebound.preset_config(PRESETS, overrides)


def pretraining_table(family: str, sizes) -> pd.DataFrame:
    """Per size: `parameters`, and for the tiny family (pre-trained here) its pre-training run:
    `pretraining_tokens` (the final budget), `peak_learning_rate`, `tokens_per_parameter`. Hub families
    give their published parameter count and NaN for the run, which is not known here."""
    counts = {row["size"]: row["num_parameters"] for row in models.info(family)}
    rows = []
    for size in sizes:
        row = {"size": size, "parameters": int(counts[size]), "pretraining_tokens": float("nan"),
               "peak_learning_rate": float("nan"), "tokens_per_parameter": float("nan")}
        if models.family(family).kind == "tiny":
            run = pretrain.preset(size)
            row.update(pretraining_tokens=run.budgets_tokens[-1], peak_learning_rate=run.learning_rate,
                       tokens_per_parameter=run.budgets_tokens[-1] / row["parameters"])
        rows.append(row)
    return pd.DataFrame(rows)


def units(cfg: Config) -> list:
    """The base and curve units of every size and seed (shared with the rebound chapter where they coincide)."""
    return rebound.sweep_units(cfg, cfg.task, [(size, None) for size in cfg.model_sizes])


def cached_units(cfg: Config) -> list[results.Unit]:
    """The training units `run(cfg)` reads from the results cache (for `elasticity status`)."""
    return [rebound_units.cache_entry(u) for u in units(cfg)]


def run(cfg: Config) -> dict:
    """Run the rebound protocol for every model size, positive size and seed.

    Returns:
        `curves`, `base` (see `rebound_units.collect`), `summary` (see `rebound_judge.summarize`), `trend` (the
        initial and later slopes and the positive SFT lift per size, mean ± se over seeds), and
        `verdicts` (claim `model_size`, judged only where every size's lift is resolved).
    """
    sizes = cfg.model_sizes
    rebound_units.check_data(cfg, (cfg.task,), cfg.positive_sizes)
    curves, base = rebound_units.collect(units(cfg), "model size: fine-tunes")
    summary = rebound_judge.summarize(curves, base, cfg.initial_negative)
    trend = rebound_judge.model_trends(summary, "size", list(sizes), ["initial_slope", "later_slope", "lift"])
    verdict = rebound_judge.judge_increase(
        summary, trend, "size", "initial_slope", "model_size", CHAPTER,
        paper_text=f"faster initial decline with size ({', '.join(paper.QWEN_SIZES)}; curves only)",
    )
    return {"curves": curves, "base": base, "summary": summary, "trend": trend,
            "verdicts": verdicts.to_frame([verdict])}


def load_or_run(cfg: Config) -> dict:
    """The cached result of `run(cfg)`, computed (and cached unit by unit) on first use."""
    return results.load_or_run(NAME, cfg, run)


def plot(result: dict):
    """The rebound curves, one panel per model size, one curve per positive size (mean ± sd over seeds)."""
    curves = result["curves"].assign(panel=lambda f: "size " + f["size"])
    base = result["base"].assign(panel=lambda f: "size " + f["size"])
    return rebound_figures.plot_curves(curves, base, panel="panel")
