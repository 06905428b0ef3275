"""Tests of elasticity.coding: lossless round trips over random distributions, and the size bound."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elasticity import coding


def random_pmfs(rng: np.random.Generator, n: int, vocab: int, kind: str) -> np.ndarray:
    """n probability vectors of length `vocab`: dirichlet, peaked near 1, or with many near-zero entries."""
    if kind == "dirichlet":
        p = rng.dirichlet(np.full(vocab, 0.5), size=n)
    elif kind == "peaked":  # one token near 1, the rest share ~1e-12
        p = np.full((n, vocab), 1e-12 / max(vocab - 1, 1))
        p[np.arange(n), rng.integers(0, vocab, n)] = 1 - 1e-12
    else:  # "tiny": entries down to 1e-300 and exact zeros
        logits = rng.normal(0, 40, size=(n, vocab))
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p[rng.random((n, vocab)) < 0.3] = 0.0
        p[np.arange(n), logits.argmax(axis=1)] = 1.0
        p /= p.sum(axis=1, keepdims=True)
    return p


def sample_tokens(rng, pmfs: np.ndarray, mode: str) -> list[int]:
    """Tokens drawn from the pmfs, or adversarially the least likely ones (probability possibly 0)."""
    if mode == "sampled":
        cum = np.cumsum(pmfs, axis=1)
        u = rng.random(pmfs.shape[0]) * cum[:, -1]
        return [min(int(np.searchsorted(c, x, side="right")), pmfs.shape[1] - 1) for c, x in zip(cum, u,
                                                                                                  strict=True)]
    return [int(np.argmin(p)) for p in pmfs]


def round_trip(tokens, pmfs) -> bytes:
    data = coding.encode(tokens, pmfs)
    decoded = coding.decode(data, len(tokens), lambda prefix: pmfs[len(prefix)])
    assert decoded == list(tokens)
    return data


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    vocab=st.one_of(st.integers(2, 16), st.integers(17, 2000), st.sampled_from([49_152, 50_000])),
    n=st.one_of(st.just(0), st.just(1), st.integers(2, 40)),
    kind=st.sampled_from(["dirichlet", "peaked", "tiny"]),
    mode=st.sampled_from(["sampled", "least-likely"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_random_distributions(vocab, n, kind, mode, seed):
    rng = np.random.default_rng(seed)
    if vocab >= 49_152:
        n = min(n, 4)  # keep the 50k-vocabulary cases fast
    pmfs = random_pmfs(rng, n, vocab, kind)
    tokens = sample_tokens(rng, pmfs, mode) if n else []
    data = round_trip(tokens, pmfs)
    # size bound: ideal bits under the quantised distributions + 2 termination bits, in whole bytes
    assert 8 * len(data) <= math.ceil(coding.ideal_bits(tokens, pmfs)) + 2 + 7


def test_empty_and_one_token_sequences():
    assert coding.encode([], np.zeros((0, 5))) == b""
    assert coding.decode(b"", 0, lambda prefix: pytest.fail("no pmf needed")) == []
    for vocab in (1, 2, 3, 50_000):
        pmf = np.full((1, vocab), 1 / vocab)
        for token in {0, vocab - 1}:
            round_trip([token], pmf)


def test_zero_probability_tokens_are_encodable():
    pmf = np.array([[1.0, 0.0, 0.0]] * 5)
    data = round_trip([1, 2, 0, 2, 1], pmf)
    # each impossible token costs about log2(2^32 + 2) = 32 bits, the certain one ~0
    assert 4 * 32 <= 8 * len(data) <= 4 * 32 + 2 + 7


def test_size_is_close_to_the_ideal_code_length():
    rng = np.random.default_rng(0)
    pmfs = random_pmfs(rng, 2000, 300, "dirichlet")
    tokens = sample_tokens(rng, pmfs, "sampled")
    data = round_trip(tokens, pmfs)
    model_bits = -sum(math.log2(pmfs[i, t]) for i, t in enumerate(tokens))
    assert 8 * len(data) <= model_bits * 1.001 + 64


def test_streaming_matches_batch_encoding():
    rng = np.random.default_rng(1)
    pmfs = random_pmfs(rng, 50, 77, "dirichlet")
    tokens = sample_tokens(rng, pmfs, "sampled")
    enc = coding.Encoder()
    for t, p in zip(tokens, pmfs, strict=True):
        enc.encode_symbol(t, p)
    assert enc.finish() == coding.encode(tokens, pmfs)


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        coding.encode([0], np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError):
        coding.encode([0], np.array([[-0.1, 1.1]]))
    with pytest.raises(ValueError):
        coding.encode([2], np.array([[0.5, 0.5]]))
    with pytest.raises(ValueError):
        coding.encode([0, 1], np.array([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="limit"):
        coding.encode([0], np.array([[2.0**31, 1.0]]))


def test_wrong_distribution_decodes_to_something_else():
    rng = np.random.default_rng(2)
    pmfs = random_pmfs(rng, 30, 50, "dirichlet")
    tokens = sample_tokens(rng, pmfs, "sampled")
    data = coding.encode(tokens, pmfs)
    other = random_pmfs(np.random.default_rng(3), 30, 50, "dirichlet")
    assert coding.decode(data, 30, lambda prefix: other[len(prefix)]) != tokens
