"""The compression-protocol experiment: config, Theorem 3.4's verdict, the cached run."""

import pandas as pd
import pytest

from elasticity import tokentree, verdicts
from elasticity.config import UserError
from elasticity.experiments import compression_protocol


def _table(formula, measured):
    return pd.DataFrame({"depth": range(1, len(formula) + 1), "paper_formula_bits": formula,
                         "measured_bits": measured})


def test_config_overrides_both_alphabets_and_refuses_bad_values(monkeypatch):
    monkeypatch.setenv("ELASTICITY_SCALE", "default")
    cfg = compression_protocol.config(num_texts=12, byte_depths=(1, 2))
    assert cfg.binary.num_texts == cfg.bytes.num_texts == 12
    assert (cfg.binary.alphabet, cfg.bytes.alphabet) == ("binary", "bytes")
    assert cfg.bytes.depths == (1, 2) and cfg.binary.depths == tokentree.PRESETS["default"]["binary"].depths
    with pytest.raises(UserError, match="split"):
        compression_protocol.config(split="test")


def test_judge_reproduces_only_within_the_tolerance_at_every_depth():
    tol = tokentree.FORMULA_TOLERANCE
    close = {"binary": _table([100.0, 200.0], [100.0, 200.0 * (1 + tol / 2)]),
             "bytes": _table([50.0], [50.0 * (1 - tol / 2)])}
    (verdict,) = compression_protocol.judge(close)
    assert verdict.claim == "theorem_3_4" and verdict.outcome == "reproduced"
    assert verdict.seeds == 0 and 0 < verdict.effect == verdict.low == verdict.high < tol / 2
    one_far = {**close, "bytes": _table([50.0, 80.0], [50.0, 100.0])}  # 20% off at bytes, d = 2
    (verdict,) = compression_protocol.judge(one_far)
    assert verdict.outcome == "contradicted" and verdict.effect == pytest.approx(tol - 0.2)
    assert "worst 20.0% (bytes, d = 2) over 4 settings" in verdict.ours


def test_run_at_smoke_scale_gives_both_tables_and_the_verdict(monkeypatch, tmp_path):
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    cfg = compression_protocol.config(num_texts=8)
    result = compression_protocol.load_or_run(cfg)
    assert list(result["binary"].depth) == list(cfg.binary.depths)
    assert list(result["bytes"].depth) == list(cfg.bytes.depths)
    (verdict,) = verdicts.from_frame(result["verdicts"])
    assert verdict == compression_protocol.judge({"binary": result["binary"], "bytes": result["bytes"]})[0]
    assert compression_protocol.load_or_run(cfg)["verdicts"].equals(result["verdicts"])  # read from the cache
