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


def test_t_text_names_the_threshold():
    assert verdicts.t_text(3) == "t(0.95, 2) = 2.92 standard errors"
    assert verdicts.t_text(1) == "t standard errors"


def test_pm_text_says_what_plus_minus_means():
    assert verdicts.pm_text(3) == "± is 1 SE over 3 seeds"
