"""Tests of the model-size experiment: config validation and the smoke preset end to end."""

import dataclasses

import numpy as np
import pytest

from elasticity import models, stats
from elasticity.config import UserError
from elasticity.experiments import model_size, rebound, rebound_units


@pytest.mark.parametrize("overrides, match", [
    ({"family": "gpt-17"}, "unknown family"),
    ({"sizes": ("s", "xxl")}, "unknown size"),
    ({"sizes": ("s", "s")}, "repeats"),
    ({"task": "poetry"}, "unknown task"),
    ({"negative_sizes": (10, 20, 50), "initial_negative": 50}, "initial_negative"),
    ({"seeds": ()}, "empty"),
    ({"device": "gpu"}, "device"),
])
def test_bad_config_raises_user_error(overrides, match):
    with pytest.raises(UserError, match=match):
        model_size.Config(**overrides)


def test_default_sweeps_every_tiny_size_with_three_seeds():
    cfg = model_size.PRESETS["default"]
    assert cfg.model_sizes == models.sizes("tiny") and len(cfg.model_sizes) >= 3
    assert len(cfg.seeds) >= 3
    assert model_size.config(sizes=["s", "l"]).model_sizes == ("s", "l")


def test_units_are_shared_with_the_rebound_chapter_at_its_positive_passes():
    # the presets differ only in the positive passes (1 here, to keep the book's build time; 10 there): with
    # the rebound chapter's passes, the default size's units are its units (same cache entries)
    cfg, r = model_size.PRESETS["default"], rebound.PRESETS["default"]
    size = models.default_size("tiny")
    theirs = rebound_units.unit(r, "sentiment", r.size, None, cfg.positive_sizes[0], 0)
    ours = rebound_units.unit(cfg, "sentiment", size, None, cfg.positive_sizes[0], 0)
    assert ours != theirs and dataclasses.replace(ours, positive_epochs=r.positive_epochs) == theirs
    matched = dataclasses.replace(cfg, positive_epochs=r.positive_epochs)
    assert cfg.positive_sizes[0] in r.positive_sizes
    assert rebound_units.unit(matched, "sentiment", size, None, cfg.positive_sizes[0], 0) == theirs


def test_pretraining_table_names_what_differs_besides_parameters(monkeypatch):
    from elasticity import pretrain

    monkeypatch.setenv("ELASTICITY_SCALE", "default")
    table = model_size.pretraining_table("tiny", ("s", "l"))
    assert list(table["size"]) == ["s", "l"] and (table["parameters"].diff().dropna() > 0).all()
    for row in table.itertuples():
        run = pretrain.preset(row.size)
        assert row.peak_learning_rate == run.learning_rate and row.pretraining_tokens == run.budgets_tokens[-1]
        assert row.tokens_per_parameter == pytest.approx(run.budgets_tokens[-1] / row.parameters)
    hub = model_size.pretraining_table("qwen1.5", models.sizes("qwen1.5"))
    assert hub["parameters"].is_monotonic_increasing and hub["peak_learning_rate"].isna().all()


@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    cfg = model_size.config()
    result = model_size.run(cfg)
    curves, trend, found = result["curves"], result["trend"], result["verdicts"]
    assert list(trend["size"]) == list(cfg.model_sizes)
    assert set(curves["size"]) == set(cfg.model_sizes)
    assert len(curves) == len(cfg.model_sizes) * len(cfg.positive_sizes) * len(cfg.seeds) * (
        len(cfg.negative_sizes) + 1)
    assert np.isfinite(curves["score"]).all() and curves["kl_to_base_nats"].isna().all()  # no KL table here
    assert list(found["claim"]) == ["model_size"] and set(found["outcome"]) <= set(stats.OUTCOMES)
    # the effect is the paired change last - first of the initial slope: its mean is the trend's
    assert found["effect"].iloc[0] == pytest.approx(trend["vs_first_mean"].iloc[-1])
