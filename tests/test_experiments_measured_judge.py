"""Tests of Theorem 4.2's judging, on synthetic rate tables whose answer is known."""

import math

import numpy as np
import pandas as pd
import pytest

from elasticity import stats, theory
from elasticity.experiments import measured_judge, measured_units

KS = (10.0, 30.0, 100.0)
LS = (0.05, 0.1, 0.2, 0.5, 2.0)
SEEDS = (0, 1, 2)


def synthetic_rates(transform=lambda k, l, dp, da, seed: (dp, da)) -> pd.DataFrame:  # noqa: E741
    """A `rates` table whose changes are the theory's (equal parts), optionally transformed per seed."""
    rows = []
    for k in KS:
        for seed in SEEDS:
            for l in (0.0, *LS):  # noqa: E741
                dp, da = theory.rate_changes(k, l) if l > 0 else (0.0, 0.0)
                if l > 0:
                    dp, da = transform(k, l, dp, da, seed)
                for name, delta in (("D_p", dp), ("D_a", da), ("D_1", dp), ("D_2", da), ("D_3", -dp)):
                    rows.append({"protocol": "sequential", "alignment_size": round(3000 / k), "k": k, "seed": seed,
                                 "l": l, "l_target": l, "num_perturbation": round(l * 3000 / k), "dataset": name,
                                 "gamma_bits": 5.0 + delta, "delta_gamma_bits": delta, "kl_nats": abs(delta) * 0.1,
                                 "pretrained_gamma_bits": 5.0})
    return pd.DataFrame(rows)


def analyse(rates, cfg, protocol="joint"):
    slopes = measured_judge.seed_slopes(rates, cfg.fit_l_max)
    derivs, per_seed = measured_judge.derivatives(slopes), measured_judge.per_seed_derivatives(slopes)
    ratio_table = measured_judge.ratios(derivs, per_seed, cfg.tolerance_factor)
    secant_table = measured_judge.secants(rates, cfg.tolerance_factor)
    found = measured_judge.judge(per_seed, ratio_table, secant_table, cfg, "elasticity_measured", protocol)
    return derivs, ratio_table, secant_table, found


def jitter(k, l, dp, da, seed):  # noqa: E741
    """Multiplicative noise of +-2% per seed, so that the standard errors are finite and small."""
    factor = 1.0 + 0.02 * (seed - 1)
    return dp * factor, da * (2.0 - factor)


def test_slope_through_origin_recovers_a_line_and_its_error():
    x = np.array([0.1, 0.2, 0.4])
    b, se = stats.slope_through_origin(x, 3.0 * x)
    assert b == pytest.approx(3.0) and se == pytest.approx(0.0, abs=1e-12)
    b, se = stats.slope_through_origin(x, 3.0 * x + np.array([0.01, -0.01, 0.0]))
    assert 2.9 < b < 3.1 and se > 0
    assert math.isnan(stats.slope_through_origin([0.1], [0.3])[1])


def test_the_theory_itself_is_reproduced_at_every_k_under_the_joint_protocol():
    cfg = measured_units.Config(fit_l_max=0.1)
    derivs, ratio_table, secant_table, found = analyse(synthetic_rates(jitter), cfg)
    assert set(derivs.dataset) == set(measured_units.DATASETS)
    assert (ratio_table.holds == "reproduced").all()
    assert (ratio_table.change_a == "rises").all() and (ratio_table.change_p == "falls").all()
    # The slope over l <= 0.1 is close to the derivative at 0, so the ratio is close to -k.
    assert np.allclose(ratio_table.ratio / -ratio_table.k, 1.0, atol=0.15)
    # The reconstruction's secant ratio: Delta gamma_a = log((k+1+l)/(k+1)), Delta gamma_p = that - log(1 + 3l/k)/3.
    row = secant_table.iloc[0]
    delta_a = math.log((row.k + 1 + row.l) / (row.k + 1))
    assert row.reconstruction_ratio == pytest.approx(delta_a / (delta_a - math.log(1 + 3 * row.l / row.k) / 3))
    # The theory's d gamma_p/dl changes sign at l = 1/2, so that gamma_p(2) > gamma_p(0): no longer the theorem.
    assert measured_judge.holding_l_range(secant_table) == [0.05, 0.1, 0.2, 0.5]
    assert [v.outcome for v in found] == ["reproduced"] * 3 and found[0].claim == "theorem_4_2"
    assert [v.task for v in found] == ["k = 10", "k = 30", "k = 100"]
    assert "joint protocol" in found[0].ours and all(v.seeds == 3 and v.low > 0 for v in found)
    exps = measured_judge.exponents(derivs, ratio_table).set_index("quantity")
    assert exps.loc["ratio", "exponent"] == pytest.approx(1.0, abs=0.05)
    assert exps.loc["d gamma_a / dl", "exponent"] == pytest.approx(-1.0, abs=0.05)
    assert exps.loc["d gamma_a / dl", "expected_from"] == "our reconstruction"


def test_the_sequential_protocol_is_not_testable_even_where_every_effect_is_inside_the_band():
    # Sequential fine-tuning does not train on the size-weighted union (the theorem's hypothesis).
    _, ratio_table, _, found = analyse(synthetic_rates(jitter), measured_units.Config(fit_l_max=0.1), "sequential")
    assert (ratio_table.holds == "reproduced").all()
    assert {v.outcome for v in found} == {"not testable here"}
    assert "sequential protocol" in found[0].ours and "hypothesis" in found[0].reason
    assert all(v.low > 0 for v in found)  # the effects are recorded all the same


def test_a_wrong_sign_is_not_reproduced():
    def flip(k, l, dp, da, seed):  # noqa: E741
        dp, da = jitter(k, l, dp, da, seed)
        return dp, -da

    _, ratio_table, _, found = analyse(synthetic_rates(flip), measured_units.Config(fit_l_max=0.1))
    assert (ratio_table.holds == "contradicted").all() and (ratio_table.change_a == "falls").all()
    assert {v.outcome for v in found} == {"contradicted"}
    _, _, _, found = analyse(synthetic_rates(flip), measured_units.Config(fit_l_max=0.1), "sequential")
    assert {v.outcome for v in found} == {"not testable here"}


def test_a_ratio_independent_of_k_is_not_reproduced():
    def flat(k, l, dp, da, seed):  # noqa: E741
        # d gamma_p/dl = -d gamma_a/dl: the ratio is -1 at every k, the right sign but not Theta(k).
        dp, da = jitter(k, l, dp, da, seed)
        return -da, da

    cfg = measured_units.Config(fit_l_max=0.1, tolerance_factor=5.0)
    _, ratio_table, _, found = analyse(synthetic_rates(flat), cfg)
    assert np.allclose(ratio_table.ratio, -1.0)
    assert (ratio_table.change_a == "rises").all() and (ratio_table.change_p == "falls").all()  # the signs hold
    assert {v.outcome for v in found} == {"contradicted"}  # |ratio| = 1 is outside [k/5, 5k] for k >= 10


def test_unresolved_changes_are_inconclusive():
    def noise(k, l, dp, da, seed):  # noqa: E741
        # Seeds disagree symmetrically about a zero mean: no sign is resolved.
        return 1e-3 * (seed - 1), 1e-3 * (seed - 1)

    _, ratio_table, _, found = analyse(synthetic_rates(noise), measured_units.Config(fit_l_max=0.1))
    assert (ratio_table.holds == "inconclusive").all()
    assert (ratio_table.change_a == "no resolved change").all()
    assert {v.outcome for v in found} == {"inconclusive"}


def test_joint_decides_wherever_it_ran():
    assert measured_judge.judged_protocol(("sequential", "joint")) == "joint"
    assert measured_judge.judged_protocol(("joint",)) == "joint"
    assert measured_judge.judged_protocol(("sequential",)) == "sequential"  # then "not testable here"


def test_band_margin_needs_no_division():
    # inside the band [k/f, k f] with the theorem's signs; below it; wrong signs; d gamma_p/dl = 0 exactly
    margins = measured_judge.band_margin([10.0, 0.5, -1.0, 1.0], [-1.0, -1.0, 1.0, 0.0], k=10.0, factor=2.0)
    assert margins[0] > 0 and margins[1] < 0 and margins[2] < 0 and margins[3] < 0
    assert np.isfinite(margins).all()


def test_ratio_interval():
    assert stats.ratio_interval(1.0, 0.1, -0.1, 0.01, t=2.0) == pytest.approx((0.8 / 0.12, 1.2 / 0.08))
    assert stats.ratio_interval(1.0, 0.1, -0.1, 0.1, t=2.0)[1] == math.inf
    assert stats.ratio_interval(1.0, math.nan, -0.1, 0.01, t=2.0) == (0.0, math.inf)


def test_directions_use_the_books_t_rule():
    t3 = stats.t_critical(3)  # 2.92 for three seeds: a mean 2.5 standard errors from zero is not resolved
    assert measured_judge.t_multiplier(3, 2) == pytest.approx(t3)
    assert measured_judge.t_multiplier(1, 4) == pytest.approx(stats.t_critical(4))  # one seed: the slope's own df
    assert measured_judge.direction(2.5, 1.0, t3) == "no resolved change" == measured_judge.direction(-2.5, 1.0, t3)
    assert measured_judge.direction(3.0, 1.0, t3) == "rises" and measured_judge.direction(-3.0, 1.0, t3) == "falls"
    assert measured_judge.direction(3.0, math.nan, t3) == "no resolved change"
    rates = synthetic_rates(jitter)
    slopes = measured_judge.seed_slopes(rates, 0.1)
    ratio_table = measured_judge.ratios(measured_judge.derivatives(slopes),
                                        measured_judge.per_seed_derivatives(slopes), 10.0)
    assert np.allclose(ratio_table.t, t3) and (ratio_table.num_seeds == len(SEEDS)).all()


def test_hooke_balance_is_one_for_the_theory_at_small_l():
    table = measured_judge.hooke(synthetic_rates(), pretraining_size=3000)
    small = table[table.l == min(LS)]
    assert np.allclose(small.balance, 1.0, atol=0.2)
    assert {"kl_force_a", "kl_force_p", "kl_balance"} <= set(table.columns)
