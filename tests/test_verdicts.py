"""Tests of elasticity.verdicts."""

import math

import pytest

from elasticity import config, stats, verdicts


def _verdict(values, precondition=None, claim="resistance"):
    return verdicts.judged(claim, "resistance", family="tiny", task="KL change", measure="forward - inverse",
                           effect=stats.effect(values), ours="o", paper="p", precondition=precondition)


def test_judged_records_the_effect_and_its_outcome():
    v = _verdict([0.5, 0.6, 0.7])
    assert v.outcome == stats.REPRODUCED and v.seeds == 3 and v.low > 0 and v.detectable > 0
    assert v.effect == pytest.approx(0.6)
    assert v.effect_text().startswith("0.6 (95% CI ") and "3 seeds; detectable" in v.effect_text()


def test_a_failed_precondition_is_not_testable_and_keeps_the_numbers():
    v = _verdict([0.5, 0.6, 0.7], precondition="precondition failed: the lift 0.01 is not above zero")
    assert v.outcome == stats.NOT_TESTABLE and v.reason.startswith("precondition failed")
    assert v.effect == pytest.approx(0.6) and math.isfinite(v.low)


def test_precondition_of_passes_only_a_reproduced_effect():
    assert verdicts.precondition_of("the lift", stats.effect([0.5, 0.6, 0.7])) is None
    text = verdicts.precondition_of("the lift", stats.effect([-0.1, 0.6, 0.2]))
    assert text.startswith("precondition failed: the lift 0.233 (95% CI") and text.endswith("(inconclusive)")


def test_round_trip_and_source():
    frame = verdicts.to_frame([_verdict([0.1, 0.3, 0.2]), _verdict([math.nan, 0.2])])
    assert list(frame.columns) == verdicts.COLUMNS
    assert frame.loc[0, "source"].startswith("Table 1")
    assert verdicts.from_frame(frame)[0] == _verdict([0.1, 0.3, 0.2])
    back = verdicts.from_frame(frame)[1]
    assert back.outcome == stats.NOT_TESTABLE and back.seeds == 1 and math.isnan(back.low)


def test_refuses_unknown_claim_and_outcome():
    with pytest.raises(config.UserError, match="unknown claim"):
        _verdict([0.1, 0.2], claim="nope")
    good = _verdict([0.1, 0.2])
    fields = {c: getattr(good, c) for c in verdicts.COLUMNS if c != "source"}
    with pytest.raises(config.UserError, match="outcome"):
        verdicts.Verdict(**{**fields, "outcome": "not comparable"})
