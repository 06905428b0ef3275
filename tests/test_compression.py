"""Tests of elasticity.compression: code lengths, bits per byte, compression rates of a tiny random model."""

import math

import numpy as np
import pytest
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from elasticity import compression
from elasticity.config import UserError

LINES = [
    "the quick brown fox jumps over the lazy dog",
    "language models resist alignment, evidence from data compression",
    "compression is prediction and prediction is compression",
    "a fresh and funny film; a rotten, tedious one",
]


def bpe_tokenizer(vocab_size: int = 300) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with BOS/EOS, trained on a few lines (no files, no download)."""
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<bos>", "<eos>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(LINES * 5, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>")


def tiny_model(vocab_size: int, *, seed: int = 0, context: int = 128) -> LlamaForCausalLM:
    """A tiny randomly initialised Llama built from a config."""
    transformers.set_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=context)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def bpe():
    tok = bpe_tokenizer()
    return tiny_model(len(tok)), tok


@pytest.fixture(scope="module")
def byt5():
    tok = transformers.ByT5Tokenizer()
    return tiny_model(len(tok), seed=1), tok


@torch.no_grad()
def manual_bits(model, tokenizer, text: str) -> float:
    """-log2 p(text) from one unbatched forward pass, written independently of the module."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        return 0.0
    vocab = model.get_output_embeddings().weight.shape[0]
    if tokenizer.bos_token_id is not None:
        row, first = [tokenizer.bos_token_id, *ids], 0.0
    else:
        row, first = ids, math.log2(vocab)
    logp = torch.log_softmax(model(torch.tensor([row])).logits[0].double(), -1)
    return first - sum(float(logp[i, row[i + 1]]) for i in range(len(row) - 1)) / math.log(2)


def test_code_lengths_match_an_independent_computation(bpe):
    model, tok = bpe
    texts = [*LINES, "", "x", "ünïcødé ✓ text"]
    got = compression.code_lengths_bits(model, tok, texts, batch_size=3)
    want = [manual_bits(model, tok, t) for t in texts]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert got[4] == 0.0 and got.shape == (len(texts),)


def test_first_token_is_coded_uniformly_without_bos(byt5):
    model, tok = byt5
    assert tok.bos_token_id is None
    got = compression.code_lengths_bits(model, tok, ["a", "ab", "hello world"])
    assert got[0] == pytest.approx(math.log2(len(tok)))
    np.testing.assert_allclose(got, [manual_bits(model, tok, t) for t in ["a", "ab", "hello world"]],
                               rtol=1e-5)


def test_batch_size_does_not_change_code_lengths(bpe):
    model, tok = bpe
    a = compression.code_lengths_bits(model, tok, LINES, batch_size=1)
    model.train()  # measured in eval mode; the caller's mode comes back
    b = compression.code_lengths_bits(model, tok, LINES, batch_size=16)
    assert model.training
    model.eval()
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_long_texts_are_coded_in_independent_windows(bpe):
    model, tok = bpe
    text = " ".join(LINES * 3)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > 40
    got = compression.code_lengths_bits(model, tok, [text], window_tokens=16)[0]
    pieces = [tok.decode(ids[i : i + 16]) for i in range(0, len(ids), 16)]
    # each window coded alone after BOS (decoding single windows re-tokenizes identically for this BPE)
    assert [tok(p, add_special_tokens=False)["input_ids"] for p in pieces] == compression.windows(ids, 16)
    assert got == pytest.approx(sum(manual_bits(model, tok, p) for p in pieces), rel=1e-5)


def test_bits_per_byte_and_eos(bpe):
    model, tok = bpe
    bits = compression.code_lengths_bits(model, tok, LINES)
    assert compression.bits_per_byte(model, tok, LINES) == pytest.approx(
        bits.sum() / sum(len(t.encode()) for t in LINES))
    with_eos = compression.code_lengths_bits(model, tok, LINES, count_eos=True)
    assert np.all(with_eos > bits)
    with pytest.raises(UserError):
        compression.bits_per_byte(model, tok, [""])
    with pytest.raises(UserError):
        compression.code_lengths_bits(model, tok, "one string")


def test_compression_rates(bpe):
    model, tok = bpe
    bits, n = compression.code_lengths_and_tokens(model, tok, LINES)
    assert compression.compression_rate(model, tok, LINES) == pytest.approx(np.mean(bits / n))
    pooled = compression.compression_rate(model, tok, LINES, average="pooled")
    assert pooled == pytest.approx(bits.sum() / n.sum())
    joint = LINES + ["another text entirely", "and one more"]
    gamma = compression.compression_rate(model, tok, LINES[:2])
    none = compression.normalized_compression_rate(model, tok, LINES[:2], joint, normalization="none")
    assert none == gamma
    diff = compression.normalized_compression_rate(model, tok, LINES[:2], joint, normalization="difference")
    assert diff == pytest.approx(gamma - compression.compression_rate(model, tok, joint))
    m = compression.leaf_count(tok, joint, 2)
    assert 1 < m <= len(joint)
    got = compression.normalized_compression_rate(model, tok, LINES[:2], joint, depth=2)
    assert got == pytest.approx(gamma - math.log2(m) / 2)
    with pytest.raises(UserError, match="normalization"):
        compression.normalized_compression_rate(model, tok, LINES, joint, normalization="ratio")


def test_a_trained_direction_lowers_code_length(bpe):
    """Sanity: a few gradient steps on a text lower its code length (the measure tracks the loss)."""
    _, tok = bpe
    model = tiny_model(len(tok), seed=3).train()
    text = LINES[0]
    before = compression.code_lengths_bits(model, tok, [text])[0]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    ids = torch.tensor([[tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]])
    for _ in range(20):
        loss = model(ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert compression.code_lengths_bits(model, tok, [text])[0] < 0.5 * before
