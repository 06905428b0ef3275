"""The pilot behind a pretrained family's learning rates in the rebound chapter (`rebound.FAMILY_SETTINGS`).

A short grid on one task, one seed and one positive size, at the family's settings otherwise: for each SFT rate,
how far the positive SFT lifts the share of responses judged positive above the base model's (the lift every
rebound verdict needs) and how fast the negative SFT takes it back; for each DPO rate, the same drop by DPO from
the positive model of the family's SFT rate. Usable rates lift the share clearly and leave the negative run room
to fall; the chapter shows the grid beside the rates chosen. The pilot runs the rebound experiment's own cached
units, so it judges nothing (no claims, no verdicts).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

import elasticity.config
from elasticity import results, verdicts
from elasticity.config import UserError, check_types
from elasticity.experiments import rebound, rebound_judge, rebound_units

NAME = "rebound_pilot"
CHAPTER = "rebound"
CLAIMS = ()
TABLES = ("curves", "base")


@dataclass(frozen=True)
class Config:
    """The pilot: one rebound curve per SFT rate of `learning_rates` and per DPO rate of `dpo_learning_rates`."""

    family: str = "smollm2-135m"  # a family with its own settings in rebound.FAMILY_SETTINGS
    learning_rates: tuple[float, ...] = (3e-4, 1e-3, 3e-3)  # of the positive and negative SFT
    dpo_learning_rates: tuple[float, ...] = (1e-4, 1e-3)  # of the DPO reverse step, from the family's SFT rate
    task: str = "sentiment"
    positive_size: int = 150
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_types(self)
        if not self.learning_rates:
            raise UserError("the pilot needs at least one SFT learning rate")
        for name in ("learning_rates", "dpo_learning_rates"):
            if len(set(getattr(self, name))) != len(getattr(self, name)):
                raise UserError(f"{name} {getattr(self, name)!r} repeats a rate; give each rate once")
        self.units()  # every run's config is built, and so checked, here: before any work

    def protocol(self, learning_rate: float, dpo_learning_rate: float | None = None) -> rebound.Config:
        """The family's rebound config cut to the pilot's task, seed and positive size, at one SFT rate (and DPO
        rate)."""
        return rebound.config(family=self.family, tasks=(self.task,), reversed_direction=False,
                              kl_task=self.task, positive_sizes=(self.positive_size,), seeds=(self.seed,),
                              control=False, learning_rate=learning_rate, preference_learning_rate=dpo_learning_rate,
                              device=self.device)

    def units(self) -> list:
        """The base unit, an SFT curve per SFT rate, and a DPO curve per DPO rate (from the family's SFT rate);
        each measures the KL to the base model, a column of the pilot's table."""
        first = self.protocol(self.learning_rates[0])
        found = [rebound_units.base_unit(first, self.task, first.size, None, self.seed)]
        found += [rebound_units.unit(self.protocol(rate), self.task, None, None, self.positive_size, self.seed,
                                     kl=True) for rate in self.learning_rates]
        chosen = rebound.config(family=self.family).learning_rate
        for rate in self.dpo_learning_rates:
            p = self.protocol(chosen, rate)
            found.append(rebound_units.unit(p, self.task, None, None, self.positive_size, self.seed, "dpo",
                                            p.preference_learning_rate, kl=True))
        return found


def config(**overrides) -> Config:
    """The pilot's defaults with the non-None overrides."""
    return elasticity.config.replace(Config(), **overrides)


def wanted(cfg: Config) -> bool:
    """Whether the family's rates come from this pilot (a family of `rebound.FAMILY_SETTINGS`)."""
    return cfg.family in rebound.FAMILY_SETTINGS


def cached_units(cfg: Config) -> list[results.Unit]:
    """The rebound units of the grid."""
    return [rebound_units.cache_entry(u) for u in cfg.units()]


def measure(cfg: Config) -> dict:
    """`curves` and `base` of the grid's units (`rebound_units.collect`), with each curve's reverse rate."""
    units = cfg.units()
    curves, base = rebound_units.collect(units, "rebound pilot: fine-tunes")
    curves.insert(0, "learning_rate", [u.reverse_learning_rate for u in units[1:]
                                       for _ in range(len(u.negative_sizes) + 1)])
    return {"curves": curves, "base": base}


def judged(tables: dict, cfg: Config) -> dict:
    """`grid`: per reverse step and rate, the share judged positive of the base model, after the positive SFT
    (and the lift), after the first negative examples and at the end of the negative run, the compression gap's
    lift and the KL to the base after the positive SFT; no verdicts."""
    curves, base = rebound_judge.directed(tables["curves"]), tables["base"]
    # The first negative examples of the preset the curves were measured at (not of today's scale: an archive
    # of the default scale is also judged in a smoke build).
    grid = tuple(sorted(set(curves["negative_examples"]) - {0}))
    initial = next((p.initial_negative for p in rebound.PRESETS.values() if p.negative_sizes == grid),
                   rebound.config(family=cfg.family).initial_negative)
    rows = []
    for (reverse, rate), g in curves.groupby(["reverse", "learning_rate"], sort=False):
        share = rebound_judge.summarize(g, base, initial).iloc[0]
        bits = rebound_judge.summarize(g, base, initial, "bits_gap").iloc[0]
        rows.append({"reverse step": rebound_units.REVERSE_NAMES[reverse], "rate": rate, "base share": share["base"],
                     "share after positive SFT": share["start"], "lift": share["lift"],
                     f"share after {initial} negative": share["initial"], "share at the end": share["end"],
                     "compression-gap lift (bits/token)": bits["lift"],
                     "KL to base after positive SFT (nats/token)": share["kl_after_positive_nats"]})
    return {**tables, "grid": pd.DataFrame(rows), "verdicts": verdicts.to_frame([])}


def describe(cfg: Config, chosen: rebound.Config) -> str:
    """One sentence: what the pilot ran, and the rates the family's runs use."""
    return (f"The learning rates come from a pilot on {cfg.task}, seed {cfg.seed}, {cfg.positive_size} positive "
            f"examples ({chosen.positive_epochs:g} pass), over SFT rates "
            f"{', '.join(f'{r:g}' for r in cfg.learning_rates)} and DPO rates "
            f"{', '.join(f'{r:g}' for r in cfg.dpo_learning_rates)}; the runs above use {chosen.learning_rate:g} "
            f"for SFT and {chosen.preference_learning_rate:g} for DPO, with "
            f"{'LoRA adapters' if chosen.lora else 'all weights'} trained.")


def run(cfg: Config) -> dict:
    """The pilot, computed (and cached) unit by unit, then tabulated."""
    return judged(measure(cfg), cfg)


def load_or_run(cfg: Config) -> dict:
    """The cached result of `run(cfg)`."""
    return results.load_or_run(NAME, cfg, run)
