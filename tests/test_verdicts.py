"""Tests of elasticity.verdicts."""

import pytest

from elasticity import config, verdicts


def test_decide():
    assert verdicts.decide(True) == "reproduced"
    assert verdicts.decide(False) == "not reproduced"
    assert verdicts.decide(None) == "not comparable"
    assert verdicts.decide(True, comparable=False) == "not comparable"


def test_round_trip_and_source():
    verdict = verdicts.Verdict("resistance", "resistance", "5 of 6 cells", "27 of 27 cells", "not reproduced", "r")
    frame = verdicts.to_frame([verdict])
    assert frame.loc[0, "source"].startswith("Table 1")
    assert verdicts.from_frame(frame) == [verdict]


def test_refuses_unknown_claim_and_outcome():
    with pytest.raises(config.UserError, match="unknown claim"):
        verdicts.Verdict("nope", "c", "o", "p", "reproduced", "r")
    with pytest.raises(config.UserError, match="outcome"):
        verdicts.Verdict("resistance", "c", "o", "p", "maybe", "r")


def test_t_critical_is_the_one_sided_student_t_quantile():
    assert verdicts.t_critical(3) == pytest.approx(2.919986, abs=1e-5)  # 2 degrees of freedom
    assert verdicts.t_critical(5) == pytest.approx(2.131847, abs=1e-5)
    assert verdicts.t_critical(10_000) == pytest.approx(1.6449, abs=1e-3)  # towards the normal's 1.645
    assert verdicts.t_critical(1) != verdicts.t_critical(1)  # NaN: one value has no standard error


def test_above_zero():
    assert verdicts.above_zero(1.0, 0.3, 3) is True  # 1.0 > 2.92 x 0.3
    assert verdicts.above_zero(1.0, 0.4, 3) is False  # 1.0 < 2.92 x 0.4, though > 2 x 0.4
    assert verdicts.above_zero(1.0, 0.4, 30) is True
    assert verdicts.above_zero(-1.0, 0.1, 3) is False
    assert verdicts.above_zero(1.0, float("nan"), 3) is None and verdicts.above_zero(1.0, 0.1, 1) is None


def test_t_text_names_the_threshold():
    assert verdicts.t_text(3) == "t(0.95, 2) = 2.92 standard errors"
    assert verdicts.t_text(1) == "t standard errors"


def test_within_noise():
    assert verdicts.within_noise(0.5, 0.3, 3) is True  # 0.5 <= 2.92 x 0.3
    assert verdicts.within_noise(-0.5, 0.3, 3) is True
    assert verdicts.within_noise(1.0, 0.3, 3) is False
    assert verdicts.within_noise(-1.0, 0.3, 3) is False
    assert verdicts.within_noise(0.0, float("nan"), 3) is None and verdicts.within_noise(0.0, 0.1, 1) is None


def test_pm_text_says_what_plus_minus_means():
    assert verdicts.pm_text(3) == "± is 1 SE over 3 seeds"
