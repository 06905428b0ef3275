"""Resistance: forward against inverse alignment between SFT checkpoints (the paper's Tables 1 and 2).

The experiment of the resistance chapter: its presets, and `run` = the cached units (`resistance_units`)
judged (`resistance_judge`). Figures are in `resistance_figures`.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

import elasticity.config
from elasticity import models, paper, results, stats, verdicts
from elasticity.experiments import resistance_judge, resistance_units
from elasticity.experiments.resistance_units import PAPER_DATASETS, Config

NAME = "resistance"
CHAPTER = "resistance"  # the notebook stem that shows this experiment
CLAIMS = ("resistance", "resistance_kl")  # keys of paper.CLAIMS this experiment tests
TABLES = ("runs", "curves")  # the measured tables (`measure`), all that an archive keeps (`elasticity.archived`)


# The default scale runs the middle tiny size (280k parameters; the 1.05M default size costs 3.8 times the
# FLOPs per token): 2 datasets x 3 seeds x 3 pairs x 2 directions = 36 fine-tunes, plus 6 SFT epochs and 18 sampling
# runs, within the chapter's 5-minute budget on 2 CPU cores.
PRESETS = {
    "default": Config(size="m"),
    "smoke": Config(size="s", datasets=("rotten-tomatoes",), num_sft=24, num_samples=8, num_eval=8, max_new_tokens=8,
                    steps=2, batch_size=4, max_length=32, seeds=(0, 1)),
}

# A pretrained model trains with LoRA at its own learning rates, at every scale; the protocol's sizes stay the
# scale's. The rates are chosen from the grid of `resistance_pilot` (run and archived with the chapter, shown in
# it): the SFT rate that parts the checkpoints most, then the fine-tuning rate that closes most of the gap. The
# tiny family's 3e-3 full fine-tuning is a rate for a 1M-parameter model trained here, not for a pretrained one.
FAMILY_SETTINGS = {
    "smollm2-135m": {"lora": True, "sft_learning_rate": 1e-3, "learning_rate": 1e-3},
}


def config(**overrides) -> Config:
    """The preset of the current scale (`ELASTICITY_SCALE`) with the non-None overrides.

    Another family than the preset's starts from its own default size and its `FAMILY_SETTINGS`; a hub family
    (not tiny, not smollm2-135m) runs the paper's three datasets when `datasets` is not given.
    """
    base = PRESETS[elasticity.config.scale()]
    family = overrides.get("family") or base.family
    if family != base.family:  # the preset's size is a tiny size
        base = dataclasses.replace(base, family=family, size=None, **FAMILY_SETTINGS.get(family, {}))
    if overrides.get("datasets") is None and models.family(family).kind == "hub":
        overrides = {**overrides, "datasets": PAPER_DATASETS}
    return elasticity.config.replace(base, **overrides)


def cached_units(cfg: Config) -> list[results.Unit]:
    """The training units `run(cfg)` reads from the results cache (for `elasticity status`)."""
    return resistance_units.cached_units(cfg)


def run(cfg: Config) -> dict:
    """Run the resistance protocol for every dataset, seed and checkpoint pair, and judge it.

    Returns:
        A dict of tidy DataFrames: `runs` and `curves` (see `resistance_units.measure`), and
        `cells`: one row per (dataset, model, pair, metric): forward and inverse means and standard
            deviations over seeds, the paired difference and whether the paper's ordering holds beyond
            the seed spread (`resistance_judge.summarize`);
        `table1`: our cells in the paper's layout; `paper_table1`, `paper_table2`: the paper's;
        `verdicts`: the computed verdicts (claims `resistance` and `resistance_kl`).
    """
    return judged(measure(cfg), cfg)


def measure(cfg: Config) -> dict:
    """The measured tables `runs` and `curves`, computed (or read from the cache) unit by unit."""
    return resistance_units.measure(cfg)


def judged(tables: dict, cfg: Config) -> dict:
    """The result of `run` from the measured tables alone (live, or read from an archive)."""
    return {**tables, **judge(tables["runs"], cfg)}


def judge(runs, cfg: Config) -> dict:
    """The judging of the measured `runs`: `cells`, `table1`, `paper_table1`, `paper_table2`, `verdicts`."""
    cells = resistance_judge.summarize(runs)
    return {
        "cells": cells,
        "table1": resistance_judge.layout(cells, "final_loss_nats"),
        "paper_table1": resistance_judge.paper_layout(),
        "paper_table2": resistance_judge.paper_table2(),
        "verdicts": verdicts.to_frame(resistance_judge.judge(runs, cells, chapter=CHAPTER, family=cfg.family)),
    }


def load_or_run(cfg: Config) -> dict:
    """The cached result of `run(cfg)`, computed (and cached unit by unit) on first use."""
    return results.load_or_run(NAME, cfg, run)


def summary_markdown(result: dict) -> str:
    """The verdicts of a result in words, each with its effect and the paper's figure, then the cells where the
    run differs from the paper's Table 1 (inverse not below forward beyond the seed spread)."""
    lines = []
    for v in result["verdicts"].itertuples():
        lines.append(f"- **{v.claim}**, {v.task} ({v.source}): **{v.outcome}**; effect {v.measure}: "
                     f"{stats.effect_text(v.effect, v.low, v.high, int(v.seeds), v.detectable)}. {v.ours}. "
                     f"Paper: {v.paper}." + (f" {v.reason[0].upper()}{v.reason[1:]}." if v.outcome == stats.NOT_TESTABLE
                                              else ""))
    cells = result["cells"]
    loss = cells[cells["metric"] == "final_loss_nats"]
    differing = loss[~loss["holds_beyond_spread"]]
    if len(differing):
        lines += ["", f"Where this run differs from the paper's Table 1 (inverse not below forward beyond the seed "
                      f"spread), {len(differing)} of {len(loss)} cells:"]
        lines += [f"- {r.dataset}, {r.model}, pair θ{r.k}/θ{r.l}: inverse {r.inverse_mean:.4f} ± {r.inverse_sd:.4f} vs "
                  f"forward {r.forward_mean:.4f} ± {r.forward_sd:.4f}; paired difference {r.difference_mean:+.4f} ± "
                  f"{r.difference_sd:.4f} nats per token." for r in differing.itertuples()]
    return "\n".join(lines)


def scaled_from_paper(cfg: Config, num_parameters: int | None) -> pd.DataFrame:
    """Each quantity of the protocol in the paper and in this run, with the factor between them where the paper
    reports it (it reports no data sizes, lengths, steps, learning rates or seeds: those rows say so)."""
    sizes = paper.RESISTANCE_MODEL_PARAMETERS
    low, high = min(sizes.values()), max(sizes.values())
    factor = f"{low / num_parameters:.0f}× to {high / num_parameters:.0f}× fewer" if num_parameters else "-"
    unreported = "not reported"
    rows = [
        ("model parameters", f"{low / 1e9:.1f}B to {high / 1e9:.0f}B ({', '.join(sizes)})",
         f"{num_parameters / 1e6:.3g}M ({cfg.model})" if num_parameters else cfg.model, factor),
        ("alignment datasets", ", ".join(paper.RESISTANCE_DATASETS), ", ".join(cfg.datasets),
         "the paper's" if set(cfg.datasets) == set(PAPER_DATASETS) else "offline stand-ins"),
        ("checkpoints along one SFT epoch", "3 (Table 1), 7 (Table 2)", str(cfg.num_checkpoints), "-"),
        ("SFT examples in the epoch", unreported, str(cfg.num_sft), "-"),
        ("held-out prompts answered, |D_k|", unreported, f"{cfg.num_samples} (+{cfg.num_eval} for evaluation)", "-"),
        ("tokens per sampled response", unreported, str(cfg.max_new_tokens), "-"),
        ("optimizer steps per direction", unreported, f"{cfg.steps} (batch {cfg.batch_size})", "-"),
        ("trained weights, learning rates", unreported,
         f"{'LoRA adapters' if cfg.lora else 'all'}; SFT {cfg.sft_learning_rate:g}, fine-tunes {cfg.learning_rate:g}",
         "-"),
        ("seeds", "none reported", str(len(cfg.seeds)), "-"),
    ]
    return pd.DataFrame(rows, columns=["quantity", "paper", "this run", "scaled"]).set_index("quantity")
