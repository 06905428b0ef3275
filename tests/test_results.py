"""Tests of elasticity.results: keys, code fingerprints, caching, atomic artifacts, provenance."""

import json
import subprocess
import sys
from dataclasses import dataclass

import pandas as pd
import pytest

from elasticity import config, results

CALLS = []


@dataclass(frozen=True)
class Toy:
    n: int = 3
    seed: int = 0

    def __post_init__(self):
        config.check_types(self)


def compute(cfg: Toy) -> dict:
    CALLS.append(cfg)
    return {"table": pd.DataFrame({"x": list(range(cfg.n)), "y": [0.5 * i for i in range(cfg.n)]}),
            "total": float(cfg.n), "nested": {"names": ["a", "b"]}}


def test_config_key_is_stable_and_sensitive():
    assert results.config_key(Toy()) == results.config_key(Toy(n=3, seed=0))
    assert results.config_key(Toy(n=4)) != results.config_key(Toy())


def test_code_fingerprint_follows_elasticity_imports():
    from elasticity import verdicts

    # verdicts imports paper and config: the fingerprint must change if either changes; here we only check
    # that it is deterministic and differs between modules with different sources.
    assert results.code_fingerprint(verdicts.judged) == results.code_fingerprint(verdicts.to_frame)
    assert results.code_fingerprint(verdicts.judged) != results.code_fingerprint(results.load_or_run)


def test_code_fingerprint_sees_an_edited_module(tmp_path, monkeypatch):
    """The parsed imports are cached on the source text: an edit (a new import, or any change) still changes
    the fingerprint, and undoing it gives the first fingerprint back."""
    import importlib

    probe = tmp_path / "fingerprint_probe.py"
    probe.write_text("from elasticity import paper\n\ndef f():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("fingerprint_probe")
    first = results.code_fingerprint(module.f)
    probe.write_text("from elasticity import paper, verdicts\n\ndef f():\n    return 1\n")
    with_import = results.code_fingerprint(module.f)
    probe.write_text("from elasticity import paper\n\ndef f():\n    return 2\n")
    edited = results.code_fingerprint(module.f)
    probe.write_text("from elasticity import paper\n\ndef f():\n    return 1\n")
    assert len({first, with_import, edited}) == 3 and results.code_fingerprint(module.f) == first
    monkeypatch.delitem(sys.modules, "fingerprint_probe")


def test_load_or_run_computes_once_and_round_trips(tmp_path):
    CALLS.clear()
    first = results.load_or_run("toy", Toy(), compute, cache=tmp_path)
    second = results.load_or_run("toy", Toy(), compute, cache=tmp_path)
    assert len(CALLS) == 1
    pd.testing.assert_frame_equal(first["table"], second["table"])
    assert second["total"] == 3.0 and second["nested"] == {"names": ["a", "b"]}
    assert second["table"]["y"].dtype == float
    results.load_or_run("toy", Toy(n=4), compute, cache=tmp_path)
    assert len(CALLS) == 2


def test_provenance_is_written(tmp_path):
    results.load_or_run("toy", Toy(seed=7), compute, cache=tmp_path)
    record = results.load_provenance("toy", Toy(seed=7), compute, cache=tmp_path)
    assert record["config"] == {"n": 3, "seed": 7}
    assert record["seed"] == 7
    assert {"torch", "transformers", "python", "elasticity"} <= set(record["versions"])
    assert record["wall_time_s"] >= 0


def test_load_returns_none_when_missing(tmp_path):
    assert results.load("toy", Toy(n=9), compute, cache=tmp_path) is None
    assert not results.is_cached("toy", Toy(n=9), compute, cache=tmp_path)
    results.load_or_run("toy", Toy(n=9), compute, cache=tmp_path)
    assert results.is_cached("toy", Toy(n=9), compute, cache=tmp_path)
    assert not results.is_cached("toy", Toy(n=8), compute, cache=tmp_path)


def test_failed_compute_leaves_nothing(tmp_path):
    def broken(cfg):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        results.load_or_run("toy", Toy(), broken, cache=tmp_path)
    assert not list((tmp_path / "results").rglob("result.json"))


def build_files(cfg: Toy, directory):
    (directory / "weights.json").write_text(json.dumps(list(range(cfg.n))))


def test_artifact_dir_builds_once_and_atomically(tmp_path):
    first = results.artifact_dir("toy-artifact", Toy(), build_files, cache=tmp_path)
    stamp = (first / "weights.json").stat().st_mtime_ns
    second = results.artifact_dir("toy-artifact", Toy(), build_files, cache=tmp_path)
    assert first == second and (second / "checksums.json").is_file()
    assert (second / "weights.json").stat().st_mtime_ns == stamp

    def interrupted(cfg, directory):
        (directory / "half.json").write_text("{")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        results.artifact_dir("toy-artifact", Toy(n=5), interrupted, cache=tmp_path)
    leftovers = sorted(p.name for p in (tmp_path / "results" / "toy-artifact").iterdir() if p != first)
    unfinished = f"{results.config_key(Toy(n=5))}-{results.code_fingerprint(interrupted)}"
    assert leftovers == sorted([f".{first.name}.lock", f".{unfinished}.lock"])  # the two hidden lock files only
    assert (first / "provenance.json").is_file()


BUILD_IN_A_PROCESS = '''
import sys, time
from pathlib import Path
from elasticity import results

def build(directory):
    with open(sys.argv[2], "a") as log:
        log.write("built\\n")
    time.sleep(1.0)
    (directory / "weights.bin").write_bytes(b"w")

print(results.build_once(Path(sys.argv[1]), build))
'''


def test_build_once_builds_once_when_two_processes_ask_at_the_same_time(tmp_path):
    target, log = tmp_path / "artifacts" / "model", tmp_path / "builds.log"
    procs = [subprocess.Popen([sys.executable, "-c", BUILD_IN_A_PROCESS, str(target), str(log)],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    printed = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert printed == [str(target)] * 2 and log.read_text() == "built\n"
    assert (target / "weights.bin").read_bytes() == b"w" and (target / "checksums.json").is_file()
    assert not (target / "provenance.json").exists()  # no config given, no provenance


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_a_damaged_result_is_named_set_aside_and_computed_again(tmp_path, capsys, damage):
    """A result.json cut to 200 bytes (a full disk, a killed copy) or with one byte changed is named in one
    line, moved to .damaged/ with nothing lost, and computed again to the same result."""
    first = results.load_or_run("toy", Toy(n=40), compute, cache=tmp_path)
    entry = results.entry_dir("toy", Toy(n=40), compute, tmp_path)
    written = (entry / "result.json").read_bytes()
    broken = written[:200] if damage == "truncated" else written.replace(b"1.5", b"2.5", 1)
    assert broken != written
    (entry / "result.json").write_bytes(broken)
    calls = len(CALLS)
    again = results.load_or_run("toy", Toy(n=40), compute, cache=tmp_path)
    assert len(CALLS) == calls + 1 and again["table"].equals(first["table"])
    assert (entry / "result.json").read_bytes() == written
    line = capsys.readouterr().err.strip()
    reason = "result.json has 200 bytes" if damage == "truncated" else "result.json does not match its checksum"
    assert "\n" not in line and str(entry) in line and reason in line
    (aside,) = (entry.parent / ".damaged").iterdir()
    assert (aside / "result.json").read_bytes() == broken and str(aside) in line
    assert results.load("toy", Toy(n=40), compute, cache=tmp_path)["total"] == 40.0  # sound again, read quietly
    assert capsys.readouterr().err == ""


def test_a_damaged_artifact_is_built_again(tmp_path, capsys):
    first = results.artifact_dir("toy-artifact", Toy(), build_files, cache=tmp_path)
    (first / "weights.json").write_text("[0, 1, 9]")  # same size, other bytes
    again = results.artifact_dir("toy-artifact", Toy(), build_files, cache=tmp_path)
    assert again == first and (again / "weights.json").read_text() == "[0, 1, 2]"
    assert "weights.json does not match its checksum" in capsys.readouterr().err


def test_an_unfinished_entry_is_not_read_and_is_replaced(tmp_path):
    """A result.json without checksums (an entry nobody finished sealing) is not a result."""
    entry = results.entry_dir("toy", Toy(n=2), compute, tmp_path)
    entry.mkdir(parents=True)
    (entry / "result.json").write_text("{}")
    assert not results.is_cached("toy", Toy(n=2), compute, cache=tmp_path)
    assert results.load_or_run("toy", Toy(n=2), compute, cache=tmp_path)["total"] == 2.0
    assert results.load("toy", Toy(n=2), compute, cache=tmp_path)["total"] == 2.0


def tiny_values(cfg: Toy) -> dict:
    return {"table": pd.DataFrame({"small": [1e-300, 3e-17, 0.1 + 0.2], "name": ["a", "b", "c"],
                                   "count": [1, 2, 3], "pair": [(1, 2), (2, 3), (1, 3)]})}


def test_frames_round_trip_exactly(tmp_path):
    results.load_or_run("exact", Toy(), tiny_values, cache=tmp_path)
    table = results.load("exact", Toy(), tiny_values, cache=tmp_path)["table"]
    assert table["small"].tolist() == [1e-300, 3e-17, 0.1 + 0.2]
    assert table["count"].dtype == "int64" and table["name"].tolist() == ["a", "b", "c"]
    assert table["pair"].tolist() == [[1, 2], [2, 3], [1, 3]]


def test_a_unit_ensures_its_result_or_its_artifact(tmp_path):
    result = results.Unit("toy", Toy(n=4), compute)
    artifact = results.Unit("toy-artifact", Toy(n=4), build_files, artifact=True)
    for unit in (result, artifact):
        assert not results.is_complete(unit.entry(tmp_path))
        unit.ensure(tmp_path)
        assert results.is_complete(unit.entry(tmp_path))
    assert results.load("toy", Toy(n=4), compute, cache=tmp_path)["total"] == 4.0
    assert (artifact.entry(tmp_path) / "weights.json").read_text() == "[0, 1, 2, 3]"
