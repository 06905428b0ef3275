"""Tests of computing the chapters' training units ahead of their pages."""

import pytest

from elasticity import compute


@pytest.mark.slow
def test_compute_units_caches_what_the_chapter_reads_with_the_chapters_numbers(tmp_path, monkeypatch):
    from elasticity import status
    from elasticity.experiments import resistance

    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path / "computed"))
    units = status.chapter_units("resistance")
    assert compute.compute_units("resistance", watch=False) == len(set(units)) > 0
    assert set(status.table(["resistance"])["state"]) == {status.PRESENT}
    assert compute.compute_units("resistance", watch=False) == 0  # nothing left: a rerun resumes, here at the end
    # The chapter's own call, into another cache, computes the same entries with the same bytes.
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path / "chapter"))
    resistance.measure(resistance.config())
    by_chapter = sorted((tmp_path / "chapter").glob("results/resistance-*/*/result.json"))
    assert len(by_chapter) == sum(u.name != "resistance-sft" for u in set(units))
    for entry in by_chapter:
        computed = tmp_path / "computed" / entry.relative_to(tmp_path / "chapter")
        assert computed.read_bytes() == entry.read_bytes(), entry


def test_every_unit_says_whether_it_is_an_artifact(monkeypatch):
    """`results.Unit.ensure` builds an artifact's directory (a builder of the config and the directory it fills)
    or caches a result (a function of the config): each chapter unit's flag matches its function."""
    import inspect

    from elasticity import status

    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    units = set(status.units())
    assert any(u.artifact for u in units) and not all(u.artifact for u in units)
    for unit in units:
        assert unit.artifact == (len(inspect.signature(unit.compute).parameters) == 2), unit.name
