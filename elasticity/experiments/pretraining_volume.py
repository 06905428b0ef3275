"""Pre-training volume: the rebound protocol on checkpoints of one model at several token budgets (Figures 6, 10)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import elasticity.config
from elasticity import models, paper, results, stats, verdicts
from elasticity.config import UserError
from elasticity.experiments import rebound, rebound_figures, rebound_judge, rebound_units

NAME = "pretraining_volume"
CHAPTER = "pretraining_volume"


@dataclass(frozen=True)
class Config(rebound_units.Sweep):
    """The rebound protocol (see `rebound_units.Protocol`) on one task, for pre-training checkpoints of one model."""

    size: str | None = None  # key of models.sizes(family); None: the family's default size
    budgets: tuple[int, ...] | None = None  # pre-training tokens of the checkpoints; None: see max_budgets
    max_budgets: int = 3  # with budgets None: this many of models.budgets(family), smallest and largest included
    threshold_fraction: float = 0.25  # "barely moves": initial drop at the smallest budget <= this x the largest's

    def __post_init__(self) -> None:
        self._check_sweep()
        if self.size is not None:
            elasticity.config.choice(f"size of family {self.family!r}", self.size, models.sizes(self.family))
        if self.budgets is not None:
            if len(self.budgets) < 2 or len(set(self.budgets)) != len(self.budgets):
                raise UserError(f"budgets {self.budgets!r} needs at least 2 distinct token budgets")
            for budget in self.budgets:
                elasticity.config.choice(f"token budget of family {self.family!r}", budget,
                                         models.budgets(self.family))
        if self.max_budgets < 2:
            raise UserError(f"max_budgets = {self.max_budgets}; needs at least 2 budgets to compare")
        if not 0 < self.threshold_fraction < 1:
            raise UserError(f"threshold_fraction = {self.threshold_fraction}; must be in (0, 1)")

    @property
    def token_budgets(self) -> tuple[int, ...]:
        """The budgets swept, smallest first: `budgets`, or `max_budgets` of the family's spread evenly
        over its list (which is geometric for the tiny family), the smallest and the largest included."""
        if self.budgets is not None:
            return tuple(sorted(self.budgets))
        available = sorted(models.budgets(self.family))
        if len(available) <= self.max_budgets:
            return tuple(available)
        picks = np.linspace(0, len(available) - 1, self.max_budgets).round().astype(int)
        return tuple(available[i] for i in sorted(set(picks)))


# The paper's sizes divided by 20 (as in the rebound chapter).
PRESETS = {"default": Config(), "smoke": Config(**rebound_units.SWEEP_SMOKE)}


def config(**overrides) -> Config:
    """The preset of the current scale (`ELASTICITY_SCALE`) with the non-None overrides (a family other
    than tiny gets `rebound.PRETRAINED_LEARNING_RATE` unless told otherwise)."""
    return rebound.preset_config(PRESETS, overrides)


def judge_threshold(summary, cfg: Config, no_lift: str | None = None) -> verdicts.Verdict:
    """The paper's 0.1T observation: at the smallest budget the score barely moves under negative data, while
    the effect has appeared at the largest.

    Per seed, the initial drop (mean over positive sizes) at the smallest and the largest budget. The effect
    judged: threshold_fraction x drop(largest) - |drop(smallest)| (`stats.fraction_below`, defined however
    small the largest drop is; no ratio). "Not testable here" when the positive SFT did not lift the score at
    some budget (`rebound_judge.lift_by_model`: a score never lifted "barely moves" trivially) or when the
    drop at the largest budget is not above zero (no effect for the smallest budget's to be a fraction of).
    """
    budgets = list(cfg.token_budgets)
    drops = rebound_judge.by_seed(summary, "budget_tokens", "initial_drop")[[budgets[0], budgets[-1]]].dropna()
    small, large = drops[budgets[0]], drops[budgets[-1]]
    appears = stats.effect(large)
    precondition = no_lift or verdicts.precondition_of(f"the initial drop at {_tokens(budgets[-1])}", appears)
    return verdicts.judged(
        "pretraining_threshold", CHAPTER, family=cfg.family,
        measure=(f"{cfg.threshold_fraction:g} x initial drop at {_tokens(budgets[-1])} - |initial drop at "
                 f"{_tokens(budgets[0])}| ({rebound_judge.READOUTS[rebound_judge.PRIMARY].units}, paired by seed)"),
        effect=stats.fraction_below(small.abs(), large, cfg.threshold_fraction),
        ours=(f"initial drop at {_tokens(budgets[0])} {stats.effect(small).text()}; at {_tokens(budgets[-1])} "
              f"{appears.text()}"),
        paper="at 0.1T tokens the score barely changes with negative data; the effect appears by 0.5T",
        precondition=precondition,
    )


def _tokens(budget) -> str:
    return f"{int(budget):,} tokens"


def units(cfg: Config) -> list:
    """The base and curve units of every token budget and seed."""
    return rebound.sweep_units(cfg, cfg.task, [(cfg.size, budget) for budget in cfg.token_budgets])


def cached_units(cfg: Config) -> list[results.Unit]:
    """The training units `run(cfg)` reads from the results cache (for `elasticity status`)."""
    return [rebound_units.cache_entry(u) for u in units(cfg)]


def run(cfg: Config) -> dict:
    """Run the rebound protocol for every token budget, positive size and seed.

    Returns:
        `curves`, `base` (see `rebound_units.collect`) with a `budget_tokens` column (the final budget written
        out), `summary` (see `rebound_judge.summarize`), `trend` (initial slope, initial drop and positive SFT
        lift per budget, mean ± se over seeds), and `verdicts` (claims `pretraining_volume`, growth with
        tokens, and `pretraining_threshold`; each judged only where every budget's lift is resolved).
    """
    budgets = cfg.token_budgets
    rebound_units.check_data(cfg, (cfg.task,), cfg.positive_sizes)
    curves, base = rebound_units.collect(units(cfg), "pre-training volume: fine-tunes")
    final = max(models.budgets(cfg.family))
    size, _ = rebound_units.canonical_model(cfg.family, cfg.size, None)
    for frame in (curves, base):  # the cache keys store the final budget as None; write it out
        frame["budget_tokens"] = frame["budget_tokens"].fillna(final).astype(np.int64)
        frame["model"] = [rebound_units.model_label(cfg.family, size, int(b)) for b in frame["budget_tokens"]]
    summary = rebound_judge.summarize(curves, base, cfg.initial_negative)
    trend = rebound_judge.model_trends(summary, "budget_tokens", list(budgets),
                                       ["initial_slope", "initial_drop", "lift"])
    growth = rebound_judge.judge_increase(
        summary, trend, "budget_tokens", "initial_slope", "pretraining_volume", CHAPTER,
        paper_text=f"more pre-training tokens, faster rebound (TinyLlama {', '.join(paper.TINYLLAMA_TOKENS)})",
        label=_tokens,
    )
    no_lift = rebound_judge.lift_by_model(summary, "budget_tokens", list(budgets), _tokens)
    return {"curves": curves, "base": base, "summary": summary, "trend": trend,
            "verdicts": verdicts.to_frame([growth, judge_threshold(summary, cfg, no_lift)])}


def load_or_run(cfg: Config) -> dict:
    """The cached result of `run(cfg)`, computed (and cached unit by unit) on first use."""
    return results.load_or_run(NAME, cfg, run)


def plot(result: dict):
    """The rebound curves, one panel per token budget, one curve per positive size (mean ± sd over seeds)."""
    curves = result["curves"].assign(panel=lambda f: [f"{int(b):,} tokens" for b in f["budget_tokens"]])
    base = result["base"].assign(panel=lambda f: [f"{int(b):,} tokens" for b in f["budget_tokens"]])
    return rebound_figures.plot_curves(curves, base, panel="panel")
