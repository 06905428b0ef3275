"""The pilot behind a pretrained family's learning rates in the resistance chapter (`resistance.FAMILY_SETTINGS`).

A short grid over the SFT rate and the fine-tunes' rate, on one dataset, one seed and the pair theta_1/theta_n,
at the scale's sizes otherwise: for each, how far the SFT parts the checkpoints (the KL between them before
training) and how much of that KL the forward and inverse fine-tunes close. Usable rates part the checkpoints
and let the fine-tunes close most of the gap; the chapter shows the grid beside the rates chosen. The pilot
runs the resistance experiment's own cached units, so it judges nothing (no claims, no verdicts).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

import elasticity.config
from elasticity import results, verdicts
from elasticity.config import UserError, check_types
from elasticity.experiments import resistance, resistance_units

NAME = "resistance_pilot"
CHAPTER = "resistance"
CLAIMS = ()
TABLES = ("runs",)


@dataclass(frozen=True)
class Config:
    """The pilot: every pair of `sft_learning_rates` x `learning_rates`, one resistance run each."""

    family: str = "smollm2-135m"  # a family with its own settings in resistance.FAMILY_SETTINGS
    sft_learning_rates: tuple[float, ...] = (1e-3, 3e-3)
    learning_rates: tuple[float, ...] = (3e-4, 1e-3)
    dataset: str = "rotten-tomatoes"
    num_sft: int = 128  # SFT examples in the epoch
    num_samples: int = 32  # held-out prompts each checkpoint answers (trained on)
    num_eval: int = 16  # further held-out prompts, for evaluation only
    steps: int = 8  # optimizer steps per direction
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_types(self)
        if not self.sft_learning_rates or not self.learning_rates:
            raise UserError("the pilot needs at least one SFT rate and one fine-tuning rate")
        self.grid()  # every run's config is checked here, before any work

    def grid(self) -> list[resistance_units.Config]:
        """The resistance runs of the pilot, SFT rate by fine-tuning rate."""
        last = resistance.config(family=self.family).num_checkpoints
        return [
            resistance.config(family=self.family, datasets=(self.dataset,), seeds=(self.seed,), num_sft=self.num_sft,
                              num_samples=self.num_samples, num_eval=self.num_eval, steps=self.steps,
                              pairs=((1, last),), sft_learning_rate=sft_rate, learning_rate=rate, device=self.device)
            for sft_rate in self.sft_learning_rates for rate in self.learning_rates
        ]


def config(**overrides) -> Config:
    """The pilot's defaults with the non-None overrides."""
    return elasticity.config.replace(Config(), **overrides)


def wanted(cfg: Config) -> bool:
    """Whether the family's rates come from this pilot (a family of `resistance.FAMILY_SETTINGS`)."""
    return cfg.family in resistance.FAMILY_SETTINGS


def cached_units(cfg: Config) -> list[results.Unit]:
    """The resistance units of every run of the grid."""
    return list(dict.fromkeys(u for run in cfg.grid() for u in resistance_units.cached_units(run)))


def measure(cfg: Config) -> dict:
    """`runs`: the resistance runs of the grid, with their SFT and fine-tuning rates."""
    frames = []
    for run in cfg.grid():
        runs = resistance_units.measure(run)["runs"]
        runs.insert(0, "sft_learning_rate", run.sft_learning_rate)
        runs.insert(1, "learning_rate", run.learning_rate)
        frames.append(runs)
    return {"runs": pd.concat(frames, ignore_index=True)}


def judged(tables: dict, cfg: Config) -> dict:
    """`grid`: per pair of rates, the KL between the checkpoints before training, the KL left after the forward and
    the inverse fine-tune, the share of the gap they closed, and their final training losses; no verdicts."""
    runs = tables["runs"]
    rows = []
    for (sft_rate, rate), group in runs.groupby(["sft_learning_rate", "learning_rate"], sort=True):
        by = group.set_index("direction")
        before, after = by["kl_before_nats"], by["kl_after_nats"]
        rows.append({
            "SFT rate": sft_rate, "fine-tuning rate": rate,
            "KL between checkpoints": float(before.mean()),
            "KL left, forward": float(after["forward"]), "KL left, inverse": float(after["inverse"]),
            "gap closed": float(1 - (after / before).mean()),
            "final loss, forward": float(by.loc["forward", "final_loss_nats"]),
            "final loss, inverse": float(by.loc["inverse", "final_loss_nats"]),
        })
    return {**tables, "grid": pd.DataFrame(rows), "verdicts": verdicts.to_frame([])}


def describe(cfg: Config, chosen: resistance_units.Config) -> str:
    """One sentence: what the pilot ran, and the rates the family's runs use."""
    return (f"The learning rates come from a pilot on {cfg.dataset}, seed {cfg.seed}, the pair θ1/θ"
            f"{chosen.num_checkpoints}, {cfg.num_sft} SFT examples, {cfg.num_samples} held-out prompts and "
            f"{cfg.steps} steps per direction, over SFT rates {', '.join(f'{r:g}' for r in cfg.sft_learning_rates)} "
            f"and fine-tuning rates {', '.join(f'{r:g}' for r in cfg.learning_rates)}; the runs above use "
            f"{chosen.sft_learning_rate:g} and {chosen.learning_rate:g}, with "
            f"{'LoRA adapters' if chosen.lora else 'all weights'} trained.")


def run(cfg: Config) -> dict:
    """The pilot, computed (and cached) unit by unit, then tabulated."""
    return judged(measure(cfg), cfg)


def load_or_run(cfg: Config) -> dict:
    """The cached result of `run(cfg)`."""
    return results.load_or_run(NAME, cfg, run)
