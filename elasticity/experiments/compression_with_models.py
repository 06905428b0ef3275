"""Compression with models: the chapter's presets, and `run` = its tables (`compression_with_models_units`,
cached as one entry) judged here, so that judging them again computes nothing."""

from __future__ import annotations

import pandas as pd

import elasticity.config
from elasticity import results, stats, verdicts
from elasticity.experiments import compression_with_models_units
from elasticity.experiments.compression_with_models_units import Config

NAME = "compression_with_models"
CHAPTER = "compression_with_models"  # the notebook stem that shows this experiment
CLAIMS = ("log_loss_is_code_length",)
# An arithmetic code is "its model's log-loss" when it is within this fraction of the NLL plus this many bits
# (a coder's finite precision and its end-of-stream bits; ours, the paper states no coder).
CODE_SLACK_FRACTION, CODE_SLACK_BITS = 0.001, 64

PRESETS = {
    "default": Config(),
    "smoke": Config(num_bytes=300, ideal_bytes=2000, smollm2=False, rates_texts=20),
}


def config(**overrides) -> Config:
    """The preset of the current scale (`ELASTICITY_SCALE`) with the non-None overrides."""
    return elasticity.config.replace(PRESETS[elasticity.config.scale()], **overrides)


def cached_units(cfg: Config) -> list[results.Unit]:
    """The cache entries `run(cfg)` reads (for `elasticity status`)."""
    return compression_with_models_units.cached_units(cfg)


def judge(coding: pd.DataFrame, family: str) -> list[verdicts.Verdict]:
    """The verdict on `log_loss_is_code_length`: every model's arithmetic code within CODE_SLACK_FRACTION of its
    NLL plus CODE_SLACK_BITS. Codes are exact, so the effect (the slack left by the worst model) is computed
    exactly (`stats.exact`); "not testable here" if a decompressed file did not decode byte for byte."""
    rows = coding[coding.kind == "model"]
    slack = rows.nll_bits * (1 + CODE_SLACK_FRACTION) + CODE_SLACK_BITS - rows.code_bits
    checked = rows.round_trip.dropna().astype(bool)
    precondition = None
    if not checked.all():
        precondition = (f"precondition failed: {int((~checked).sum())} of {len(checked)} decompressed files did not "
                        "decode byte for byte, so the codes are not codes")
    excess = rows.code_bits - rows.nll_bits
    return [verdicts.judged(
        "log_loss_is_code_length", CHAPTER, family=family, task="",
        measure=(f"{CODE_SLACK_FRACTION:.1%} of the NLL + {CODE_SLACK_BITS} bits - (code - NLL), the worst of "
                 f"{len(rows)} models (bits)"),
        effect=stats.exact(float(slack.min()), "the slack left by the worst model"),
        ours=(f"code - NLL between {float(excess.min()):.1f} and {float(excess.max()):.1f} bits on "
              f"{int(rows.bytes.iloc[0])} bytes; {int(checked.sum())} of {len(checked)} decompressed files decoded "
              "byte for byte"),
        paper="a statement; no compressed sizes reported", precondition=precondition)]


def run(cfg: Config) -> dict:
    """The chapter's tables (`compression_with_models_units.measure`: "coding", "ideal", "rates") and
    "verdicts" (`judge`)."""
    tables = compression_with_models_units.measure(cfg)
    return {**tables, "verdicts": verdicts.to_frame(judge(tables["coding"], cfg.family))}


def load_or_run(cfg: Config) -> dict:
    """The cached result of `run(cfg)`, computed on first use."""
    return results.load_or_run(NAME, cfg, run)
