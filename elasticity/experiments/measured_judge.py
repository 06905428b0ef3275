"""Theorem 4.2 measured, the judging: d gamma/dl at l -> 0, their ratio against -k, secants, exponents, the verdict.

Pure functions of the `rates` table (`measured_units.measure_rates`), tested on synthetic data.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from elasticity import paper, stats, theory, verdicts
from elasticity.experiments.measured_units import Config

THEOREM_PROTOCOLS = ("joint",)  # the protocols that meet the theorem's hypothesis; others: not testable here
LEVEL = 0.95  # one-sided Student-t level of the words "rises" / "falls" and the |ratio| interval (descriptions)


def seed_slopes(rates: pd.DataFrame, fit_l_max: float) -> pd.DataFrame:
    """d gamma/dl at l -> 0 per (k, dataset, seed): the slope through the origin over 0 < l <= fit_l_max, with
    its own standard error, and the fit's largest l and number of l values."""
    fit = rates[(rates.l > 0) & (rates.l <= fit_l_max + 1e-12)]
    rows = []
    for (k, name, seed), g in fit.groupby(["k", "dataset", "seed"]):
        slope, se = stats.slope_through_origin(g.l, g.delta_gamma_bits)
        rows.append({"k": k, "dataset": name, "seed": seed, "slope": slope, "slope_se": se,
                     "l_max": float(g.l.max()), "num_l": int(g.l.nunique())})
    return pd.DataFrame(rows)


def derivatives(slopes: pd.DataFrame) -> pd.DataFrame:
    """d gamma/dl at l -> 0 per (k, dataset) from `seed_slopes`: the mean over seeds with its standard error
    (with one seed: the slope's own standard error)."""
    rows = []
    for (k, name), group in slopes.groupby(["k", "dataset"]):
        mean, se = stats.mean_se(group.slope)
        if len(group) == 1:
            se = float(group.slope_se.iloc[0])
        rows.append({"k": k, "dataset": name, "dgamma_dl_bits": mean, "se_bits": se, "num_seeds": len(group),
                     "l_max": float(group.l_max.max()), "num_l": int(group.num_l.max())})
    return pd.DataFrame(rows)


def direction(mean: float, se: float, t: float) -> str:
    """A change in words from `stats.resolved_sign`: "rises", "falls" or "no resolved change"."""
    return {1: "rises", -1: "falls", 0: "no resolved change"}[stats.resolved_sign(mean, se, t)]


def per_seed_derivatives(slopes: pd.DataFrame) -> pd.DataFrame:
    """`seed_slopes` per (k, seed): columns k, seed, `a` (D_a) and `p` (D_p), bits/token per unit l."""
    wide = slopes.pivot(index=["k", "seed"], columns="dataset", values="slope")
    return wide[["D_a", "D_p"]].rename(columns={"D_a": "a", "D_p": "p"}).reset_index().rename_axis(columns=None)


def band_margin(a, p, k: float, factor: float):
    """How far d gamma_a/dl = a lies inside the theorem's band, per seed: min(a + (k/factor) p, -(a + k factor p)).

    Positive exactly when p < 0 < a and k/factor <= |a/p| <= k factor (Theta(k) read as "within `factor` of
    k", both signs as the theorem says), with no division: a near-zero d gamma_p/dl cannot blow it up.
    """
    a, p = np.asarray(a, dtype=float), np.asarray(p, dtype=float)
    return np.minimum(a + k / factor * p, -(a + k * factor * p))


def t_multiplier(num_seeds: int, num_l: int) -> float:
    """The one-sided t critical value (`stats.t_critical` at LEVEL) for a derivative's standard error:
    over seeds (n - 1 degrees of freedom) or, with one seed, the slope's own (num_l - 1 degrees of freedom)."""
    return stats.t_critical(num_seeds if num_seeds > 1 else num_l, LEVEL)


def _reconstruction_ratio(k: float, l: float) -> float:  # noqa: E741
    """Our reconstruction's secant ratio Delta gamma_a / Delta gamma_p at l (`theory.rate_changes`: equal parts,
    disjoint supports); it tends to -k as l -> 0."""
    delta_p, delta_a = theory.rate_changes(k, l)
    return delta_a / delta_p


def ratios(derivs: pd.DataFrame, per_seed: pd.DataFrame, factor: float) -> pd.DataFrame:
    """Per k: the measured ratio (d gamma_a/dl)/(d gamma_p/dl), its interval of |ratio| (each derivative within t
    standard errors, `stats.ratio_interval`), -k, ratio / (-k), each derivative's direction in words (t from
    `t_multiplier`: descriptions), and `holds`, the outcome of the book's rule on the per-seed `band_margin`
    (`per_seed` is `per_seed_derivatives`), the verdict's."""
    rows = []
    for k, group in derivs.groupby("k"):
        a = group[group.dataset == "D_a"].iloc[0]
        p = group[group.dataset == "D_p"].iloc[0]
        t = t_multiplier(int(a.num_seeds), int(a.num_l))
        lo, hi = stats.ratio_interval(a.dgamma_dl_bits, a.se_bits, p.dgamma_dl_bits, p.se_bits, t)
        ratio = a.dgamma_dl_bits / p.dgamma_dl_bits if p.dgamma_dl_bits != 0 else math.nan
        seeds = per_seed[per_seed.k == k]
        rows.append({
            "k": k, "dgamma_a_dl_bits": a.dgamma_dl_bits, "se_a_bits": a.se_bits,
            "dgamma_p_dl_bits": p.dgamma_dl_bits, "se_p_bits": p.se_bits, "num_seeds": int(a.num_seeds), "t": t,
            "change_a": direction(a.dgamma_dl_bits, a.se_bits, t),
            "change_p": direction(p.dgamma_dl_bits, p.se_bits, t), "ratio": ratio,
            "abs_ratio_lo": lo, "abs_ratio_hi": hi, "minus_k": -k, "ratio_over_minus_k": ratio / -k,
            "holds": stats.effect(band_margin(seeds.a, seeds.p, k, factor)).outcome,
        })
    return pd.DataFrame(rows)


def secants(rates: pd.DataFrame, factor: float) -> pd.DataFrame:
    """Per (k, l target): secant slopes Delta gamma / l of D_a and D_p (mean, se over seeds), their ratio,
    our reconstruction's secant ratio (`theory.rate_changes`), and `holds`, the book's rule on the per-seed
    `band_margin` of the secants at that l."""
    points = rates[rates.l > 0].copy()
    points["secant"] = points.delta_gamma_bits / points.l
    rows = []
    for (k, l_target), group in points.groupby(["k", "l_target"]):
        wide = group.pivot_table(index="seed", columns="dataset", values="secant")
        a, se_a = stats.mean_se(wide["D_a"])
        p, se_p = stats.mean_se(wide["D_p"])
        l = float(group.l.iloc[0])  # noqa: E741
        rows.append({"k": k, "l_target": l_target, "l": l, "num_perturbation": int(group.num_perturbation.iloc[0]),
                     "secant_a_bits": a, "se_a_bits": se_a,
                     "secant_p_bits": p, "se_p_bits": se_p, "ratio": a / p if p != 0 else math.nan,
                     "reconstruction_ratio": _reconstruction_ratio(k, l),
                     "holds": stats.effect(band_margin(wide["D_a"], wide["D_p"], k, factor)).outcome})
    return pd.DataFrame(rows)


# The exponent b of |quantity| ~ k^b (k >> 1) that each source gives: the theorem states only the ratio's
# Theta(k); the derivatives' own exponents come from our reconstruction (theory_elasticity), an assumption.
EXPECTED_EXPONENTS = {
    "d gamma_a / dl": (-1.0, "our reconstruction"),
    "d gamma_p / dl": (-2.0, "our reconstruction"),
    "ratio": (1.0, "Theorem 4.2 (Theta(k))"),
}


def exponents(derivs: pd.DataFrame, ratio_table: pd.DataFrame) -> pd.DataFrame:
    """Exponents b of |quantity| ~ k^b, measured (log-log OLS over k) beside EXPECTED_EXPONENTS and their source."""
    rows = []
    for name, frame, column in (
        ("d gamma_a / dl", derivs[derivs.dataset == "D_a"], "dgamma_dl_bits"),
        ("d gamma_p / dl", derivs[derivs.dataset == "D_p"], "dgamma_dl_bits"),
        ("ratio", ratio_table, "ratio"),
    ):
        b, se = stats.loglog_slope(frame.k, frame[column])
        signs = np.sign(frame[column].to_numpy())
        expected, source = EXPECTED_EXPONENTS[name]
        rows.append({"quantity": name, "exponent": b, "se": se, "expected_exponent": expected,
                     "expected_from": source, "same_sign_at_every_k": bool(len(set(signs)) == 1)})
    return pd.DataFrame(rows)


def hooke(rates: pd.DataFrame, pretraining_size: int) -> pd.DataFrame:
    """The Hooke's-law invariant per (k, l): "force" |D_i| x change for D_a and D_p, mean and se over seeds.

    Compression: F_a = |D_a| Delta gamma_a against -F_p = -|D_p| Delta gamma_p (equal in Theorem 4.2 as
    l -> 0: their ratio is ratio / (-k)). KL: |D_a| KL_a against |D_p| KL_p, with KL(perturbed || aligned)
    on each dataset's held-out texts. Sizes in examples; changes in bits/token, KL in nats/token.
    """
    points = rates[rates.l > 0]
    rows = []
    for (k, num, seed), group in points.groupby(["k", "num_perturbation", "seed"]):
        a = group[group.dataset == "D_a"].iloc[0]
        p = group[group.dataset == "D_p"].iloc[0]
        size_a = pretraining_size / k
        rows.append({"k": k, "l_target": a.l_target, "l": a.l, "num_perturbation": num, "seed": seed,
                     "force_a": size_a * a.delta_gamma_bits, "minus_force_p": -pretraining_size * p.delta_gamma_bits,
                     "kl_force_a": size_a * a.kl_nats, "kl_force_p": pretraining_size * p.kl_nats})
    per_seed = pd.DataFrame(rows)
    out = []
    for (k, l_target), group in per_seed.groupby(["k", "l_target"]):
        row = {"k": k, "l_target": l_target, "l": float(group.l.iloc[0]),
               "num_perturbation": int(group.num_perturbation.iloc[0])}
        for column in ("force_a", "minus_force_p", "kl_force_a", "kl_force_p"):
            row[column], row[f"{column}_se"] = stats.mean_se(group[column])
        # Ratios of the means over seeds (a mean of per-seed ratios is unstable where a force is near zero).
        row["balance"] = row["force_a"] / row["minus_force_p"] if row["minus_force_p"] else math.nan
        row["kl_balance"] = row["kl_force_a"] / row["kl_force_p"] if row["kl_force_p"] else math.nan
        out.append(row)
    return pd.DataFrame(out)


def holding_l_range(secant_table: pd.DataFrame) -> list[float]:
    """The perturbation sizes l (targets) at which the Theorem 4.2 secant effect is reproduced at every k."""
    ok = secant_table.groupby("l_target")["holds"].apply(lambda h: bool((h == stats.REPRODUCED).all()))
    return sorted(float(l) for l, good in ok.items() if good)  # noqa: E741


def judged_protocol(protocols: tuple[str, ...]) -> str:
    """The protocol whose effects decide the verdicts: the first of `protocols` that meets the theorem's
    hypothesis (THEOREM_PROTOCOLS), else the first run (whose verdicts then read "not testable here")."""
    return next((p for p in protocols if p in THEOREM_PROTOCOLS), protocols[0])


def judge(per: pd.DataFrame, ratio_table: pd.DataFrame, secant_table: pd.DataFrame, cfg: Config,
          chapter: str, protocol: str) -> list[verdicts.Verdict]:
    """The verdicts on Theorem 4.2, one per k: the per-seed `band_margin` at l -> 0 (`per` is
    `per_seed_derivatives`) by the book's rule, from the tables of one `protocol`.

    Only a protocol of THEOREM_PROTOCOLS trains on the size-weighted union that the theorem assumes; under
    any other the effects are still computed and recorded, but the outcome is "not testable here".
    """
    good_l = holding_l_range(secant_table)
    l_text = ", ".join(f"{v:g}" for v in good_l) if good_l else "none"
    precondition = None
    if protocol not in THEOREM_PROTOCOLS:
        precondition = (f"precondition failed: the {protocol} protocol fine-tunes on D_a, then D_t, alone, so "
                        f"nothing weighs D_a against D_p as the theorem's hypothesis (a model fitted to the "
                        f"size-weighted union) requires; protocol {' or '.join(THEOREM_PROTOCOLS)} tests it")
    paper_text = (f"ratio = Theta(-k), k = |D_p|/|D_a| >> 1 (typically {paper.THEOREM_K_TYPICAL[0]:.0e} to "
                  f"{paper.THEOREM_K_TYPICAL[1]:.0e}); no measurement in the paper")
    out = []
    for row in ratio_table.itertuples():
        seeds = per[per.k == row.k]
        hi = "inf" if not math.isfinite(row.abs_ratio_hi) else f"{row.abs_ratio_hi:.3g}"
        out.append(verdicts.judged(
            "theorem_4_2", chapter, family=cfg.family, task=f"k = {row.k:.3g}",
            measure=(f"min(a + (k/{cfg.tolerance_factor:g}) p, -(a + {cfg.tolerance_factor:g} k p)) with a, p = "
                     f"d gamma_a/dl, d gamma_p/dl (bits/token; positive: p < 0 < a, |a/p| within a factor "
                     f"{cfg.tolerance_factor:g} of k)"),
            effect=stats.effect(band_margin(seeds.a, seeds.p, row.k, cfg.tolerance_factor)),
            ours=(f"ratio {row.ratio:.3g} (|ratio| in [{row.abs_ratio_lo:.3g}, {hi}]); holds at l in: {l_text} "
                  f"({protocol} protocol)"),
            paper=paper_text, precondition=precondition,
        ))
    return out
