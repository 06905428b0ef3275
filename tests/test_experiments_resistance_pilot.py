"""Tests of the learning-rate pilot of the resistance chapter: its grid, its table, its archive."""

import math

import pandas as pd
import pytest

from elasticity import archived, book
from elasticity.config import UserError
from elasticity.experiments import resistance, resistance_pilot


def test_the_grid_is_one_resistance_run_per_pair_of_rates():
    cfg = resistance_pilot.config(sft_learning_rates=(1e-3,), learning_rates=(3e-4, 1e-3))
    grid = cfg.grid()
    assert [(c.sft_learning_rate, c.learning_rate) for c in grid] == [(1e-3, 3e-4), (1e-3, 1e-3)]
    assert all(c.family == "smollm2-135m" and c.lora and c.pairs == ((1, 3),) and c.seeds == (0,) for c in grid)
    assert resistance_pilot.wanted(cfg) and not resistance_pilot.wanted(resistance_pilot.config(family="tiny"))
    with pytest.raises(UserError, match="at least one"):
        resistance_pilot.config(learning_rates=())
    with pytest.raises(UserError, match="family"):
        resistance_pilot.config(family="nope")


def test_a_chapter_run_archives_the_pilot_only_for_a_family_it_sets_the_rates_of():
    path = book.chapter_path("resistance")
    assert [m for m, _ in book.archivable_configs(path, {})] == [resistance]
    assert [m for m, _ in book.archivable_configs(path, {"family": "smollm2-135m"})] == [resistance, resistance_pilot]


@pytest.mark.slow
def test_smoke_pilot_tabulates_and_archives(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(archived.ENV, str(tmp_path / "archives"))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    cfg = resistance_pilot.config(family="tiny", sft_learning_rates=(3e-3,), learning_rates=(2e-4, 1e-3), num_sft=24,
                                  num_samples=8, num_eval=8, steps=2)
    result = resistance_pilot.run(cfg)
    grid = result["grid"]
    assert list(grid["fine-tuning rate"]) == [2e-4, 1e-3] and len(result["runs"]) == 4
    assert all(math.isfinite(x) for x in grid["gap closed"]) and (grid["KL between checkpoints"] > 0).all()
    assert result["verdicts"].empty
    path = archived.write(resistance_pilot, cfg, command="test")
    assert path.name == "resistance_pilot.json"
    found, refused = archived.rejudge(resistance_pilot)
    assert refused == [] and not found[0].stale
    pd.testing.assert_frame_equal(found[0].result["grid"], grid)
    assert archived.rejudge(resistance) == ([], [])  # the pilot is not the chapter's experiment
    assert "pilot on rotten-tomatoes" in resistance_pilot.describe(cfg, resistance.config())
