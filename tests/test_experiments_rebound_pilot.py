"""Tests of the rebound pilot: the grid of learning rates behind a pretrained family's settings."""

import pandas as pd
import pytest

from elasticity import archived
from elasticity.config import UserError
from elasticity.experiments import rebound, rebound_pilot


def test_the_pilot_is_wanted_for_families_with_settings_and_checks_its_grid(monkeypatch):
    monkeypatch.setenv("ELASTICITY_SCALE", "default")
    cfg = rebound_pilot.config()
    assert rebound_pilot.wanted(cfg) and not rebound_pilot.wanted(rebound_pilot.config(family="tiny"))
    units = cfg.units()
    assert [u.reverse for u in units[1:]] == ["sft"] * len(cfg.learning_rates) + ["dpo"] * len(cfg.dpo_learning_rates)
    assert [u.learning_rate for u in units[1:len(cfg.learning_rates) + 1]] == list(cfg.learning_rates)
    chosen = rebound.config(family=cfg.family)
    assert {u.learning_rate for u in units[len(cfg.learning_rates) + 1:]} == {chosen.learning_rate}
    assert all(u.lora and u.positive_size == cfg.positive_size and u.seed == cfg.seed for u in units[1:])
    with pytest.raises(UserError, match="at least one SFT learning rate"):
        rebound_pilot.config(learning_rates=())
    with pytest.raises(UserError, match="learning_rate"):
        rebound_pilot.config(learning_rates=(2.0,))


def test_smollm2_takes_its_family_settings_at_the_default_scale_only(monkeypatch):
    monkeypatch.setenv("ELASTICITY_SCALE", "default")
    smol = rebound.config(family="smollm2-135m")
    settings = rebound.FAMILY_SETTINGS["smollm2-135m"]
    assert all(getattr(smol, k) == v for k, v in settings.items())
    assert rebound.config(family="smollm2-135m", learning_rate=5e-4).learning_rate == 5e-4
    assert rebound.config().lora is False  # tiny: the preset's
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    assert rebound.config(family="smollm2-135m").positive_sizes == rebound.PRESETS["smoke"].positive_sizes


@pytest.mark.slow
def test_a_tiny_pilot_tabulates_each_rate_and_archives(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    cfg = rebound_pilot.config(family="tiny", learning_rates=(1e-3, 4e-3), dpo_learning_rates=(2e-3,),
                               positive_size=8)
    result = rebound_pilot.run(cfg)
    grid = result["grid"]
    assert list(grid["reverse step"]) == ["SFT", "SFT", "DPO"] and list(grid["rate"]) == [1e-3, 4e-3, 2e-3]
    assert (grid["lift"] == grid["share after positive SFT"] - grid["base share"]).all()
    assert result["verdicts"].empty and set(result["curves"]["learning_rate"]) == {1e-3, 4e-3, 2e-3}
    monkeypatch.setenv(archived.ENV, str(tmp_path / "archives"))
    archived.write(rebound_pilot, cfg, command="test")
    [found], refused = archived.rejudge(rebound_pilot)
    assert refused == [] and not found.stale
    pd.testing.assert_frame_equal(found.result["grid"], grid)


def test_a_repeated_rate_is_refused_before_any_work(monkeypatch):
    monkeypatch.setenv("ELASTICITY_SCALE", "default")
    with pytest.raises(UserError, match="learning_rates .* repeats a rate"):
        rebound_pilot.config(learning_rates=(1e-3, 1e-3))
    with pytest.raises(UserError, match="dpo_learning_rates .* repeats a rate"):
        rebound_pilot.config(dpo_learning_rates=(1e-3, 1e-3))
    with pytest.raises(UserError, match="preference_learning_rate"):
        rebound_pilot.config(dpo_learning_rates=(1e-4, 2.0))  # a later rate is checked too
