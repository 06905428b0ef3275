"""Tests of scripts/results_table.py: the README's verdict table, read from cached results only."""

from conftest import load_script


def test_an_empty_cache_gives_not_computed_rows_and_no_nan(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    table = load_script("scripts/results_table.py", "results_table").markdown_table()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| claim")]
    assert rows and all(line.endswith("| not computed yet |") for line in rows)
    assert "nan" not in table and "scale `smoke`" in table
