"""Tests of the pre-training-volume experiment: config validation, the threshold test, a smoke run."""

import numpy as np
import pandas as pd
import pytest

from elasticity import models, stats
from elasticity.config import UserError
from elasticity.experiments import pretraining_volume


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


def _summary(small, large, spread=0.01, seeds=3):
    """Initial drops per seed at two budgets, spread around the given means (seed-paired)."""
    offsets = np.linspace(-spread, spread, seeds) if seeds > 1 else np.zeros(1)
    rows = [{"reverse": "sft", "budget_tokens": budget, "seed": seed, "positive_size": 100,
             "initial_drop": mean + offsets[seed] * (1 if budget == 1000 else -1)}
            for budget, mean in ((1000, small), (100000, large)) for seed in range(seeds)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("small, large, spread, seeds, outcome", [
    (0.01, 0.2, 0.01, 3, "reproduced"),  # the smallest budget barely moves; the largest moves, beyond the noise
    (0.15, 0.2, 0.01, 3, "contradicted"),  # both move: 0.25 x 0.2 - 0.15 < 0 beyond the noise
    (0.001, 0.02, 0.01, 3, "not testable here"),  # the drop at the largest budget: its interval holds zero
    (0.001, 0.02, 0.004, 30, "reproduced"),  # ... which it does not with 30 seeds and less spread
    (0.1, -0.05, 0.01, 3, "not testable here"),  # no drop at the largest budget: the effect never appears
    (0.01, 0.2, 0.01, 1, "not testable here"),  # one seed: no interval
])
def test_threshold_verdict(small, large, spread, seeds, outcome):
    cfg = pretraining_volume.PRESETS["default"]
    summary = _summary(small, large, spread=spread, seeds=seeds)
    budgets = cfg.token_budgets
    summary["budget_tokens"] = summary["budget_tokens"].map({1000: budgets[0], 100000: budgets[-1]})
    verdict = pretraining_volume.judge_threshold(summary, cfg)
    assert verdict.outcome == outcome and verdict.claim == "pretraining_threshold"
    assert verdict.seeds == seeds
    if seeds > 1:
        gated = pretraining_volume.judge_threshold(summary, cfg, "precondition failed: no lift")
        assert gated.outcome == "not testable here" and gated.reason == "precondition failed: no lift"


def test_threshold_has_no_ratio_to_blow_up():
    cfg = pretraining_volume.PRESETS["default"]
    summary = _summary(0.01, 1e-12, spread=1e-3)
    summary["budget_tokens"] = summary["budget_tokens"].map({1000: cfg.token_budgets[0],
                                                             100000: cfg.token_budgets[-1]})
    verdict = pretraining_volume.judge_threshold(summary, cfg)
    assert np.isfinite([verdict.effect, verdict.low, verdict.high]).all()


@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    cfg = pretraining_volume.config()
    result = pretraining_volume.run(cfg)
    curves, trend, found = result["curves"], result["trend"], result["verdicts"]
    assert list(trend["budget_tokens"]) == list(cfg.token_budgets)
    assert sorted(curves["budget_tokens"].unique()) == list(cfg.token_budgets)
    assert np.isfinite(curves["score"]).all() and curves["kl_to_base_nats"].isna().all()  # no KL table here
    assert list(found["claim"]) == ["pretraining_volume", "pretraining_threshold"]
    assert set(found["outcome"]) <= set(stats.OUTCOMES)
    assert (found["seeds"] == len(cfg.seeds)).all()
