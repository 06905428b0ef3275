"""Tests of elasticity.stats on synthetic data whose answer is known."""

import ast
import math
from pathlib import Path

import numpy as np
import pytest

import elasticity
from elasticity import stats


def test_one_nan_policy_drops_what_is_not_finite():
    assert stats.mean_se([1.0, np.nan, 3.0, np.inf]) == pytest.approx((2.0, 1.0))
    assert stats.sd([1.0]) != stats.sd([1.0])  # NaN: one value has no spread
    assert all(math.isnan(v) for v in stats.mean_se([np.nan]))
    assert stats.above_zero(1.0, math.nan, 3) is None


def test_t_critical_is_the_one_sided_student_t_quantile():
    assert stats.t_critical(3) == pytest.approx(2.919986, abs=1e-5)  # 2 degrees of freedom
    assert stats.t_critical(5) == pytest.approx(2.131847, abs=1e-5)
    assert stats.t_critical(10_000) == pytest.approx(1.6449, abs=1e-3)  # towards the normal's 1.645
    assert stats.t_critical(1) != stats.t_critical(1)  # NaN: one value has no standard error


def test_above_zero():
    assert stats.above_zero(1.0, 0.3, 3) is True  # 1.0 > 2.92 x 0.3
    assert stats.above_zero(1.0, 0.4, 3) is False  # 1.0 < 2.92 x 0.4, though > 2 x 0.4
    assert stats.above_zero(1.0, 0.4, 30) is True
    assert stats.above_zero(-1.0, 0.1, 3) is False
    assert stats.above_zero(1.0, float("nan"), 3) is None and stats.above_zero(1.0, 0.1, 1) is None


def test_resolved_sign_is_the_sign_test_with_its_threshold_given():
    assert stats.resolved_sign(3.0, 1.0, 2.92) == 1 and stats.resolved_sign(-3.0, 1.0, 2.92) == -1
    assert stats.resolved_sign(2.9, 1.0, 2.92) == 0 and stats.resolved_sign(3.0, math.nan, 2.92) == 0
    for mean in (-3.0, -1.0, 0.0, 2.9, 3.0):  # above_zero is the same test at t_critical(n)
        assert stats.above_zero(mean, 1.0, 3) == (stats.resolved_sign(mean, 1.0, stats.t_critical(3)) > 0)


def test_log_slope_is_the_change_per_tenfold():
    assert stats.log_slope([10, 100, 1000], [1.0, 3.0, 5.0]) == pytest.approx(2.0)
    assert math.isnan(stats.log_slope([50, 50], [1.0, 2.0]))  # one distinct x: no slope


def test_slope_through_origin_recovers_a_line():
    x = np.array([0.1, 0.2, 0.5])
    b, se = stats.slope_through_origin(x, 2 * x)
    assert b == pytest.approx(2.0) and se == pytest.approx(0.0, abs=1e-12)


def test_an_effect_well_inside_is_reproduced_and_well_outside_contradicted():
    rng = np.random.default_rng(0)
    up = stats.effect(1.0 + rng.normal(0, 0.1, 5))
    assert up.outcome == stats.REPRODUCED and 0 < up.low < up.mean < up.high and up.n == 5
    assert up.detectable < 0.5  # a 0.1 spread over 5 seeds detects far less than the effect
    down = stats.effect(-1.0 + rng.normal(0, 0.1, 5))
    assert down.outcome == stats.CONTRADICTED and down.high < 0
    flat = stats.effect(rng.normal(0, 1.0, 3))
    assert flat.outcome == stats.INCONCLUSIVE and flat.low < 0 < flat.high
    assert f"detects {flat.detectable:.3g} with 80% power" in flat.reason


def test_the_interval_is_the_student_t_one():
    values = np.array([1.0, 2.0, 3.0])
    e = stats.effect(values)
    half = 4.302653 * 1.0 / math.sqrt(3)  # t(0.975, 2) x sd / sqrt(n)
    assert (e.low, e.high) == pytest.approx((2.0 - half, 2.0 + half), rel=1e-6)
    assert e.text() == f"2 (95% CI {2 - half:.3g} to {2 + half:.3g}; 3 seeds; detectable {e.detectable:.3g})"


def test_the_detectable_effect_is_detected_four_times_in_five():
    """At a true effect equal to `detectable_effect`, the two-sided test rejects zero with 80% probability."""
    rng = np.random.default_rng(1)
    n, spread = 3, 1.0
    true = stats.detectable_effect(spread, n)
    assert 5.0 < true / (spread / math.sqrt(n)) < 7.0  # about 6 standard errors with 2 degrees of freedom
    draws = rng.normal(true, spread, (4000, n))
    decided = [stats.effect(d).outcome in (stats.REPRODUCED, stats.CONTRADICTED) for d in draws]
    assert np.mean(decided) == pytest.approx(0.8, abs=0.025)
    # more seeds detect smaller effects
    assert stats.detectable_effect(spread, 10) < stats.detectable_effect(spread, 5) < true


def test_no_interval_is_not_testable():
    same = stats.effect([2.0, 2.0, 2.0])  # a count read off a grid, identical in every seed
    assert same.outcome == stats.NOT_TESTABLE and "no spread" in same.reason and math.isnan(same.low)
    one = stats.effect([0.4, np.nan])
    assert one.outcome == stats.NOT_TESTABLE and one.n == 1 and one.text() == "0.4 (1 seed; no interval)"
    assert stats.effect([]).outcome == stats.NOT_TESTABLE
    assert stats.effect([np.nan, np.nan]).text() == "no finite value (0 seeds)"  # never "nan" in a table


def test_equivalence_needs_a_narrow_interval_not_a_wide_one():
    rng = np.random.default_rng(2)
    near = stats.equivalence(rng.normal(0.0, 0.01, 5), margin=0.1)
    assert near.outcome == stats.REPRODUCED
    wide = stats.equivalence(rng.normal(0.0, 1.0, 3), margin=0.1)  # a non-rejection test would pass this
    assert wide.outcome == stats.INCONCLUSIVE
    far = stats.equivalence(rng.normal(1.0, 0.01, 5), margin=0.1)
    assert far.outcome == stats.CONTRADICTED
    with pytest.raises(ValueError, match="margin"):
        stats.equivalence([0.0, 0.1], margin=0.0)


def test_a_fraction_is_tested_without_dividing_by_a_near_zero_denominator():
    rng = np.random.default_rng(3)
    large = rng.normal(0.0, 1e-9, 4)  # the effect that should have appeared did not: a ratio would explode
    small = rng.normal(0.5, 0.01, 4)
    verdict = stats.fraction_below(small, large, 0.1)
    assert verdict.outcome == stats.CONTRADICTED and all(map(math.isfinite, (verdict.mean, verdict.low)))
    holds = stats.fraction_below(rng.normal(0.01, 0.001, 4), rng.normal(1.0, 0.01, 4), 0.1)
    assert holds.outcome == stats.REPRODUCED
    with pytest.raises(ValueError, match="one value per seed"):
        stats.fraction_below([1.0], [1.0, 2.0], 0.1)


def test_no_module_outside_stats_computes_a_t_threshold_or_a_standard_error():
    """A square root (of n, of a variance), a t quantile or pandas' sem outside this module would be a second
    implementation of the book's statistics, with its own NaN rule."""
    found = []
    for path in sorted(Path(elasticity.__file__).parent.rglob("*.py")):
        if path.name == "stats.py" and path.parent.name == "elasticity":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                if name in ("sqrt", "ppf", "sem"):
                    found.append(f"{path.name}:{node.lineno} {name}")
    assert found == []


def test_loglog_slope_recovers_a_power_law():
    k = np.array([10.0, 30.0, 100.0])
    b, se = stats.loglog_slope(k, 5 * k**-2)
    assert b == pytest.approx(-2.0) and se == pytest.approx(0.0, abs=1e-9)
    assert math.isnan(stats.loglog_slope([1.0, 2.0], [1.0, 4.0])[1])  # two points: no standard error


def test_exact_decides_by_sign_and_says_it_is_exact():
    inside, outside = stats.exact(0.02, "tolerance - worst gap"), stats.exact(-0.3, "tolerance - worst gap")
    assert inside.outcome == stats.REPRODUCED and inside.n == 0 and inside.text() == "0.02 (exact; no seeds)"
    assert outside.outcome == stats.CONTRADICTED and "not above zero" in outside.reason
    assert stats.exact(float("nan"), "gap").outcome == stats.NOT_TESTABLE
