"""The registry of the book's experiments and the verdict table it collects from cached results."""

import math

import pytest

from elasticity import config, paper, stats, verdicts
from elasticity.experiments import measured, registry


def test_registry_lists_the_planned_experiments():
    assert set(registry.PLANNED) == {"compression_protocol", "compression_with_models", "resistance", "rebound",
                                     "model_size", "pretraining_volume", "measured"}
    assert registry.claims_of("compression_protocol") == ("theorem_3_4",)
    assert registry.EXPERIMENTS["measured"] is measured
    assert registry.chapter_of("measured") == "elasticity_measured"
    assert registry.claims_of("measured") == ("theorem_4_2",)
    with pytest.raises(config.UserError, match="unknown experiment"):
        registry.experiment("nope")


def test_uncomputed_verdicts_are_shown_as_such(tmp_path):
    table = registry.collect_verdicts(cache=tmp_path)  # an empty cache: nothing computed
    assert table.outcome.isna().all()
    assert set(table.status) <= {registry.STATUS_NOT_COMPUTED, registry.STATUS_NO_MODULE, registry.STATUS_UNTESTED}
    assert set(table.claim) == set(paper.CLAIMS)
    text = registry.verdicts_markdown(table, linkable={"elasticity_measured"})
    assert "{doc}`/notebooks/elasticity_measured`" in text
    assert "reproduced" not in text  # no outcome word where nothing was computed
    assert text.count("\n") == len(table) + 2


def test_computed_verdicts_are_read_from_the_cache(tmp_path, monkeypatch):
    from elasticity import results

    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    cfg = measured.config()
    found = [verdicts.judged("theorem_4_2", "elasticity_measured", family="tiny", task="k = 10", measure="m",
                             effect=stats.effect([-0.3, -0.2, -0.25]), ours="ours", paper="theirs")]
    results.load_or_run(measured.NAME, cfg, lambda c: {"verdicts": verdicts.to_frame(found)}, cache=tmp_path)
    # The entry is keyed by the computing function's module: write it under measured.run's key instead.
    entry = results.entry_dir(measured.NAME, cfg, measured.run, tmp_path)
    written = next(p for p in (tmp_path / "results" / measured.NAME).iterdir() if p != entry)
    written.rename(entry)
    table = registry.collect_verdicts(cache=tmp_path)
    row = table[table.experiment == "measured"].iloc[0]
    assert row.outcome == "contradicted" and row.status == registry.STATUS_COMPUTED and row.ours == "ours"
    assert row.seeds == 3 and row.high < 0 and row.task == "k = 10"
    text = registry.verdicts_markdown(table, linkable=set())
    assert "**contradicted**" in text and "| k = 10 | m | -0.25 (95% CI " in text


def _archived_row(claim, task, outcome_values, stale=False):
    v = verdicts.judged(claim, "resistance", family="smollm2-135m", task=task, measure="m",
                        effect=stats.effect(outcome_values), ours="ours", paper="theirs")
    return {"experiment": "resistance", **verdicts.to_frame([v]).iloc[0].to_dict(), "stale": stale,
            "commit": "abcdef1234"}


def test_each_archived_family_adds_a_column_matched_by_claim_and_task(tmp_path):
    import pandas as pd

    table = registry.collect_verdicts(cache=tmp_path)  # nothing live: one row per claim, no task
    archived_table = pd.DataFrame([_archived_row("resistance", "loss", [0.3, 0.2, 0.25]),
                                   _archived_row("resistance_kl", "KL", [-0.3, 0.2, 0.25], stale=True),
                                   _archived_row("kl_table", "counts", [math.nan, math.nan])],
                                  columns=registry.ARCHIVED_COLUMNS)
    columns = registry.family_columns(table, archived_table)
    assert list(columns) == ["smollm2-135m"]
    cells = dict(zip(table.claim, columns["smollm2-135m"], strict=True))
    assert cells["resistance"].startswith("loss: reproduced: 0.25 (95% CI ")
    assert cells["resistance_kl"].startswith("KL: stale (archived at abcdef1234; the measuring code has changed")
    assert cells["rebound_two_phase"] == ""
    assert cells["kl_table"] == "counts: not testable here: 0 seeds with a finite value: no interval"  # no nan
    text = registry.verdicts_markdown(table, set(), columns)
    assert "| smollm2-135m (archived) |" in text.splitlines()[0]
    import re

    bars = [len(re.findall(r"(?<!\\)\|", line)) for line in text.splitlines()]  # unescaped: cell borders
    assert set(bars) == {bars[1]}

    # A live row of the same claim and task gets the family's verdict of that part only.
    live = table.astype({"task": object})
    live.loc[live.claim == "resistance", "task"] = "loss"
    assert dict(zip(live.claim, registry.family_columns(live, archived_table)["smollm2-135m"],
                    strict=True))["resistance"].startswith("reproduced: 0.25")


def test_no_archive_adds_no_column(tmp_path):
    table = registry.collect_verdicts(cache=tmp_path)
    assert registry.family_columns(table, registry.collect_archived()) == {}
