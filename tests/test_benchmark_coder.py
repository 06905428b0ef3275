"""Tests of benchmarks/coder.py: arguments, and the JSON it prints and writes (no timing is asserted)."""

import json

import pytest
import torch
from conftest import ROOT, load_script


@pytest.fixture(scope="module")
def coder():
    return load_script("benchmarks/coder.py", "bench_coder")


def test_coder_arguments(coder, capsys):
    args = coder.parse_args([])
    assert args.bytes == 100_000 and args.output == coder.LATEST and not args.no_write and args.decode
    assert coder.LATEST == ROOT / "benchmarks" / "latest" / "coder.json"
    with pytest.raises(SystemExit) as exit_info:
        coder.parse_args(["--bytes", "0"])
    assert exit_info.value.code == 2 and "error" in capsys.readouterr().err


def test_coder_toy_run_prints_and_writes_consistent_json(coder, tiny_model_dir, tmp_path, monkeypatch, capsys):
    """A tiny random model from a checkpoint directory on a few hundred bytes: sizes, flags and provenance."""
    text = "the quick brown fox jumps over the lazy dog. pack my box with five dozen liquor jugs.\n" * 4
    monkeypatch.setattr(coder, "held_out_text", lambda num_bytes: text[:num_bytes])
    output = tmp_path / "coder.json"
    record = coder.main(["--checkpoint", str(tiny_model_dir), "--bytes", "300", "--output", str(output)])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == record == json.loads(output.read_text())
    assert record["benchmark"] == "coder" and record["checkpoint"] == str(tiny_model_dir)
    assert record["size"] is None and record["bytes"] == 300 and record["tokens"] > 0
    assert record["decoded_ok"] and record["size_ok"]
    assert record["code_bits"] <= record["size_limit_bits"]
    assert record["nll_bits"] == pytest.approx(record["batched_nll_bits"], rel=1e-3)
    assert record["archive_header_and_framing_bytes"] > 0
    assert record["threads"] == torch.get_num_threads()
    assert len(record["load_average"]["start"]) == 3 and len(record["load_average"]["end"]) == 3
    assert {"platform", "cpu", "cpu_count"} <= set(record["machine"])
    assert record["date_utc"] and record["torch"] == torch.__version__
    assert len(record["coder_source"]["sha256"]) == 16
    assert isinstance(record["time_ok"], bool) and record["encode_cpu_per_wall"] > 0
