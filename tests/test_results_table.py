"""Tests of scripts/results_table.py: the README's verdict table, read from cached results only."""

from conftest import load_script


def test_an_empty_cache_gives_not_computed_rows_and_no_nan(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    table = load_script("scripts/results_table.py", "results_table").markdown_table()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| claim")]
    assert rows and all(line.endswith("| not computed yet |") for line in rows)
    assert "nan" not in table and "scale `smoke`" in table


def test_a_computed_row_shows_effect_interval_seeds_and_detectable(tmp_path, monkeypatch):
    from elasticity import results, stats, verdicts
    from elasticity.experiments import measured

    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    cfg = measured.config()
    found = [verdicts.judged("theorem_4_2", "elasticity_measured", family="tiny", task="k = 10", measure="m",
                             effect=stats.effect([0.3, 0.2, 0.25]), ours="ours", paper="theirs"),
             verdicts.judged("theorem_4_2", "elasticity_measured", family="tiny", task="k = 30", measure="m",
                             effect=stats.effect([0.3, 0.2, 0.25]), ours="ours", paper="theirs",
                             precondition="precondition failed: the protocol")]
    entry = results.entry_dir(measured.NAME, cfg, measured.run, tmp_path)
    results.load_or_run(measured.NAME, cfg, lambda c: {"verdicts": verdicts.to_frame(found)}, cache=tmp_path)
    next(p for p in (tmp_path / "results" / measured.NAME).iterdir() if p != entry).rename(entry)
    table = load_script("scripts/results_table.py", "results_table").markdown_table()
    rows = [line for line in table.splitlines() if "theorem_4_2" in line]
    assert rows[0].startswith("| theorem_4_2 (") and "| k = 10 | m | 0.25 | 0.126 to 0.374 | 3 | " in rows[0]
    assert rows[0].endswith("| theirs | reproduced |")
    assert rows[1].endswith("| not testable here: the protocol |")
    assert "nan" not in table
