"""Theorem 4.2 measured: d gamma/dl of the pre-training and alignment sets on models trained here, against -k.

The experiment of the elasticity_measured chapter: its presets, and `run` = the cached units
(`measured_units`) judged (`measured_judge`). Figures are in `measured_figures`.
"""

from __future__ import annotations

import pandas as pd

import elasticity.config
from elasticity import results, verdicts
from elasticity.experiments import measured_judge, measured_units
from elasticity.experiments.measured_units import Config

NAME = "measured"
CHAPTER = "elasticity_measured"  # the notebook stem that shows this experiment
CLAIMS = ("theorem_4_2",)

PRESETS = {
    # k = 10, 30, 100 (a 10x span), four perturbation sizes, three seeds, both protocols (joint decides):
    # the sequential units take about 7 s each, the joint ones about 70 s (a pass over all of D_p per
    # perturbation) on 2 quiet cores; the chapter's time is in benchmarks/latest/book.json.
    "default": Config(),
    # Seconds, for the test suite's book build: the same pipeline on a few dozen examples.
    "smoke": Config(alignment_sizes=(40, 12), l_values=(0.1, 0.25), seeds=(0, 1), part_size=40,
                    pretrain_epochs=1.0, align_epochs=1.0, eval_size=12, kl_size=6, max_length=32,
                    fit_l_max=0.25),
}


def config(**overrides) -> Config:
    """The preset of the current scale (`ELASTICITY_SCALE`) with the non-None overrides."""
    return elasticity.config.replace(PRESETS[elasticity.config.scale()], **overrides)



def cached_units(cfg: Config) -> list[results.Unit]:
    """The training units `run(cfg)` reads from the results cache (for `elasticity status`)."""
    return measured_units.cached_units(cfg)


def run(cfg: Config) -> dict:
    """Pre-train, align, perturb and measure; estimate d gamma/dl and compare their ratio with -k.

    Returns:
        A dict of tidy DataFrames:
        `sizes`: |D_1|, |D_2|, |D_3|, |D_p| and each |D_a| in examples and tokens, and k.
        `rates`: one row per (protocol, |D_a|, seed, l, dataset): the normalized compression rate (bits/token),
            its change from the aligned model (l = 0), and KL(perturbed || aligned) on the dataset's
            held-out texts (nats/token).
        `derivatives`, `ratios`, `secants`, `exponents`, `hooke`, `verdicts`: see `judge`.
    """
    rates = measured_units.measure_rates(cfg)
    return {"sizes": measured_units.sizes_table(cfg), "rates": rates, **judge(rates, cfg)}


def judge(rates, cfg: Config) -> dict:
    """The judging of the measured `rates`, protocol by protocol; each table has a `protocol` column first.

    Returns:
        `derivatives`: per (k, dataset): d gamma/dl at l -> 0 (slope through the origin over
            l <= fit_l_max), mean and standard error over seeds.
        `ratios`: per k: (d gamma_a/dl) / (d gamma_p/dl) with an interval, beside -k, and the tests.
        `secants`: per (k, l): the secant slopes Delta gamma / l, their ratio and our reconstruction's.
        `exponents`: log-log slopes of |d gamma_a/dl|, |d gamma_p/dl| and |ratio| against k, and the expected.
        `hooke`: per (k, l): |D_a| Delta gamma_a against -|D_p| Delta gamma_p, and the same with KL.
        `verdicts`: the computed verdicts (claim `theorem_4_2`), from the protocol that
            `measured_judge.judged_protocol` names: joint where it ran.
    """
    tables = {protocol: _judge_protocol(rates[rates.protocol == protocol], cfg) for protocol in cfg.protocols}
    judged = measured_judge.judged_protocol(cfg.protocols)
    mine = tables[judged]
    found = measured_judge.judge(mine["per_seed"], mine["ratios"], mine["secants"], cfg, CHAPTER, judged)
    out = {name: pd.concat([table[name].assign(protocol=protocol)[["protocol", *table[name].columns]]
                            for protocol, table in tables.items()], ignore_index=True)
           for name in ("derivatives", "ratios", "secants", "exponents", "hooke")}
    return {**out, "verdicts": verdicts.to_frame(found)}


def _judge_protocol(rates, cfg: Config) -> dict:
    """The judging tables of one protocol's rates (no protocol column)."""
    slopes = measured_judge.seed_slopes(rates, cfg.fit_l_max)
    derivs, per_seed = measured_judge.derivatives(slopes), measured_judge.per_seed_derivatives(slopes)
    ratio_table = measured_judge.ratios(derivs, per_seed, cfg.tolerance_factor)
    return {
        "derivatives": derivs,
        "per_seed": per_seed,
        "ratios": ratio_table,
        "secants": measured_judge.secants(rates, cfg.tolerance_factor),
        "exponents": measured_judge.exponents(derivs, ratio_table),
        "hooke": measured_judge.hooke(rates, cfg.pretraining_size),
    }


def load_or_run(cfg: Config) -> dict:
    """The cached result of `run(cfg)`, computed (and cached unit by unit) on first use."""
    return results.load_or_run(NAME, cfg, run)
