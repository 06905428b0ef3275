"""Tests of resistance's judging: cells counted only beyond the seed spread, verdicts, the paper's layout."""

import math

import pandas as pd

from elasticity import paper
from elasticity.experiments import resistance_judge, resistance_units


def _runs(differences: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """Synthetic per-seed rows where forward - inverse of every metric is the given difference."""
    rows = []
    for (dataset, pair_name), diffs in differences.items():
        pair = {"a": (1, 2), "b": (2, 3)}[pair_name]
        for seed, diff in enumerate(diffs):
            for direction, value in (("forward", 1.0 + diff), ("inverse", 1.0)):
                row = {"dataset": dataset, "model": "m", "seed": seed, "k": pair[0], "l": pair[1],
                       "pair": resistance_units.pair_label(pair), "direction": direction, "steps": 4}
                row.update({metric: value for metric in resistance_judge.METRICS})
                row["kl_before_nats"] = 1.0 + 0.01 * seed  # checkpoints far apart: the precondition holds
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
    cells = resistance_judge.summarize(runs)
    assert len(cells) == 5 * len(resistance_judge.METRICS)
    loss = cells[cells["metric"] == "final_loss_nats"].set_index(["dataset", "pair"])
    a, b = resistance_units.pair_label((1, 2)), resistance_units.pair_label((2, 3))
    assert loss.loc[("d1", a), "holds_beyond_spread"] and not loss.loc[("d1", a), "fails_beyond_spread"]
    assert not loss.loc[("d1", b), "holds_beyond_spread"] and not loss.loc[("d1", b), "fails_beyond_spread"]
    assert loss.loc[("d2", a), "fails_beyond_spread"] and not loss.loc[("d2", a), "holds_beyond_spread"]
    assert loss.loc[("d2", b), "holds_beyond_spread"]
    assert not loss.loc[("d3", a), "holds_beyond_spread"] and not loss.loc[("d3", a), "fails_beyond_spread"]
    assert math.isclose(loss.loc[("d1", a), "difference_mean"], 0.10, abs_tol=1e-12)
    assert math.isclose(loss.loc[("d1", a), "inverse_mean"], 1.0)



def test_judge_pools_the_cells_into_one_paired_test_per_seed():
    runs = _runs({
        ("d1", "a"): [0.10, 0.11, 0.09],
        ("d1", "b"): [0.10, -0.10, 0.02],
        ("d2", "b"): [0.10, 0.30, 0.20],
    })
    pooled = resistance_judge.per_seed_difference(runs, "final_loss_nats")
    assert list(pooled.round(6)) == [0.1, 0.103333, 0.103333]  # per seed, the mean over the three cells
    cells = resistance_judge.summarize(runs)
    found = resistance_judge.judge(runs, cells, chapter="resistance", family="tiny")
    assert [(v.claim, v.task.split(" ")[0]) for v in found] == [
        ("resistance", "target-normalized"), ("resistance", "final"), ("resistance_kl", "KL")]
    assert {v.outcome for v in found} == {"reproduced"}  # one cell inside the spread no longer sinks the claim
    assert found[1].ours.startswith("cell by cell: 2 of 3 cells inverse < forward")
    assert all(v.seeds == 3 and v.family == "tiny" for v in found)
    reverse = _runs({("d1", "a"): [-0.2, -0.21, -0.19], ("d2", "a"): [-0.1, -0.12, -0.09]})
    found = resistance_judge.judge(reverse, resistance_judge.summarize(reverse), chapter="resistance", family="tiny")
    assert {v.outcome for v in found} == {"contradicted"}
    one_seed = _runs({("d1", "a"): [0.1]})
    found = resistance_judge.judge(one_seed, resistance_judge.summarize(one_seed), chapter="resistance",
                                   family="tiny")
    assert {v.outcome for v in found} == {"not testable here"}


def test_layouts_follow_the_papers_table():
    cells = resistance_judge.summarize(_runs({("d1", "a"): [0.1, 0.2], ("d1", "b"): [0.1, 0.3]}))
    table = resistance_judge.layout(cells, "final_loss_nats")
    pairs = [resistance_units.pair_label((1, 2)), resistance_units.pair_label((2, 3))]
    assert list(table.columns) == ["dataset", "model", *pairs]
    assert table.iloc[0, 2].startswith("1.000±0.000 vs 1.150±")
    ours = resistance_judge.paper_layout()
    assert len(ours) == len(paper.RESISTANCE_DATASETS) * len(paper.RESISTANCE_MODELS)
    filled = (ours.iloc[:, 2:] != "n/a").to_numpy().sum()
    assert filled == len(paper.table1_resistance())
    first = ours.set_index(["dataset", "model"]).loc[("Alpaca", "Llama2-7B"), "θ2→θ1 vs θ1→θ2"]
    assert first == "0.159 vs 0.202"


def test_checkpoints_too_close_to_tell_apart_make_every_row_not_testable():
    runs = _runs({("d1", "a"): [0.10, 0.11, 0.09], ("d1", "b"): [0.10, 0.12, 0.08]})
    assert resistance_judge.checkpoints_differ(runs) is None  # KL before about 1 nat/token
    close = runs.copy()
    b = close["pair"] == resistance_units.pair_label((2, 3))
    close.loc[b, "kl_before_nats"] = [0.002, 0.002, 0.003, 0.003, 0.001, 0.002]  # one pair: nearly identical
    reason = resistance_judge.checkpoints_differ(close)
    assert reason.startswith("precondition failed") and str(resistance_judge.MIN_CHECKPOINT_KL) in reason
    cells = resistance_judge.summarize(close)
    judged = resistance_judge.judge(close, cells, chapter="resistance", family="m")
    assert {v.outcome for v in judged} == {"not testable here"} and all(v.reason == reason for v in judged)
    assert judged[0].effect > 0  # the effect's numbers are kept
