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
