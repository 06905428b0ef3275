"""Tests of archived results: a smoke-scale run -> archive -> re-judge and render round trip, and every refusal."""

import json
import subprocess

import pandas as pd
import pytest

from elasticity import archived
from elasticity.config import UserError
from elasticity.experiments import resistance, resistance_figures, resistance_judge


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """A smoke-scale resistance run of the tiny family, cached, and its archive (in a directory of its own)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ELASTICITY_CACHE", str(tmp_path_factory.mktemp("cache")))
        patch.setenv(archived.ENV, str(tmp_path_factory.mktemp("archives")))
        patch.setenv("ELASTICITY_SCALE", "smoke")
        cfg = resistance.config()
        live = resistance.run(cfg)
        path = archived.write(resistance, cfg, command="elasticity run resistance --archive")
        yield cfg, live, path, patch


@pytest.mark.slow
def test_round_trip_rejudges_to_the_live_result(smoke):
    cfg, live, path, _ = smoke
    assert path == archived.path_of("tiny", "resistance")
    read = archived.read(path, resistance)
    assert read.config == cfg and read.family == "tiny" and read.scale == "smoke"
    for name in resistance.TABLES:
        pd.testing.assert_frame_equal(read.tables[name], live[name])
    found, refused = archived.rejudge(resistance)
    assert refused == [] and len(found) == 1
    rejudged = found[0]
    assert not rejudged.stale
    pd.testing.assert_frame_equal(rejudged.result["verdicts"], live["verdicts"])
    pd.testing.assert_frame_equal(rejudged.result["cells"], live["cells"])
    # What the chapter renders from it: a figure, a table, the provenance line.
    assert resistance_figures.plot_cells(rejudged.result) is not None
    assert len(resistance_judge.layout(rejudged.result["cells"], "final_loss_nats")) == len(cfg.datasets)
    provenance = read.provenance
    assert provenance["code_key"] == archived.code_key(resistance.cached_units(cfg))
    assert len(provenance["units"]) == len(resistance.cached_units(cfg))
    assert provenance["numerics"]["cpu_capability"] and provenance["versions"]["torch"]
    assert "scale `smoke`" in rejudged.provenance_line and "stale" not in rejudged.provenance_line


@pytest.mark.slow
def test_a_changed_code_key_is_named_stale(smoke, tmp_path):
    cfg, _, path, patch = smoke
    record = json.loads(path.read_text())
    record["provenance"]["code_key"] = "0" * 16
    other = tmp_path / "tiny" / "resistance.json"
    other.parent.mkdir()
    other.write_text(json.dumps(record))
    read = archived.read(other, resistance)
    assert read.is_stale(resistance)
    assert "the measuring code has changed since (stale)" in read.provenance_line(read.is_stale(resistance))


def _refused(text: str, tmp_path) -> str:
    bad = tmp_path / "tiny" / "resistance.json"
    bad.parent.mkdir(exist_ok=True)
    bad.write_text(text)
    with pytest.raises(archived.ArchiveError) as caught:
        archived.read(bad, resistance)
    message = str(caught.value)
    assert "\n" not in message and str(bad) in message
    return message


def _doctored(path, tmp_path, change) -> str:
    record = json.loads(path.read_text())
    change(record)
    return _refused(json.dumps(record), tmp_path)


@pytest.mark.slow
def test_each_bad_archive_is_refused_in_one_line(smoke, tmp_path):
    _, _, path, _ = smoke
    text = path.read_text()
    assert "not valid JSON" in _refused(text[: len(text) // 2], tmp_path)  # truncated
    assert "not valid JSON" in _refused("{" + text, tmp_path)  # malformed
    assert "provenance lacks commit" in _doctored(path, tmp_path, lambda r: r["provenance"].pop("commit"))
    assert "lacks provenance" in _doctored(path, tmp_path, lambda r: r.pop("provenance"))
    other_chapter = _doctored(path, tmp_path, lambda r: r.update(chapter="rebound"))
    assert "not of 'resistance' in chapter 'resistance'" in other_chapter
    assert "lacks a table" in _doctored(path, tmp_path, lambda r: r["tables"].pop("runs"))
    assert "format" in _doctored(path, tmp_path, lambda r: r.update(format=99))


@pytest.mark.slow
def test_a_refused_archive_does_not_stop_the_others(smoke, tmp_path):
    _, _, path, patch = smoke
    (path.parent.parent / "other-family").mkdir(exist_ok=True)
    bad = path.parent.parent / "other-family" / "resistance.json"
    bad.write_text(path.read_text()[:100])
    try:
        found, refused = archived.rejudge(resistance)
    finally:
        bad.unlink()
    assert [r.archived.family for r in found] == ["tiny"]
    assert len(refused) == 1 and str(bad) in refused[0]


@pytest.mark.slow
def test_write_refuses_units_that_are_not_cached(smoke):
    cfg, _, path, _ = smoke
    before = path.read_text()
    with pytest.raises(UserError, match="are not cached"):
        archived.write(resistance, resistance.config(seeds=(7,)), command="test")
    assert path.read_text() == before  # nothing already archived is lost


def test_run_archive_refuses_a_chapter_without_an_archivable_experiment(capsys):
    from elasticity import cli

    assert cli.main(["run", "theory_elasticity", "--archive"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "no archivable experiment" in error and "resistance" in error


def test_the_repositorys_archives_are_readable(monkeypatch):
    """Every archive committed under results/ reads and is judged by today's code (stale or not: that the
    chapter says in words)."""
    from elasticity import paths
    from elasticity.experiments import rebound, rebound_pilot

    monkeypatch.setenv(archived.ENV, str(paths.project_root() / "results"))
    found, refused = archived.rejudge(resistance)
    assert refused == []
    for rejudged in found:
        assert rejudged.archived.provenance["commit"] and not rejudged.archived.provenance["dirty"]
        assert set(rejudged.result["verdicts"]["claim"]) == set(resistance.CLAIMS)
    for module in (rebound, rebound_pilot):
        found, refused = archived.rejudge(module)
        assert refused == [] and found


def test_an_archive_of_the_dpo_only_ablation_reads_in_todays_fields(tmp_path, monkeypatch):
    """A rebound archive written before KTO, SimPO and the reversed direction (config fields dpo_*) reads as
    what it ran: the DPO ablation alone, in the paper's order; a beta other than DPO's is refused."""
    import json

    from elasticity import paths
    from elasticity.experiments import rebound

    record = json.loads((paths.project_root() / "results" / "smollm2-135m" / "rebound.json").read_text())
    old = {k: v for k, v in record["config"].items()
           if k not in ("preference_task", "preference_positive_sizes", "preference_learning_rate", "algorithms",
                        "reversed_direction", "reversed_task", "reversed_sizes")}
    old.update(dpo_task="sentiment", dpo_positive_sizes=[50, 500], dpo_beta=0.1, dpo_learning_rate=0.001)
    monkeypatch.setenv(archived.ENV, str(tmp_path))
    path = tmp_path / "smollm2-135m" / "rebound.json"
    path.parent.mkdir()
    path.write_text(json.dumps({**record, "config": old}))
    cfg = archived.read(path, rebound).config
    assert (cfg.preference_task, cfg.preference_positive_sizes, cfg.preference_learning_rate) == (
        "sentiment", (50, 500), 0.001)
    assert cfg.algorithms == ("dpo",) and not cfg.reversed_direction
    path.write_text(json.dumps({**record, "config": {**old, "dpo_beta": 0.5}}))
    with pytest.raises(archived.ArchiveError, match="dpo_beta 0.5 is not the beta DPO runs at now"):
        archived.read(path, rebound)


def test_compute_time_counts_nested_units_once_and_no_gap():
    def unit(end: str, wall: float) -> dict:
        return {"created_utc": f"2026-12-07T06:{end}+00:00", "wall_time_s": wall}

    # 06:00:00-06:01:40 a fine-tune holding a 40 s samples unit; 06:01:40-06:02:00 the next; resumed at 06:10:00.
    records = [unit("01:00", 40.0), unit("01:40", 100.0), unit("02:00", 20.0), unit("10:30", 30.0)]
    assert archived.compute_time(records) == pytest.approx(100 + 20 + 30)


def test_notices_name_each_refused_archive_or_say_there_is_none():
    assert archived.notices([], []).startswith("No family has an archived run")
    text = archived.notices([], ["archive a.json: is not valid JSON"])
    assert text.splitlines()[0] == "*Not shown:* archive a.json: is not valid JSON" and "No family" in text


def test_an_archive_written_first_does_not_make_the_next_one_dirty(tmp_path, monkeypatch):
    from elasticity import paths

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "a.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    monkeypatch.setattr(paths, "project_root", lambda: tmp_path)
    assert not archived._dirty()
    (tmp_path / "results" / "a.json").write_text('{"written": "by the first archive of the run"}')
    assert not archived._dirty()
    (tmp_path / "code.py").write_text("x = 2\n")
    assert archived._dirty()
