"""Tests of elasticity.pretrain: sizes and budgets span 10x, the schedule, resumable pre-training."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from elasticity import pretrain
from elasticity.config import UserError

# A pre-training run of a few seconds: 300 documents, a 300-token vocabulary, 16 steps of 4 x 32 tokens.
TINY_TOKENIZER = pretrain.TokenizerConfig(vocab_size=300, num_documents=300, model_max_length=64)
TINY = pretrain.PretrainConfig("s", 16, 1, 2, 32, TINY_TOKENIZER, seq_len=32, batch_size=4,
                               budgets_tokens=(1024, 2048), learning_rate=1e-2, warmup_steps=2,
                               min_lr_ratio=0.1, weight_decay=0.1, seed=0, state_every_steps=3)


class _VocabOnly:
    """Enough of a tokenizer for `llama_config`: a length and the special ids."""

    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size


def _parameters(cfg: pretrain.PretrainConfig) -> int:
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(pretrain.llama_config(cfg, _VocabOnly(cfg.tokenizer.vocab_size)))
    return sum(p.numel() for p in model.parameters())


def test_default_sizes_and_budgets_span_ten_times():
    presets = pretrain.PRESETS["default"]
    counts = [_parameters(cfg) for cfg in presets.values()]
    assert counts == sorted(counts) and counts[-1] >= 10 * counts[0]
    for cfg in presets.values():
        assert cfg.budgets_tokens[-1] >= 10 * cfg.budgets_tokens[0]
    smoke = pretrain.PRESETS["smoke"]
    assert list(smoke) == list(presets)
    assert all(s.budgets_tokens[-1] * _parameters(s) < d.budgets_tokens[-1] * _parameters(d) / 1000
               for s, d in zip(smoke.values(), presets.values(), strict=True))


def test_scale_selects_presets(monkeypatch):
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    assert pretrain.preset("m") == pretrain.PRESETS["smoke"]["m"]
    with pytest.raises(UserError, match="size of family 'tiny'.*accepted: s, m, l"):
        pretrain.preset("xl")


def test_config_validation():
    for bad in (dict(budgets_tokens=(1000,)), dict(budgets_tokens=(2048, 1024)), dict(num_heads=3),
                dict(seq_len=128), dict(learning_rate=0.0), dict(budgets_tokens=())):
        with pytest.raises(UserError, match="PretrainConfig"):
            dataclasses.replace(TINY, **bad)
    with pytest.raises(UserError, match="vocab_size"):
        pretrain.TokenizerConfig(vocab_size=100, num_documents=None, model_max_length=64)


def test_learning_rate_schedule():
    cfg = dataclasses.replace(TINY, warmup_steps=4)
    rates = [pretrain.learning_rate(cfg, s) for s in range(cfg.total_steps)]
    assert rates[:4] == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2])
    assert all(a >= b for a, b in zip(rates[3:], rates[4:], strict=False))
    assert rates[-1] > cfg.min_lr_ratio * cfg.learning_rate
    assert pretrain.learning_rate(cfg, cfg.total_steps) == pytest.approx(cfg.min_lr_ratio * cfg.learning_rate)


def _weights(directory):
    return load_file(directory / pretrain.budget_dirname(2048) / "model.safetensors")


def test_pretrain_writes_budgets_and_resumes_exactly(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path / "whole"))
    whole = pretrain.pretrain("s", cfg=TINY, progress=False)
    record = json.loads((whole / "pretrain.json").read_text())
    assert record["num_parameters"] > 0 and len(record["losses"]) == TINY.total_steps == 16
    assert record["losses"][-1] < record["losses"][0]
    for budget in TINY.budgets_tokens:
        assert (whole / pretrain.budget_dirname(budget) / "tokenizer.json").is_file()
    first = load_file(whole / pretrain.budget_dirname(1024) / "model.safetensors")
    assert any(not torch.equal(first[k], v) for k, v in _weights(whole).items())

    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path / "resumed"))

    class Stop(Exception):
        pass

    def stop(step, loss):
        if step == 10:
            raise Stop

    with pytest.raises(Stop):
        pretrain.pretrain("s", cfg=TINY, progress=False, on_step=stop)
    state = torch.load(pretrain._partial_dir(TINY) / "state.pt", weights_only=False)
    assert state["step"] == 9  # the last state saved (every 3 steps) before the interruption
    resumed = pretrain.pretrain("s", cfg=TINY, progress=False)
    assert json.loads((resumed / "pretrain.json").read_text())["resumed_at_step"] == 9
    a, b = _weights(whole), _weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not pretrain._partial_dir(TINY).exists()
    # cached: a second call returns the same directory without training
    assert pretrain.pretrain("s", cfg=TINY, progress=False, on_step=stop) == resumed
