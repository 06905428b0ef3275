"""Tests of the pre-training-volume experiment: config validation, the threshold test, a smoke run."""

import numpy as np
import pandas as pd
import pytest

from elasticity import models, stats
from elasticity.config import UserError
from elasticity.experiments import pretraining_volume

OUTCOMES = {"reproduced", "not reproduced", "not comparable"}


@pytest.mark.parametrize("overrides, match", [
    ({"family": "gpt-17"}, "unknown family"),
    ({"budgets": (123,)}, "at least 2"),
    ({"budgets": (123, 456)}, "token budget"),
    ({"task": "poetry"}, "unknown task"),
    ({"threshold_fraction": 1.5}, "threshold_fraction"),
    ({"max_budgets": 1}, "max_budgets"),
    ({"size": "xxl"}, "unknown size"),
    ({"batch_size": 0}, "batch_size"),
])
def test_bad_config_raises_user_error(overrides, match):
    with pytest.raises(UserError, match=match):
        pretraining_volume.Config(**overrides)


def test_default_budgets_span_ten_times_with_three_seeds():
    cfg = pretraining_volume.PRESETS["default"]
    budgets = cfg.token_budgets
    assert len(budgets) >= 3 and budgets[-1] / budgets[0] >= 10
    assert set(budgets) <= set(models.budgets("tiny"))
    assert budgets[0] == min(models.budgets("tiny")) and budgets[-1] == max(models.budgets("tiny"))
    assert pretraining_volume.config(max_budgets=2).token_budgets == (budgets[0], budgets[-1])
    assert len(cfg.seeds) >= 3


@pytest.mark.parametrize("small, large, seeds, outcome", [
    (0.01, 0.2, 3, "reproduced"),  # the smallest budget barely moves; the largest moves, beyond the noise
    (0.15, 0.2, 3, "not reproduced"),  # both move
    (0.001, 0.02, 3, "not reproduced"),  # ratio small, but the drop at the largest is within 2.92 se of zero
    (0.001, 0.02, 30, "reproduced"),  # ... which is beyond 1.70 se with 30 seeds
    (0.1, -0.05, 3, "not reproduced"),  # no drop at the largest budget: the effect never appears
    (0.01, 0.2, 1, "not comparable"),  # one seed: no standard error
])
def test_threshold_verdict(small, large, seeds, outcome):
    trend = pd.DataFrame({"budget_tokens": [1000, 100000], "initial_drop_mean": [small, large],
                          "initial_drop_se": [0.01, 0.01], "seeds": [seeds, seeds]})
    verdict = pretraining_volume.judge_threshold(trend, pretraining_volume.PRESETS["default"])
    assert verdict.outcome == outcome and verdict.claim == "pretraining_threshold"
    if seeds > 1:
        assert "± is 1 SE over" in verdict.reason
        gated = pretraining_volume.judge_threshold(trend, pretraining_volume.PRESETS["default"], "no lift")
        assert gated.outcome == "not comparable" and gated.reason == "no lift"


@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    cfg = pretraining_volume.config()
    result = pretraining_volume.run(cfg)
    curves, trend, found = result["curves"], result["trend"], result["verdicts"]
    assert list(trend["budget_tokens"]) == list(cfg.token_budgets)
    assert sorted(curves["budget_tokens"].unique()) == list(cfg.token_budgets)
    assert np.isfinite(curves[["score", "kl_to_base_nats"]].to_numpy()).all()
    assert list(found["claim"]) == ["pretraining_volume", "pretraining_threshold"]
    assert set(found["outcome"]) <= OUTCOMES
    small, large = trend["initial_drop_mean"].iloc[0], trend["initial_drop_mean"].iloc[-1]
    appears = stats.above_zero(large, trend["initial_drop_se"].iloc[-1], len(cfg.seeds))
    expected = "reproduced" if appears and small / large <= cfg.threshold_fraction else "not reproduced"
    lifted = [stats.above_zero(m, se, len(cfg.seeds))
              for m, se in zip(trend["lift_mean"], trend["lift_se"], strict=True)]
    if not all(lifted):  # nothing to rebound from at some budget
        expected = "not comparable"
    assert found["outcome"].iloc[1] == expected
