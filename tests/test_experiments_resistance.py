"""Tests of the resistance experiment: presets, the config function, the smoke run end to end."""


import numpy as np
import pandas as pd
import pytest

from elasticity import config, models
from elasticity.experiments import resistance, resistance_units
from elasticity.verdicts import from_frame


def test_config_accepts_papermill_lists_and_presets_validate():
    cfg = resistance_units.Config(pairs=[[1, 2], [1, 3]], seeds=[3, 4], datasets=["tweets"])
    assert cfg.pairs == ((1, 2), (1, 3)) and cfg.seeds == (3, 4) and cfg.datasets == ("tweets",)
    assert cfg.checkpoint_pairs == ((1, 2), (1, 3))
    assert resistance_units.Config(num_checkpoints=7).checkpoint_pairs == resistance_units.default_pairs(7)
    for preset in resistance.PRESETS.values():
        assert len(preset.seeds) >= 2 and len(preset.datasets) >= 1
    assert len(resistance.PRESETS["default"].seeds) >= 3
    assert len(resistance.PRESETS["default"].datasets) >= 2


def test_config_function_uses_scale_and_ignores_none(monkeypatch):
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    assert resistance.config(steps=None) == resistance.PRESETS["smoke"]
    assert resistance.config(steps=3).steps == 3
    with pytest.raises(config.UserError, match="unknown parameter"):
        resistance.config(no_such_parameter=1)


def test_another_family_starts_from_its_own_default_size():
    cfg = resistance.config(family="smollm2-135m")
    assert cfg.size is None and cfg.datasets == resistance.PRESETS[config.scale()].datasets
    assert cfg.model == "smollm2-135m"
    assert resistance.config().model.startswith("tiny-")


def test_hub_family_defaults_to_the_papers_datasets():
    hub = [name for name in models.FAMILIES if name not in ("tiny", "smollm2-135m")]
    if not hub:
        pytest.skip("no hub family registered")
    cfg = resistance.config(family=hub[0])
    assert cfg.datasets == resistance.PAPER_DATASETS
    assert resistance.config(family=hub[0], datasets=("tweets",)).datasets == ("tweets",)


@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    cfg = resistance.config()
    result = resistance.load_or_run(cfg)
    runs = result["runs"]
    expected = len(cfg.datasets) * len(cfg.seeds) * len(cfg.checkpoint_pairs) * 2
    assert len(runs) == expected
    numeric = runs[["final_loss_nats", "heldout_loss_nats", "target_floor_nats", "kl_before_nats",
                    "kl_after_nats"]].to_numpy()
    assert np.isfinite(numeric).all()
    assert (runs["final_loss_nats"] > 0).all()
    assert (runs[["kl_before_nats", "kl_after_nats"]].to_numpy() >= -1e-6).all()
    assert (runs["steps"] == cfg.steps).all()
    assert len(result["curves"]) == expected * cfg.steps
    # The training data changes the model: the KL to the target checkpoint moves in every run.
    assert (runs["kl_before_nats"] != runs["kl_after_nats"]).all()

    cells = result["cells"]
    loss = cells[cells["metric"] == "final_loss_nats"]
    assert len(loss) == len(cfg.datasets) * len(cfg.checkpoint_pairs)
    assert list(result["table1"].columns[2:]) == [resistance_units.pair_label(p) for p in cfg.checkpoint_pairs]
    verdicts = from_frame(result["verdicts"])
    assert {v.claim for v in verdicts} == {"resistance", "resistance_kl"}
    for v, metric in zip(verdicts, ("excess_loss_nats", "final_loss_nats", "kl_change_nats"), strict=True):
        sub = cells[cells["metric"] == metric]
        assert v.ours.startswith(f"cell by cell: {int(sub['holds_beyond_spread'].sum())} of {len(sub)} cells")
        assert v.effect == pytest.approx(sub["difference_mean"].mean())  # the pooled paired difference

    again = resistance.load_or_run(cfg)  # cached: read back, same numbers
    pd.testing.assert_frame_equal(again["runs"], runs)
