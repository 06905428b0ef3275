"""Lossless arithmetic coding with integer precision, driven by any next-token probability vector."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# ---------------------------------------------------------------------------------------------------------
# Quantisation: probabilities -> integer frequencies.
#
# A probability vector p (length V, float) becomes integer frequencies f_s = max(1, floor(p_s * 2^32)).
# The floor at 1 makes every token encodable, even one the model gives probability 0 or one that underflows
# (the cost of such a token is at most log2(total) ~ 32 bits). The frequencies need not sum to 2^32: the
# coder divides by their actual total T = sum f_s (at most about 2^32 + V).
#
# Cost of quantising, in bits per token, for token s: log2(T / f_s) - log2(1 / p_s). For p_s >> 2^-32 the
# floor changes f_s by less than one part in p_s 2^32, and the floors of the other tokens add at most
# V / 2^32 to T (1.2e-5 of the mass for V = 50,000, i.e. < 2e-5 bits per token). So the coded size is the
# model's negative log-likelihood plus about 1e-5 bits per token plus the termination bits below.
#
# Determinism. Encoder and decoder must derive bit-identical frequencies. Given the *same* float64 vector,
# they do: every step here is an elementwise IEEE operation (multiply by a power of two, floor) or an
# integer sum, which do not depend on SIMD width or summation order. The guarantee therefore reduces to the
# caller producing the same float vectors on both sides: the same model, code path, input shapes, thread
# count, device, and library versions (a batched forward pass and a token-by-token pass with a KV cache
# round differently, so `elasticity.archive` runs the same incremental pass on both sides). Across
# machines or library versions nothing is guaranteed; the archive stores a checksum of the original bytes
# so that a mismatch is detected, not silently returned.
#
# The coder. A binary arithmetic coder in the style of Witten, Neal & Cleary (1987) / Nayuki's reference
# implementation, with STATE_BITS = 64 bits of interval state held in Python integers: the interval
# [low, high] always spans more than a quarter of 2^64 > 2^62, far above any total T < 2^34, so the
# integer division range * cum / T loses less than 2^-28 of a bit per token. Bits are emitted as soon as
# the top bits of low and high agree; straddling the midpoint ("underflow") defers bits. Termination writes
# one 1-bit; the decoder reads zeros past the end of the data, so trailing zero bytes are dropped. In total
# a message costs at most ceil(sum_i log2(T_i / f_i)) + 2 bits, rounded up to whole bytes.
# ---------------------------------------------------------------------------------------------------------

FREQ_BITS = 32
STATE_BITS = 64
_FULL = 1 << STATE_BITS
_HALF = _FULL >> 1
_QUARTER = _HALF >> 1
_MASK = _FULL - 1
MAX_TOTAL = _QUARTER + 2  # the coder's invariant: every total must stay at or below this


def quantize(pmf) -> np.ndarray:
    """Integer frequencies max(1, floor(p * 2^32)) of a probability vector.

    Args:
        pmf: shape (V,) or (N, V), non-negative finite floats (converted to float64); each vector
            need not sum exactly to 1, only to something in (0, 2].

    Returns:
        int64 array of the same shape.

    Raises:
        ValueError: on negative, non-finite or empty input.
    """
    p = np.asarray(pmf, dtype=np.float64)
    if p.shape[-1] < 1:
        raise ValueError("a probability vector needs at least one entry")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("probabilities must be finite and non-negative")
    sums = p.sum(axis=-1)
    if np.any(sums <= 0) or np.any(sums > 2):
        raise ValueError("each probability vector must sum to about 1 (beyond the coder's limit otherwise)")
    freqs = np.floor(p * float(1 << FREQ_BITS)).astype(np.int64)
    np.maximum(freqs, 1, out=freqs)
    return freqs


def _check_total(total: int) -> None:
    if total > MAX_TOTAL:
        raise ValueError(f"frequency total {total} exceeds the coder's limit; do the probabilities sum to 1?")


class Encoder:
    """Streaming arithmetic encoder: `encode_symbol` once per token, then `finish` for the bytes."""

    def __init__(self):
        self.low, self.high, self.pending = 0, _MASK, 0
        self.bits: list[int] = []

    def encode_frequencies(self, cum_low: int, freq: int, total: int) -> None:
        """Narrow the interval to [cum_low, cum_low + freq) out of `total` (integers)."""
        _check_total(total)
        if freq <= 0 or cum_low < 0 or cum_low + freq > total:
            raise ValueError("symbol interval outside [0, total)")
        low, high = self.low, self.high
        span = high - low + 1
        high = low + (cum_low + freq) * span // total - 1
        low = low + cum_low * span // total
        bits = self.bits
        while True:
            if (low ^ high) & _HALF == 0:  # top bits agree: emit, with the deferred opposite bits
                bit = low >> (STATE_BITS - 1)
                bits.append(bit)
                if self.pending:
                    bits.extend([bit ^ 1] * self.pending)
                    self.pending = 0
                low = (low << 1) & _MASK
                high = ((high << 1) & _MASK) | 1
            elif low & ~high & _QUARTER:  # straddles the midpoint in the middle half: defer a bit
                self.pending += 1
                low = (low << 1) ^ _HALF
                high = ((high ^ _HALF) << 1) | _HALF | 1
            else:
                break
        self.low, self.high = low, high

    def encode_symbol(self, token: int, pmf) -> None:
        """Encode `token` with the probability vector `pmf` (shape (V,))."""
        freqs = quantize(pmf)
        if freqs.ndim != 1 or not 0 <= token < freqs.shape[0]:
            raise ValueError(f"token {token} outside a vocabulary of {freqs.shape[-1]}")
        self.encode_frequencies(int(freqs[:token].sum()), int(freqs[token]), int(freqs.sum()))

    def finish(self) -> bytes:
        """Terminate (one 1-bit), pack into bytes, drop trailing zero bytes (the decoder reads zeros)."""
        bits = self.bits + [1] if self.bits or self.low or self.high != _MASK else []
        data = np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()
        return data.rstrip(b"\0")


class Decoder:
    """Streaming arithmetic decoder, the mirror of `Encoder`."""

    def __init__(self, data: bytes):
        self.bits = np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8)).tolist()
        self.position = 0
        self.low, self.high = 0, _MASK
        self.code = 0
        for _ in range(STATE_BITS):
            self.code = (self.code << 1) | self._bit()

    def _bit(self) -> int:
        p = self.position
        self.position = p + 1
        return self.bits[p] if p < len(self.bits) else 0

    def target(self, total: int) -> int:
        """The cumulative frequency (in [0, total)) the next symbol's interval contains."""
        _check_total(total)
        span = self.high - self.low + 1
        return ((self.code - self.low + 1) * total - 1) // span

    def consume(self, cum_low: int, freq: int, total: int) -> None:
        """Narrow the interval exactly as the encoder did for the decoded symbol."""
        low, high, code = self.low, self.high, self.code
        span = high - low + 1
        high = low + (cum_low + freq) * span // total - 1
        low = low + cum_low * span // total
        while True:
            if (low ^ high) & _HALF == 0:
                low = (low << 1) & _MASK
                high = ((high << 1) & _MASK) | 1
                code = ((code << 1) & _MASK) | self._bit()
            elif low & ~high & _QUARTER:
                low = (low << 1) ^ _HALF
                high = ((high ^ _HALF) << 1) | _HALF | 1
                code = (code & _HALF) | ((code << 1) & (_MASK >> 1)) | self._bit()
            else:
                break
        self.low, self.high, self.code = low, high, code

    def decode_symbol(self, pmf) -> int:
        """Decode one token given the probability vector `pmf` the encoder used for it."""
        freqs = quantize(pmf)
        if freqs.ndim != 1:
            raise ValueError("decode_symbol takes one probability vector, shape (V,)")
        cum = np.cumsum(freqs)
        total = int(cum[-1])
        value = self.target(total)
        token = int(np.searchsorted(cum, value, side="right"))
        if token >= cum.shape[0]:  # only possible with corrupt data
            raise ValueError("corrupt data: the decoded value lies outside the distribution")
        cum_low = int(cum[token - 1]) if token else 0
        self.consume(cum_low, int(freqs[token]), total)
        return token


def encode(tokens: Sequence[int], pmfs: np.ndarray) -> bytes:
    """Arithmetic-code `tokens`, token i with the probability vector `pmfs[i]`.

    Args:
        tokens: N token ids, each in [0, V).
        pmfs: shape (N, V) (or anything numpy turns into it); row i is the distribution for tokens[i].

    Returns:
        the code, at most ceil(sum_i -log2 q_i) + 2 bits rounded up to bytes, where q_i is the quantised
        probability of tokens[i] (see the block comment).
    """
    tokens = [int(t) for t in tokens]
    if not tokens:
        return b""
    pmfs = np.asarray(pmfs)
    if pmfs.ndim != 2 or pmfs.shape[0] != len(tokens):
        raise ValueError(f"pmfs must have shape ({len(tokens)}, V); got {pmfs.shape}")
    vocab = pmfs.shape[1]
    if any(not 0 <= t < vocab for t in tokens):
        raise ValueError(f"a token lies outside a vocabulary of {vocab}")
    enc = Encoder()
    token_arr = np.asarray(tokens, dtype=np.int64)
    rows_per_chunk = max(1, (1 << 22) // max(vocab, 1))  # bound the memory of the integer matrix
    for start in range(0, len(tokens), rows_per_chunk):
        freqs = quantize(pmfs[start : start + rows_per_chunk])
        totals = freqs.sum(axis=1)
        chunk_tokens = token_arr[start : start + rows_per_chunk]
        below = np.arange(vocab)[None, :] < chunk_tokens[:, None]
        lows = np.where(below, freqs, 0).sum(axis=1)
        own = freqs[np.arange(freqs.shape[0]), chunk_tokens]
        for cum_low, freq, total in zip(lows.tolist(), own.tolist(), totals.tolist(), strict=True):
            enc.encode_frequencies(cum_low, freq, total)
    return enc.finish()


def decode(data: bytes, num_tokens: int, next_pmf: Callable[[list[int]], np.ndarray]) -> list[int]:
    """Decode `num_tokens` tokens from `data`.

    Args:
        data: bytes produced by `encode` (or `Encoder.finish`).
        num_tokens: how many tokens were encoded (the code does not store it).
        next_pmf: called as next_pmf(prefix) with the tokens decoded so far (a list the decoder keeps
            appending to: read it, do not modify or keep it); returns the probability vector, shape (V,),
            that the encoder used for the next token.

    Returns:
        the decoded tokens. Wrong data or a different `next_pmf` gives different tokens (or a ValueError),
        never an exception-free guarantee of detection: check a checksum where that matters.
    """
    if num_tokens < 0:
        raise ValueError("num_tokens must be non-negative")
    dec = Decoder(data)
    out: list[int] = []
    for _ in range(num_tokens):
        out.append(dec.decode_symbol(next_pmf(out)))
    return out


def ideal_bits(tokens: Sequence[int], pmfs: np.ndarray) -> float:
    """sum_i -log2 q_i of the tokens under the *quantised* distributions (what the coder can reach)."""
    total = 0.0
    for t, pmf in zip(tokens, pmfs, strict=True):
        freqs = quantize(pmf)
        total += float(np.log2(freqs.sum()) - np.log2(freqs[int(t)]))
    return total
