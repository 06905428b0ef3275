"""Tests of the measured-elasticity experiment (analysis on synthetic data, config, smoke run) and of the registry."""

import math

import numpy as np
import pandas as pd
import pytest

from elasticity import config, theory, verdicts
from elasticity.experiments import measured, registry

# ---------------------------------------------------------------------------------------------------------
# Analysis, on synthetic rate tables whose answer is known.
# ---------------------------------------------------------------------------------------------------------

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


def analyse(rates, cfg):
    derivs = measured.derivatives(rates, cfg.fit_l_max)
    ratio_table = measured.ratios(derivs, cfg.tolerance_factor)
    secant_table = measured.secants(rates, cfg.tolerance_factor)
    return derivs, ratio_table, secant_table, measured.judge(ratio_table, secant_table, cfg)


def jitter(k, l, dp, da, seed):  # noqa: E741
    """Multiplicative noise of +-2% per seed, so that the standard errors are finite and small."""
    factor = 1.0 + 0.02 * (seed - 1)
    return dp * factor, da * (2.0 - factor)


def test_slope_through_origin_recovers_a_line_and_its_error():
    x = np.array([0.1, 0.2, 0.4])
    b, se = measured.slope_through_origin(x, 3.0 * x)
    assert b == pytest.approx(3.0) and se == pytest.approx(0.0, abs=1e-12)
    b, se = measured.slope_through_origin(x, 3.0 * x + np.array([0.01, -0.01, 0.0]))
    assert 2.9 < b < 3.1 and se > 0
    assert math.isnan(measured.slope_through_origin([0.1], [0.3])[1])


def test_the_theory_itself_is_reproduced_at_every_k_under_the_joint_protocol():
    cfg = measured.Config(fit_l_max=0.1, protocol="joint")
    derivs, ratio_table, secant_table, found = analyse(synthetic_rates(jitter), cfg)
    assert set(derivs.dataset) == set(measured.DATASETS)
    assert (ratio_table.holds == "yes").all()
    assert (ratio_table.change_a == "rises").all() and (ratio_table.change_p == "falls").all()
    # The slope over l <= 0.1 is close to the derivative at 0, so the ratio is close to -k.
    assert np.allclose(ratio_table.ratio / -ratio_table.k, 1.0, atol=0.15)
    # The reconstruction's secant ratio: Delta gamma_a = log((k+1+l)/(k+1)), Delta gamma_p = that - log(1 + 3l/k)/3.
    row = secant_table.iloc[0]
    delta_a = math.log((row.k + 1 + row.l) / (row.k + 1))
    assert row.reconstruction_ratio == pytest.approx(delta_a / (delta_a - math.log(1 + 3 * row.l / row.k) / 3))
    # The theory's d gamma_p/dl changes sign at l = 1/2, so that gamma_p(2) > gamma_p(0): no longer the theorem.
    assert measured.holding_l_range(secant_table) == [0.05, 0.1, 0.2, 0.5]
    assert found[0].outcome == "reproduced" and found[0].claim == "theorem_4_2"
    assert "joint protocol" in found[0].ours and "2.92" in found[0].reason  # t(0.95, 2) for 3 seeds
    exps = measured.exponents(derivs, ratio_table).set_index("quantity")
    assert exps.loc["ratio", "exponent"] == pytest.approx(1.0, abs=0.05)
    assert exps.loc["d gamma_a / dl", "exponent"] == pytest.approx(-1.0, abs=0.05)
    assert exps.loc["d gamma_a / dl", "expected_from"] == "our reconstruction"


def test_the_sequential_protocol_is_not_comparable_even_where_every_test_holds():
    # Sequential fine-tuning does not train on the size-weighted union (the theorem's hypothesis).
    _, ratio_table, _, found = analyse(synthetic_rates(jitter), measured.Config(fit_l_max=0.1))
    assert (ratio_table.holds == "yes").all()
    assert found[0].outcome == "not comparable"
    assert "sequential protocol" in found[0].ours and "hypothesis" in found[0].reason
    assert "per-k results: yes, yes, yes" in found[0].reason


def test_a_wrong_sign_is_not_reproduced():
    def flip(k, l, dp, da, seed):  # noqa: E741
        dp, da = jitter(k, l, dp, da, seed)
        return dp, -da

    _, ratio_table, _, found = analyse(synthetic_rates(flip), measured.Config(fit_l_max=0.1, protocol="joint"))
    assert (ratio_table.signs == "no").all() and (ratio_table.change_a == "falls").all()
    assert found[0].outcome == "not reproduced"
    _, _, _, found = analyse(synthetic_rates(flip), measured.Config(fit_l_max=0.1))
    assert found[0].outcome == "not comparable"


def test_a_ratio_independent_of_k_is_not_reproduced():
    def flat(k, l, dp, da, seed):  # noqa: E741
        # d gamma_p/dl = -d gamma_a/dl: the ratio is -1 at every k, the right sign but not Theta(k).
        dp, da = jitter(k, l, dp, da, seed)
        return -da, da

    cfg = measured.Config(fit_l_max=0.1, tolerance_factor=5.0, protocol="joint")
    _, ratio_table, _, found = analyse(synthetic_rates(flat), cfg)
    assert np.allclose(ratio_table.ratio, -1.0)
    assert (ratio_table.signs == "yes").all()
    assert found[0].outcome == "not reproduced"  # |ratio| = 1 is outside [k/5, 5k] for k >= 10


def test_unresolved_changes_are_not_comparable():
    def noise(k, l, dp, da, seed):  # noqa: E741
        # Seeds disagree symmetrically about a zero mean: no sign is resolved.
        return 1e-3 * (seed - 1), 1e-3 * (seed - 1)

    _, ratio_table, _, found = analyse(synthetic_rates(noise), measured.Config(fit_l_max=0.1, protocol="joint"))
    assert (ratio_table.holds == "unresolved").all()
    assert (ratio_table.change_a == "no resolved change").all()
    assert found[0].outcome == "not comparable"


def test_ratio_interval_and_sign_test():
    assert measured.ratio_interval(1.0, 0.1, -0.1, 0.01, t=2.0) == pytest.approx((0.8 / 0.12, 1.2 / 0.08))
    assert measured.ratio_interval(1.0, 0.1, -0.1, 0.1, t=2.0)[1] == math.inf
    assert measured.ratio_interval(1.0, math.nan, -0.1, 0.01, t=2.0) == (0.0, math.inf)
    assert measured.sign_test(1.0, 0.1, -0.1, 0.01, t=2.0) is True
    assert measured.sign_test(-1.0, 0.1, -0.1, 0.01, t=2.0) is False
    assert measured.sign_test(1.0, 0.1, -0.1, 0.1, t=2.0) is None
    assert measured.sign_test(1.0, math.nan, -0.1, 0.01, t=2.0) is None  # no standard error: unresolved
    assert measured.theta_k_test(1.0, 0.01, -0.1, 0.001, k=10.0, factor=2.0, t=2.0) is True
    assert measured.theta_k_test(1.0, 0.01, -0.1, 0.001, k=100.0, factor=2.0, t=2.0) is False


def test_directions_use_the_books_t_rule():
    t3 = verdicts.t_critical(3)  # 2.92 for three seeds: a mean 2.5 standard errors from zero is not resolved
    assert measured.t_multiplier(3, 2) == pytest.approx(t3)
    assert measured.t_multiplier(1, 4) == pytest.approx(verdicts.t_critical(4))  # one seed: the slope's own df
    assert measured.direction(2.5, 1.0, t3) == "no resolved change" == measured.direction(-2.5, 1.0, t3)
    assert measured.direction(3.0, 1.0, t3) == "rises" and measured.direction(-3.0, 1.0, t3) == "falls"
    assert measured.direction(3.0, math.nan, t3) == "no resolved change"
    ratio_table = measured.ratios(measured.derivatives(synthetic_rates(jitter), 0.1), 10.0)
    assert np.allclose(ratio_table.t, t3) and (ratio_table.num_seeds == len(SEEDS)).all()


def test_rate_change_ticks_are_zero_and_the_l_targets():
    fig = measured.plot_rate_changes({"rates": synthetic_rates(jitter)})
    labels = [label.get_text() for label in fig.axes[0].get_xticklabels()]
    assert labels == ["0", *(f"{v:g}" for v in LS)]


def test_hooke_balance_is_one_for_the_theory_at_small_l():
    table = measured.hooke(synthetic_rates(), pretraining_size=3000)
    small = table[table.l == min(LS)]
    assert np.allclose(small.balance, 1.0, atol=0.2)
    assert {"kl_force_a", "kl_force_p", "kl_balance"} <= set(table.columns)


# ---------------------------------------------------------------------------------------------------------
# Config.
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"family": "no-such-family"}, "unknown family"),
        ({"family": "smollm2-135m"}, "unknown data"),
        ({"size": "xxl"}, "unknown size"),
        ({"protocol": "both"}, "unknown protocol"),
        ({"normalization": "log"}, "unknown normalization"),
        ({"alignment_sizes": (100,)}, "at least 2"),
        ({"alignment_sizes": (100, 100)}, "repeats"),
        ({"alignment_sizes": (100, -3)}, "positive"),
        ({"l_values": (0.0, 0.1)}, "positive"),
        ({"l_values": (0.5, 1.0)}, "fit_l_max"),
        ({"l_values": (0.001, 0.1)}, "less than one example"),
        ({"seeds": ()}, "at least 1"),
        ({"seeds": (0.5,)}, "wrong type"),
        ({"part_size": 0}, "part_size"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"tolerance_factor": 0.5}, "tolerance_factor"),
        ({"device": "gpu"}, "device"),
    ],
)
def test_bad_config_is_a_one_line_user_error(overrides, message):
    with pytest.raises(config.UserError, match=message) as error:
        measured.Config(**overrides)
    assert "\n" not in str(error.value)


def test_presets_span_k_tenfold_and_accept_papermill_lists(monkeypatch):
    for preset in measured.PRESETS.values():
        assert max(preset.k_values) / min(preset.k_values) >= 3
    default = measured.PRESETS["default"]
    assert max(default.k_values) / min(default.k_values) >= 10 and min(default.l_values) < 0.1
    cfg = measured.Config(alignment_sizes=[360, 36], l_values=[0.1, 0.5], seeds=[1])
    assert cfg.alignment_sizes == (360, 36) and cfg.k_values == (10.0, 100.0)
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    assert measured.config(seeds=None) == measured.PRESETS["smoke"]
    assert measured.config(seeds=(5,)).seeds == (5,)


def test_datasets_are_disjoint_and_nested():
    parts = measured.pretraining_texts(30)
    heldout = measured.heldout_texts(10)
    train = {t for texts in parts.values() for t in texts}
    assert all(len(v) == 30 for v in parts.values()) and all(len(v) == 10 for v in heldout.values())
    assert not train & {t for texts in heldout.values() for t in texts}
    assert not set(heldout["D_a"]) & set(heldout["D_2"])
    d_a = measured.draw("D_2", 20, seed=1, exclude=train)
    assert not set(d_a) & train and measured.draw("D_2", 8, seed=1, exclude=train) == d_a[:8]
    assert measured.draw("D_2", 8, seed=2, exclude=train) != d_a[:8]
    assert measured.perturbation_size(0.05, 36) == 2 and measured.perturbation_size(0.001, 36) == 1


def test_joint_runs_see_the_same_base_sequence():
    base = [f"b{i}" for i in range(50)]
    extra = [f"t{j}" for j in range(10)]
    small, large = measured.interleave(base, extra[:3], seed=4), measured.interleave(base, extra, seed=4)
    assert [t for t in small if t.startswith("b")] == base == [t for t in large if t.startswith("b")]
    assert small == [t for t in large if t not in extra[3:]]
    assert sorted(large) == sorted(base + extra) and large != base + extra
    assert measured.shuffled(base, 1) == measured.shuffled(base, 1) != measured.shuffled(base, 2)
    assert sorted(measured.shuffled(base, 1)) == sorted(base)


# ---------------------------------------------------------------------------------------------------------
# The smoke preset end to end.
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    cfg = measured.config()
    result = measured.load_or_run(cfg)
    rates = result["rates"]
    expected_rows = len(cfg.alignment_sizes) * len(cfg.seeds) * (len(cfg.l_values) + 1) * len(measured.DATASETS)
    assert len(rates) == expected_rows
    assert np.isfinite(rates.gamma_bits).all() and (rates[rates.l == 0].delta_gamma_bits == 0).all()
    assert (rates[rates.l > 0].kl_nats > 0).all()
    assert set(result["ratios"].k) == set(cfg.k_values)
    sizes = result["sizes"].set_index("dataset")
    assert sizes.loc["D_p", "tokens"] == sum(sizes.loc[p, "tokens"] for p in measured.PARTS) > 0
    (verdict,) = verdicts.from_frame(result["verdicts"])
    assert verdict.outcome in ("reproduced", "not reproduced", "not comparable")
    tests = set(result["ratios"].holds)
    if cfg.protocol not in measured.THEOREM_PROTOCOLS:
        assert verdict.outcome == "not comparable"
    elif verdict.outcome == "reproduced":
        assert tests == {"yes"}
    elif verdict.outcome == "not reproduced":
        assert "no" in tests
    else:
        assert "unresolved" in tests and "no" not in tests
    # Cached: the second call reads the same numbers.
    again = measured.load_or_run(cfg)
    pd.testing.assert_frame_equal(again["ratios"], result["ratios"])
    # The per-text aggregation of `measure` agrees with the compression module's own rate.
    model, tokenizer = measured._load_pretrained(measured._pretrain_unit(cfg))
    heldout = measured.heldout_texts(cfg.eval_size)
    mine = measured.measure(model, tokenizer, heldout, normalization="log-leaves", depth=cfg.depth)
    joint = [t for texts in heldout.values() for t in texts]
    from elasticity import compression

    theirs = compression.normalized_compression_rate(model, tokenizer, heldout["D_a"], joint, depth=cfg.depth)
    assert mine["D_a"] == pytest.approx(theirs, rel=1e-9)
    assert measured.plot_ratio_vs_k(result) is not None and measured.plot_rate_changes(result) is not None
    # The registry reads this cached result into the book's verdict table.
    table = registry.collect_verdicts()
    row = table[table.experiment == "measured"].iloc[0]
    assert row.status == registry.STATUS_COMPUTED and row.outcome == verdict.outcome
