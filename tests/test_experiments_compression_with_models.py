"""Tests of the compression-with-models chapter's computation: held-out bytes, general-purpose compressors, the
arithmetic-coding and compression-rate tables with a tiny random model."""

import numpy as np
import pytest
from test_compression import bpe_tokenizer, tiny_model

from elasticity import models
from elasticity.config import UserError
from elasticity.experiments import compression_with_models, compression_with_models_units


def test_held_out_text_and_general_compressors():
    text = compression_with_models_units.held_out_text("pretraining-corpus", 600)
    assert 0 < len(text.encode()) <= 600
    bits = compression_with_models_units.general_purpose_bits(text.encode())
    assert set(bits) == {"gzip -9", "bz2 -9", "lzma -9e"} and all(b > 0 and b % 8 == 0 for b in bits.values())
    with pytest.raises(UserError):
        compression_with_models_units.Config(num_bytes=0)


def test_chapter_tables_with_a_test_model(monkeypatch):
    tok = bpe_tokenizer()
    model = tiny_model(len(tok))
    monkeypatch.setattr(models, "load", lambda family="tiny", size=None, **kw: (model, tok))
    cfg = compression_with_models_units.Config(sizes=("a",), num_bytes=150, smollm2=False, rates_texts=5, depth=2)
    coding = compression_with_models_units.compare_compressors(cfg)
    assert list(coding.compressor) == ["tiny a", "gzip -9", "bz2 -9", "lzma -9e"]
    row = coding.iloc[0]
    assert row.round_trip and row.code_bits <= row.nll_bits * 1.001 + 64
    assert row.nll_bits == pytest.approx(row.batched_nll_bits, rel=1e-4)
    (verdict,) = compression_with_models.judge(coding, "tiny")
    assert verdict.claim == "log_loss_is_code_length" and verdict.outcome == "reproduced" and verdict.seeds == 0
    assert verdict.effect == pytest.approx(row.nll_bits * 1.001 + 64 - row.code_bits)
    broken = coding.assign(round_trip=[False, None, None, None])
    (verdict,) = compression_with_models.judge(broken, "tiny")
    assert verdict.outcome == "not testable here" and "1 of 1 decompressed files did not decode" in verdict.reason
    long = coding.assign(code_bits=coding.nll_bits * 1.01 + 64)
    assert compression_with_models.judge(long, "tiny")[0].outcome == "contradicted"
    rates = compression_with_models_units.rate_table(cfg)
    assert list(rates.data) == ["positive", "negative", "pre-training"]
    # the normalizations shift every part by the same constant
    assert np.ptp(rates["gamma"] - rates["log-leaves"]) < 1e-9
    assert np.ptp(rates["gamma"] - rates["difference"]) < 1e-9


def test_config_takes_the_scales_preset_and_ignores_none(monkeypatch):
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    assert compression_with_models.config(num_bytes=None) == compression_with_models.PRESETS["smoke"]
    assert compression_with_models.config(num_bytes=77).num_bytes == 77
