"""Tests of scripts/results_table.py: the README's verdict table, read from cached results only."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("results_table", ROOT / "scripts" / "results_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_empty_cache_gives_not_computed_rows_and_no_nan(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    table = load_script().markdown_table()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| claim")]
    assert rows and all(line.endswith("| not computed yet |") for line in rows)
    assert "nan" not in table and "scale `smoke`" in table
