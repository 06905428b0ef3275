"""Tests of elasticity.status: units present, stale with the modules that changed, or missing; the estimates."""

import importlib
import subprocess
import sys
from dataclasses import dataclass

import pytest

from elasticity import results, status
from elasticity.config import UserError


@dataclass(frozen=True)
class Probe:
    n: int
    seed: int = 0


@pytest.fixture
def probe_module(tmp_path, monkeypatch):
    """A module outside the package computing a unit, importable and editable by the test."""
    source = tmp_path / "src" / "probe_units.py"
    source.parent.mkdir()
    source.write_text("def compute(cfg):\n    return {'twice': 2 * cfg.n}\n")
    monkeypatch.syspath_prepend(str(source.parent))
    module = importlib.import_module("probe_units")
    yield module, source
    sys.modules.pop("probe_units", None)


def test_present_stale_with_the_changed_module_and_missing(tmp_path, probe_module):
    module, source = probe_module
    cache = tmp_path / "cache"
    unit = results.Unit("probe", Probe(3), module.compute)
    assert status.unit_state(unit, cache)["state"] == status.MISSING
    unit.ensure(cache)
    assert status.unit_state(unit, cache) == {"state": status.PRESENT, "reason": "", "recorded_s": None}
    source.write_text(source.read_text() + "# an edit\n")
    stale = status.unit_state(unit, cache)
    recorded = results.load_provenance("probe", Probe(3), module.compute, cache=cache)  # None: the key changed
    assert recorded is None and stale["state"] == status.STALE
    assert stale["reason"] == "code changed: probe_units" and stale["recorded_s"] >= 0
    other = status.unit_state(results.Unit("probe", Probe(4), module.compute), cache)
    assert other == {"state": status.MISSING, "reason": "not computed with this config", "recorded_s": None}
    assert status.median_seconds("probe", cache) == stale["recorded_s"]
    assert status.median_seconds("nothing-cached", cache) is None


def test_changed_modules_names_edits_additions_and_removals():
    before = {"a": "1", "b": "2", "c": "3"}
    assert status.changed_modules(before, {"a": "1", "b": "9", "d": "4"}) == ["b", "c", "d"]
    assert status.changed_modules(None, {"a": "1"}) == []  # an entry recorded before digests were kept


def test_summary_counts_states_and_adds_the_recorded_times():
    import pandas as pd

    frame = pd.DataFrame([
        {"chapter": "c", "kind": "k", "unit": "seed=0", "state": "present", "reason": "", "seconds": 0.0},
        {"chapter": "c", "kind": "k", "unit": "seed=1", "state": "stale", "reason": "code changed: x",
         "seconds": 100.0},
        {"chapter": "c", "kind": "k", "unit": "seed=2", "state": "missing", "reason": "new", "seconds": None},
    ])
    [line, empty] = status.summary(frame, ["c", "d"])
    assert line == ("c: 3 training units: 1 present, 1 stale (code changed: x), 1 missing; about 1 min 40 s to "
                    "recompute in one process (no recorded time for 1 of them)")
    assert empty == "d: no training units"


def test_describe_flattens_nested_units():
    from elasticity.experiments import resistance, resistance_units

    [align] = [u for u in resistance.cached_units(resistance.config()) if u.name.endswith("-align")][:1]
    assert isinstance(align.config, resistance_units._Align)
    text = status.describe(align.config)
    assert text.startswith("dataset=") and "direction=forward" in text and text.endswith("seed=0")


def test_every_training_chapter_lists_its_units_and_an_unknown_chapter_is_refused():
    for chapter in ("rebound", "resistance", "elasticity_measured", "model_size", "pretraining_volume"):
        assert status.chapter_units(chapter)
    assert status.chapter_units("theory_elasticity") == []
    with pytest.raises(UserError, match="unknown chapter 'no-such-chapter'"):
        status.chapter_units("no-such-chapter")


@pytest.mark.slow
def test_a_computed_chapter_is_present_and_the_cli_reports_it(tmp_path, monkeypatch):
    from elasticity.experiments import rebound

    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    cfg = rebound.config(seeds=(0,), tasks=("sentiment",), kl_task="sentiment", positive_sizes=(8,),
                         preference_positive_sizes=(8,), algorithms=("dpo",), reversed_direction=False)
    units = rebound.cached_units(cfg)
    assert {status.unit_state(u)["state"] for u in units} == {status.MISSING}
    rebound.run(cfg)
    assert {status.unit_state(u)["state"] for u in units} == {status.PRESENT}
    out = subprocess.run([sys.executable, "-m", "elasticity.cli", "status", "rebound"], capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith(f"training units at scale smoke in {tmp_path}:\nrebound: 34 training units: ")
    bad = subprocess.run([sys.executable, "-m", "elasticity.cli", "status", "no-such-chapter"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.strip().splitlines()) == 1
