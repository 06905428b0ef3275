"""Tests of the resistance experiment: config validation, summaries and verdicts, the smoke run end to end."""

import math

import numpy as np
import pandas as pd
import pytest

from elasticity import config, models, paper
from elasticity.experiments import resistance
from elasticity.verdicts import from_frame


def test_default_pairs_are_the_papers_columns():
    assert resistance.default_pairs(3) == ((1, 2), (2, 3), (1, 3))
    assert resistance.default_pairs(2) == ((1, 2),)
    assert len(resistance.default_pairs(7)) == paper.TABLE2_PAIRS
    assert resistance.pair_label((1, 3)) == "θ3→θ1 vs θ1→θ3"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pairs": ((1, 4),)}, "out of range"),
        ({"pairs": ((2, 1),)}, "out of range"),
        ({"pairs": ((0, 2),)}, "out of range"),
        ({"pairs": ((1, 2), (1, 2))}, "repeats"),
        ({"num_samples": 0}, "num_samples"),
        ({"steps": 0}, "steps"),
        ({"datasets": ("no-such-data",)}, "unknown dataset"),
        ({"datasets": ()}, "datasets is empty"),
        ({"family": "no-such-family"}, "unknown family"),
        ({"size": "xxl"}, "unknown size"),
        ({"num_checkpoints": 1}, "num_checkpoints"),
        ({"seeds": ()}, "seeds"),
        ({"seeds": (0, 0)}, "seeds"),
        ({"seeds": (0.5,)}, "wrong type"),
        ({"num_samples": "8"}, "wrong type"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"device": "gpu"}, "device"),
    ],
)
def test_bad_config_is_a_one_line_user_error(overrides, message):
    with pytest.raises(config.UserError, match=message) as error:
        resistance.Config(**overrides)
    assert "\n" not in str(error.value)


def test_config_accepts_papermill_lists_and_presets_validate():
    cfg = resistance.Config(pairs=[[1, 2], [1, 3]], seeds=[3, 4], datasets=["tweets"])
    assert cfg.pairs == ((1, 2), (1, 3)) and cfg.seeds == (3, 4) and cfg.datasets == ("tweets",)
    assert cfg.checkpoint_pairs == ((1, 2), (1, 3))
    assert resistance.Config(num_checkpoints=7).checkpoint_pairs == resistance.default_pairs(7)
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


def _runs(differences: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """Synthetic per-seed rows where forward - inverse of every metric is the given difference."""
    rows = []
    for (dataset, pair_name), diffs in differences.items():
        pair = {"a": (1, 2), "b": (2, 3)}[pair_name]
        for seed, diff in enumerate(diffs):
            for direction, value in (("forward", 1.0 + diff), ("inverse", 1.0)):
                row = {"dataset": dataset, "model": "m", "seed": seed, "k": pair[0], "l": pair[1],
                       "pair": resistance.pair_label(pair), "direction": direction, "steps": 4}
                row.update({metric: value for metric in resistance.METRICS})
                rows.append(row)
    return pd.DataFrame(rows)


def test_summarize_counts_a_cell_only_beyond_the_seed_spread():
    runs = _runs({
        ("d1", "a"): [0.10, 0.11, 0.09],  # clearly forward > inverse
        ("d1", "b"): [0.10, -0.10, 0.02],  # mean 0.007, sd 0.1: within the spread
        ("d2", "b"): [0.10, 0.30, 0.20],  # mean 0.2 = 2 SD = 3.5 SE: beyond t(0.95, 2) = 2.92 SE
        ("d3", "a"): [0.05, 0.20, 0.35],  # mean 0.2 = 1.33 SD = 2.31 SE: beyond one SD, not beyond 2.92 SE
        ("d2", "a"): [-0.2, -0.21, -0.19],  # clearly the reverse
    })
    cells = resistance.summarize(runs)
    assert len(cells) == 5 * len(resistance.METRICS)
    loss = cells[cells["metric"] == "final_loss_nats"].set_index(["dataset", "pair"])
    a, b = resistance.pair_label((1, 2)), resistance.pair_label((2, 3))
    assert loss.loc[("d1", a), "holds_beyond_spread"] and not loss.loc[("d1", a), "fails_beyond_spread"]
    assert not loss.loc[("d1", b), "holds_beyond_spread"] and not loss.loc[("d1", b), "fails_beyond_spread"]
    assert loss.loc[("d2", a), "fails_beyond_spread"] and not loss.loc[("d2", a), "holds_beyond_spread"]
    assert loss.loc[("d2", b), "holds_beyond_spread"]
    assert not loss.loc[("d3", a), "holds_beyond_spread"] and not loss.loc[("d3", a), "fails_beyond_spread"]
    assert math.isclose(loss.loc[("d1", a), "difference_mean"], 0.10, abs_tol=1e-12)
    assert math.isclose(loss.loc[("d1", a), "inverse_mean"], 1.0)

    verdict = {v.claim: v for v in resistance.judge(cells, num_seeds=3)}
    assert verdict["resistance"].outcome == "not reproduced"
    assert verdict["resistance"].ours.startswith("2 of 5 cells")
    assert "t(0.95, 2) = 2.92 standard errors" in verdict["resistance"].reason
    all_hold = resistance.summarize(_runs({("d1", "a"): [0.1, 0.12, 0.11]}))
    assert {v.outcome for v in resistance.judge(all_hold, num_seeds=3)} == {"reproduced"}
    one_seed = resistance.summarize(_runs({("d1", "a"): [0.1]}))
    assert {v.outcome for v in resistance.judge(one_seed, num_seeds=1)} == {"not comparable"}


def test_layouts_follow_the_papers_table():
    cells = resistance.summarize(_runs({("d1", "a"): [0.1, 0.2], ("d1", "b"): [0.1, 0.3]}))
    table = resistance.layout(cells, "final_loss_nats")
    pairs = [resistance.pair_label((1, 2)), resistance.pair_label((2, 3))]
    assert list(table.columns) == ["dataset", "model", *pairs]
    assert table.iloc[0, 2].startswith("1.000±0.000 vs 1.150±")
    ours = resistance.paper_layout()
    assert len(ours) == len(paper.RESISTANCE_DATASETS) * len(paper.RESISTANCE_MODELS)
    filled = (ours.iloc[:, 2:] != "n/a").to_numpy().sum()
    assert filled == len(paper.table1_resistance())
    first = ours.set_index(["dataset", "model"]).loc[("Alpaca", "Llama2-7B"), "θ2→θ1 vs θ1→θ2"]
    assert first == "0.159 vs 0.202"


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
    assert list(result["table1"].columns[2:]) == [resistance.pair_label(p) for p in cfg.checkpoint_pairs]
    verdicts = from_frame(result["verdicts"])
    assert {v.claim for v in verdicts} == {"resistance", "resistance_kl"}
    for v in verdicts:
        metric = "final_loss_nats" if v.claim == "resistance" else "kl_change_nats"
        sub = cells[cells["metric"] == metric]
        assert v.outcome == ("reproduced" if sub["holds_beyond_spread"].all() else "not reproduced")
        assert v.ours.startswith(f"{int(sub['holds_beyond_spread'].sum())} of {len(sub)} cells")

    again = resistance.load_or_run(cfg)  # cached: read back, same numbers
    pd.testing.assert_frame_equal(again["runs"], runs)
