"""Rebound: positive fine-tuning, then negative fine-tuning, scored on held-out prompts (Figures 4 and 7, Table 3).

The experiment of the rebound chapter: its config and presets, and `run` = the cached units
(`rebound_units`) judged (`rebound_judge`). Figures are in `rebound_figures`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

import elasticity.config
from elasticity import data, models, paper, preference, results, verdicts
from elasticity.config import UserError, check_types
from elasticity.experiments import rebound_judge, rebound_units
from elasticity.experiments.rebound_units import OFFLINE_TASKS, PAPER_TASKS, SWEEP_SMOKE, Protocol

NAME = "rebound"
CHAPTER = "rebound"  # the notebook stem that shows this experiment
TABLES = ("curves", "base")  # the measured tables (`measure`), all that an archive keeps (`elasticity.archived`)


@dataclass(frozen=True)
class Config(Protocol):
    """The rebound experiment: both tasks, one model, every positive size, SFT and preference reverse steps, and the
    reversed direction (negative data first)."""

    tasks: tuple[str, ...] = OFFLINE_TASKS  # keys of data.TASKS
    size: str | None = None  # key of models.sizes(family); None: the family's default size
    preference_task: str | None = "sentiment"  # task of the preference ablation (paper: IMDb); None: none
    # The preference ablation and the reversed direction run at the ends of the positive grid: with all four
    # sizes each, the clean default build took 2,012 s on 2 cores at 11af9f2, over its 30-minute target, and
    # their units at sizes 100 and 250 took about 180 s of it.
    preference_positive_sizes: tuple[int, ...] = (50, 500)  # positive sizes the ablation starts from
    algorithms: tuple[str, ...] = preference.ALGORITHMS  # its reverse steps (each at its DEFAULT_BETA)
    preference_learning_rate: float = 2e-3  # learning rate of a preference reverse step (constant)
    reversed_direction: bool = True  # also run the reversed direction: negative SFT first, then positive
    reversed_task: str = "sentiment"  # its task (paper: not stated)
    reversed_sizes: tuple[int, ...] = (50, 500)  # negative examples of its first SFT (a curve per size)
    kl_task: str = "safety"  # task of the KL-to-base table (paper: BeaverTails)
    kl_epsilon: float = 0.01  # KL threshold (nats/token) of the table's "negative examples to return"
    control: bool = True  # also fine-tune the base model on the negative data (positive size 0), per task and seed

    def __post_init__(self) -> None:
        check_types(self)
        self._check_protocol()
        self._check_tasks(self.tasks)
        if self.size is not None:
            elasticity.config.choice(f"size of family {self.family!r}", self.size, models.sizes(self.family))
        for task, sizes in (("preference_task", "preference_positive_sizes"), ("reversed_task", "reversed_sizes")):
            if getattr(self, task) is not None and (task == "preference_task" or self.reversed_direction):
                elasticity.config.choice(task, getattr(self, task), data.TASKS)
                values = getattr(self, sizes)
                if not values or len(set(values)) != len(values) or min(values) < 1:
                    raise UserError(f"{sizes} {values!r} must be distinct positive integers")
        if self.preference_task is not None:
            if not self.algorithms or len(set(self.algorithms)) != len(self.algorithms):
                raise UserError(f"algorithms {self.algorithms!r} is empty or repeats a name")
            for name in self.algorithms:
                preference.check_algorithm("algorithms", name)
        elasticity.config.choice("kl_task", self.kl_task, self.tasks)
        if not self.kl_epsilon > 0:
            raise UserError(f"kl_epsilon = {self.kl_epsilon}; must be positive")
        if not 0 < self.preference_learning_rate < 1:
            raise UserError(f"preference_learning_rate = {self.preference_learning_rate}; must be in (0, 1)")

    @property
    def side_tasks(self) -> tuple[str, ...]:
        """The tasks of the preference ablation and the reversed direction that are not among `tasks`."""
        wanted = (self.preference_task, self.reversed_task if self.reversed_direction else None)
        extra = (t for t in wanted if t is not None and t not in self.tasks)
        return tuple(dict.fromkeys(extra))


PRESETS = {
    # The paper's sizes divided by 20 (positive 1k..10k -> 50..500; negative 100..2,000 -> 5..100), which
    # keeps every ratio (positive:negative, and the spacing of each grid) and fits the CPU time budget.
    # Ten positive passes (the paper's epochs are unknown): on tiny-l (seeds 0-2, positive sizes 50 and 500)
    # one, three and five passes left the positive SFT lift (start - base) within the seed noise on both
    # tasks; ten resolved it on sentiment and brought safety after 500 examples to the level of its positive
    # training data (the measurements are in the commit message that set it; that machine ran AVX-512 kernels).
    # With the kernels pinned to AVX2 (elasticity.numerics) the default build's lift over all four sizes is
    # 0.086 +- 0.041 on sentiment (2.1 standard errors: not resolved at three seeds) and 0.033 +- 0.011 on
    # safety (resolved); the README's table has the current figures.
    "default": Config(positive_epochs=10.0),
    "smoke": Config(**{**SWEEP_SMOKE, "positive_sizes": (8, 16)}, preference_positive_sizes=(8, 16),
                    reversed_sizes=(8, 16)),
}


# The presets' learning rates and positive epochs suit the tiny family, pre-trained here at 2e-3 to 5e-3. A
# pre-trained model (SmolLM2, the hub families) is fine-tuned at a rate typical of full SFT of such models
# instead, for one positive pass.
PRETRAINED_LEARNING_RATE = 2e-5  # SFT of a pre-trained family, unless given
PRETRAINED_PREFERENCE_LEARNING_RATE = 5e-6  # a preference reverse step of a pre-trained family, unless given
PRETRAINED_POSITIVE_EPOCHS = 1.0  # positive SFT passes of a pre-trained family, unless given


def family_defaults(family: str, overrides: dict) -> dict:
    """`overrides` with the learning rate and positive epochs of a pre-trained family filled in where unset."""
    if family == "tiny":
        return overrides
    out = dict(overrides)
    if out.get("learning_rate") is None:
        out["learning_rate"] = PRETRAINED_LEARNING_RATE
    if out.get("positive_epochs") is None:
        out["positive_epochs"] = PRETRAINED_POSITIVE_EPOCHS
    return out


def preset_config(presets: dict, overrides: dict):
    """`presets[scale]` with the non-None `overrides`, the learning rates of a pre-trained family filled in
    (`family_defaults`); the `config` function of the model-size and pre-training-volume experiments."""
    base = presets[elasticity.config.scale()]
    return elasticity.config.replace(base, **family_defaults(overrides.get("family") or base.family, overrides))


# A pretrained family's own settings at the default scale, applied where the family is chosen and the setting is
# not given. SmolLM2-135M: LoRA adapters at the rates of `rebound_pilot` (run and archived with the chapter, shown
# in it: on 150 positive examples, seed 0, SFT at 3e-4, 1e-3 and 3e-3 lifted the share judged positive from the
# base model's 0.375 by 0.06, 0.08 and 0.15, and 100 negative examples took it to 0.44, 0.48 and 0.33; DPO at
# 1e-3, the larger of its two rates, chosen before its rows were measured: a DPO step sums the response's token
# log-probabilities, times beta = 0.1, where an SFT step averages them); the paper's grids
# divided by 20 at the ends (positive 1k..10k -> 50..500, with 150 between; negative 100..2,000 -> 5..100), 48
# prompts answered with 16 new tokens, one positive pass.
FAMILY_SETTINGS = {
    "smollm2-135m": {"lora": True, "learning_rate": 3e-3, "preference_learning_rate": 1e-3, "positive_epochs": 1.0,
                     "positive_sizes": (50, 150, 500), "preference_positive_sizes": (50, 500), "max_new_tokens": 16,
                     # DPO alone, and no reversed direction, until their units are run on the CPU and archived
                     "algorithms": ("dpo",), "reversed_direction": False},
}


def config(**overrides) -> Config:
    """The preset of the current scale (`ELASTICITY_SCALE`) with the non-None overrides.

    A family of `FAMILY_SETTINGS` takes its settings there at the default scale; another family other than
    tiny is fine-tuned at `PRETRAINED_LEARNING_RATE` (and by preference at `PRETRAINED_PREFERENCE_LEARNING_RATE`) for
    `PRETRAINED_POSITIVE_EPOCHS` positive passes unless told otherwise; a hub family (not tiny or smollm2-135m)
    runs the paper's tasks (IMDb, BeaverTails) when `tasks` is unset.
    """
    family = overrides.get("family") or PRESETS[elasticity.config.scale()].family
    if elasticity.config.scale() == "default":
        settings = FAMILY_SETTINGS.get(family, {})
        overrides = {**overrides, **{k: v for k, v in settings.items() if overrides.get(k) is None}}
    if family != "tiny" and overrides.get("preference_learning_rate") is None:
        overrides["preference_learning_rate"] = PRETRAINED_PREFERENCE_LEARNING_RATE
    if overrides.get("tasks") is None and family not in ("tiny", "smollm2-135m"):
        overrides = {**overrides, "tasks": PAPER_TASKS, "preference_task": PAPER_TASKS[0],
                     "reversed_task": PAPER_TASKS[0], "kl_task": PAPER_TASKS[1]}
    return preset_config(PRESETS, overrides)


# ---------------------------------------------------------------------------------------------------------
# The experiment.
# ---------------------------------------------------------------------------------------------------------


def sweep_units(p: Protocol, task: str, models: list[tuple[str | None, int | None]], kl: bool = False) -> list:
    """For each model (size, token budget) and seed: the base unit, then an SFT curve unit per positive size
    (measuring the KL to the base model along it where `kl`).

    The units of the rebound chapter (one model, per task), of the model-size chapter (one model per size) and
    of the pre-training-volume chapter (one model per budget), in the order the chapters show them.
    """
    found: list = []
    for size, budget in models:
        for seed in p.seeds:
            found.append(rebound_units.base_unit(p, task, size, budget, seed))
            found += [rebound_units.unit(p, task, size, budget, n, seed, kl=kl) for n in p.positive_sizes]
    return found


def preference_units(cfg: Config) -> list:
    """The preference ablation's curve units: per algorithm, positive size and seed, from the SFT arm's positive
    models (`[]` without an ablation)."""
    if cfg.preference_task is None:
        return []
    return [rebound_units.unit(cfg, cfg.preference_task, cfg.size, None, n, s, algorithm,
                               cfg.preference_learning_rate)
            for algorithm in cfg.algorithms for n in cfg.preference_positive_sizes for s in cfg.seeds]


def reversed_units(cfg: Config) -> list:
    """The reversed direction's curve units: SFT on negative data first (per size of `reversed_sizes`; 0 the
    control arm where `control`), then SFT on positive data, per seed (`[]` without `reversed_direction`)."""
    if not cfg.reversed_direction:
        return []
    sizes = ((0,) if cfg.control else ()) + tuple(cfg.reversed_sizes)
    return [rebound_units.unit(cfg, cfg.reversed_task, cfg.size, None, n, s, direction="reversed")
            for n in sizes for s in cfg.seeds]


def units(cfg: Config) -> list:
    """The base and curve units of the experiment, task by task (the preference ablation's and the reversed
    direction's after their task's SFT curves, whose positive models the ablation starts from), in the order the
    chapter shows them and a run computes them. The KL to the base model is measured on the KL table's curves only
    (`kl_task`, SFT, a positive size)."""
    found: list = []
    for task in cfg.tasks + cfg.side_tasks:
        if task in cfg.tasks:
            found += sweep_units(cfg, task, [(cfg.size, None)], kl=task == cfg.kl_task)
            if cfg.control:
                found += [rebound_units.unit(cfg, task, cfg.size, None, 0, s) for s in cfg.seeds]
        else:
            found += [rebound_units.base_unit(cfg, task, cfg.size, None, s) for s in cfg.seeds]
        found += [u for u in preference_units(cfg) + reversed_units(cfg) if u.task == task]
    return found


def upgrade_config(fields: dict) -> dict:
    """An archived config in today's fields (`elasticity.archived.read`): one written before KTO, SimPO and the
    reversed direction existed (its `dpo_*` fields) ran the DPO ablation alone, at beta 0.1, in the paper's order."""
    if "dpo_task" not in fields:
        return dict(fields)
    if fields.get("dpo_beta", preference.DEFAULT_BETA["dpo"]) != preference.DEFAULT_BETA["dpo"]:
        raise ValueError(f"dpo_beta {fields['dpo_beta']} is not the beta DPO runs at now "
                         f"({preference.DEFAULT_BETA['dpo']})")
    out = {k: v for k, v in fields.items() if not k.startswith("dpo_")}
    return {**out, "preference_task": fields["dpo_task"], "preference_positive_sizes": fields["dpo_positive_sizes"],
            "preference_learning_rate": fields["dpo_learning_rate"], "algorithms": ("dpo",),
            "reversed_direction": False}


def cached_units(cfg: Config) -> list[results.Unit]:
    """The training units `run(cfg)` reads from the results cache (for `elasticity status`)."""
    return [rebound_units.cache_entry(u) for u in units(cfg)]


def run(cfg: Config) -> dict:
    """Run the rebound protocol on every task, positive size and seed, the preference ablation and the reversed
    direction, and judge it.

    Returns:
        A dict of tidy DataFrames: `curves` and `base` (see `rebound_units.collect`), `summary` (see
        `rebound_judge.summarize`), `kl_table` (see `rebound_judge.kl_table`) with `paper_kl_table` (the
        paper's Table 3), and `verdicts` (claims `rebound_two_phase`, `rebound_positive_size`,
        `rebound_below_base`, `kl_table`, `preference_ablation`, `reversed_direction`).
    """
    return judged(measure(cfg), cfg)


def measure(cfg: Config) -> dict:
    """The measured tables `curves` and `base` (`rebound_units.collect`), computed or read unit by unit."""
    rebound_units.check_data(cfg, cfg.tasks, cfg.positive_sizes)
    if cfg.preference_task is not None:
        rebound_units.check_data(cfg, (cfg.preference_task,), cfg.preference_positive_sizes)
    if cfg.reversed_direction:  # its first step takes negative examples, its second positive ones
        rebound_units.check_data(cfg, (cfg.reversed_task,), cfg.negative_sizes[-1:], max(cfg.reversed_sizes))
    curves, base = rebound_units.collect(units(cfg), "rebound: fine-tunes")
    return {"curves": curves, "base": base}


def judged(tables: dict, cfg: Config) -> dict:
    """The result of `run` from the measured tables alone (live, or read from an archive: `elasticity.archived`)."""
    curves = rebound_judge.directed(tables["curves"])
    return {**tables, "curves": curves, **judge(curves, tables["base"], cfg)}


REVERSED_PAPER = "negative data first, then positive: the same elasticity pattern as Figure 4 (curves only)"


def judge(curves, base, cfg: Config) -> dict:
    """The judging of the measured `curves` and `base`: `summary` (every readout, `rebound_judge.summarize_all`,
    of both directions: a reversed curve's readouts negated, `rebound_judge.oriented`), `kl_table`,
    `paper_kl_table`, `verdicts`.

    The paper's claims are judged on its readout, the share of responses judged positive (or safe); the
    two-phase and end-of-curve claims also on the compression gap (bits per token on held-out negative less
    positive text), the readout the paper's theory speaks of. The preference ablation judges what each reverse
    step does, the initial drop: its start is the positive SFT model, the SFT verdicts' evidence. The reversed
    direction is judged by the two-phase and positive-size rules on its oriented readouts (claim
    `reversed_direction`).
    """
    forward = curves[curves["direction"] == "forward"]
    backward = curves[curves["direction"] == "reversed"]
    summary = rebound_judge.summarize_all(forward, base, cfg.initial_negative)
    if len(backward):
        summary = pd.concat([summary, rebound_judge.summarize_all(rebound_judge.oriented(backward, "reversed"),
                                                                  rebound_judge.oriented(base, "reversed"),
                                                                  cfg.initial_negative)], ignore_index=True)
    ahead = summary[summary["direction"] == "forward"]
    primary = ahead[ahead["readout"] == rebound_judge.PRIMARY]
    bits = ahead[ahead["readout"] == "bits_gap"]
    kl_seeds = rebound_judge.kl_per_seed(forward, cfg.kl_task, cfg.kl_epsilon)
    found = []
    for s in (primary, bits):
        found += rebound_judge.judge_two_phase(s, CHAPTER)
    found += rebound_judge.judge_positive_size(primary, CHAPTER)
    for s in (primary, bits):
        found += rebound_judge.judge_end_shape(s, CHAPTER)
    found += rebound_judge.judge_kl_table(kl_seeds, CHAPTER, cfg.kl_epsilon, cfg.family)
    if cfg.preference_task is not None:
        for algorithm in cfg.algorithms:
            found += rebound_judge.judge_positive_size(primary, CHAPTER, reverse=algorithm,
                                                       claim="preference_ablation", parts=rebound_judge.PARTS[1:])
    if len(backward):
        back = summary[(summary["direction"] == "reversed") & (summary["readout"] == rebound_judge.PRIMARY)]
        found += rebound_judge.judge_two_phase(back, CHAPTER, claim="reversed_direction", paper_text=REVERSED_PAPER)
        found += rebound_judge.judge_positive_size(back, CHAPTER, claim="reversed_direction",
                                                   paper_text=REVERSED_PAPER)
    return {
        "summary": summary,
        "kl_table": rebound_judge.kl_summary(kl_seeds),
        "paper_kl_table": paper.table3_kl_to_base(),
        "verdicts": verdicts.to_frame(found),
    }


def load_or_run(cfg: Config) -> dict:
    """The cached result of `run(cfg)`, computed (and cached unit by unit) on first use."""
    return results.load_or_run(NAME, cfg, run)

