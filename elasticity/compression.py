"""Code lengths of text under a language model: bits per token and byte, (normalized) compression rates."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

from elasticity.config import UserError, choice
from elasticity.modes import evaluating, no_grad

# ---------------------------------------------------------------------------------------------------------
# Bit accounting (read this before quoting any number produced here).
#
# A text is turned into token ids with `tokenizer(text, add_special_tokens=False)`: no special tokens are
# inserted by the tokenizer itself, so every id belongs to the text.
#
# The ids are cut into consecutive, non-overlapping windows of at most `window_tokens` tokens (the model's
# context length, capped at DEFAULT_WINDOW_TOKENS so that memory and the cost of attention stay bounded).
# Every window is coded on its own, with a fresh context:
#
#   * If the tokenizer has a BOS token, the window is fed as [BOS, t_1, ..., t_n] and every t_i is coded with
#     the model's distribution after the tokens before it, so t_1 is coded given BOS alone. BOS is context
#     known to both sides and costs nothing.
#   * If the tokenizer has no BOS token, t_1 has no context to be predicted from: it is coded with the
#     uniform distribution over the model's output vocabulary, log2(V) bits, and t_2..t_n are coded by
#     the model as above.
#
# End of sequence is NOT coded: the length of a text (its token count) is assumed known to the decoder,
# as in the compressed file format of `elasticity.archive`, whose header stores the token count. So these
# are the code lengths of the texts' tokens given their lengths, not of "text followed by EOS". Pass
# `count_eos=True` to add the cost of the EOS token after the last token of each text (the paper's
# token tree ends every response with an end-of-sequence leaf); it is ignored when the tokenizer has no
# EOS token.
#
# A code length here is the ideal (Shannon) length -log2 p summed over tokens, a real number of bits.
# A real arithmetic coder (`elasticity.coding`) gets within a few bits of it per file; the measured gap is
# reported by `elasticity.archive` and by `benchmarks/coder.py`.
#
# Bits per byte divides total bits by the total number of UTF-8 bytes of the texts (not of the tokens,
# which can differ when a tokenizer normalises text), so it is comparable with gzip, bz2 and lzma on the
# same bytes.
# ---------------------------------------------------------------------------------------------------------

DEFAULT_WINDOW_TOKENS = 512
NORMALIZATIONS = ("log-leaves", "difference", "none")


def window_tokens_for(model, window_tokens: int | None = None) -> int:
    """The window length (tokens) used to code long texts: the model's context, capped, minus one for BOS.

    Args:
        model: a causal language model; its `config.max_position_embeddings` bounds the window.
        window_tokens: an explicit window length, or None for min(context - 1, DEFAULT_WINDOW_TOKENS).
    """
    context = getattr(model.config, "max_position_embeddings", None) or (DEFAULT_WINDOW_TOKENS + 1)
    if window_tokens is None:
        return max(1, min(int(context) - 1, DEFAULT_WINDOW_TOKENS))
    if not isinstance(window_tokens, int) or window_tokens < 1 or window_tokens > int(context) - 1:
        raise UserError(f"window_tokens = {window_tokens!r}; expected an integer in 1..{int(context) - 1}")
    return window_tokens


def tokenize(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text with no special tokens added (see the bit-accounting comment)."""
    if isinstance(texts, str):
        raise UserError("texts must be a list of strings, not one string")
    if not texts:
        return []
    # verbose=False: texts longer than the context are expected here (they are cut into windows below)
    return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]]


def windows(ids: Sequence[int], window_tokens: int) -> list[list[int]]:
    """Cut a token sequence into consecutive windows of at most `window_tokens` tokens (none if empty)."""
    return [list(ids[i : i + window_tokens]) for i in range(0, len(ids), window_tokens)]


def _model_device(model) -> torch.device:
    return next(model.parameters()).device


def vocab_size_of(model) -> int:
    """Size V of the model's output distribution (the logits' last dimension)."""
    return int(model.get_output_embeddings().weight.shape[0])


@no_grad
def _window_bits(model, bos_id: int | None, segments: list[list[int]], extra_last: list[int | None],
                 batch_size: int) -> np.ndarray:
    """Code length (bits) of each window; `extra_last[k]` is a token coded after window k (EOS) or None."""
    import torch

    device = _model_device(model)
    vocab_size = vocab_size_of(model)
    out = np.zeros(len(segments), dtype=np.float64)
    order = sorted(range(len(segments)), key=lambda k: -len(segments[k]))
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        # Each row: [BOS]? + window + [EOS]?; targets are the row shifted by one.
        rows = []
        for k in batch:
            row = ([bos_id] if bos_id is not None else []) + segments[k]
            row = row + ([extra_last[k]] if extra_last[k] is not None else [])
            rows.append(row)
        width = max(len(r) for r in rows)
        if width < 2:  # a lone token without BOS: nothing for the model to predict
            for k, row in zip(batch, rows, strict=True):
                out[k] = len(row) * math.log2(vocab_size) if bos_id is None else 0.0
            continue
        input_ids = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            input_ids[r, : len(row)] = torch.tensor(row)
            mask[r, : len(row)] = 1
        input_ids, mask = input_ids.to(device), mask.to(device)
        logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
        targets = input_ids[:, 1:]
        # log p(target) = logit[target] - logsumexp(logits), in nats; row by row to bound memory.
        for r, k in enumerate(batch):
            n = len(rows[r]) - 1
            if n <= 0:
                nats = 0.0
            else:
                lg = logits[r, :n]
                lp = lg.gather(-1, targets[r, :n, None])[:, 0] - torch.logsumexp(lg, dim=-1)
                nats = -float(lp.double().sum())
            bits = nats / math.log(2)
            if bos_id is None and segments[k]:
                bits += math.log2(vocab_size)  # the first token, coded uniformly (see the block comment)
            out[k] = bits
    return out


def _code_lengths(model, tokenizer, texts, *, batch_size, window_tokens, count_eos):
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch_size = {batch_size!r}; expected a positive integer")
    ids = tokenize(tokenizer, texts)
    window = window_tokens_for(model, window_tokens)
    bos_id = tokenizer.bos_token_id
    eos_id = tokenizer.eos_token_id if count_eos else None
    segments, owners, extra = [], [], []
    for t, seq in enumerate(ids):
        wins = windows(seq, window) or [[]]
        for w, win in enumerate(wins):
            segments.append(win)
            owners.append(t)
            extra.append(eos_id if w == len(wins) - 1 else None)
    with evaluating(model):
        seg_bits = _window_bits(model, bos_id, segments, extra, batch_size)
    bits = np.zeros(len(ids), dtype=np.float64)
    np.add.at(bits, np.asarray(owners, dtype=np.int64), seg_bits)
    return bits, np.asarray([len(s) for s in ids], dtype=np.int64)


def code_lengths_bits(model, tokenizer, texts: list[str], *, batch_size: int = 16,
                      window_tokens: int | None = None, count_eos: bool = False) -> np.ndarray:
    """Ideal code length of each text under the model, in bits (see the bit-accounting comment above).

    Args:
        model: a causal LM (`transformers` `PreTrainedModel`), on any device.
        tokenizer: its tokenizer.
        texts: N strings.
        batch_size: windows scored per forward pass.
        window_tokens: tokens per coding window (None: the model's context, capped at 512).
        count_eos: also code an EOS token after each text.

    Returns:
        float64 array, shape (N,): -log2 p(text) in bits, summed over the text's tokens.
    """
    return _code_lengths(model, tokenizer, texts, batch_size=batch_size, window_tokens=window_tokens,
                         count_eos=count_eos)[0]


def code_lengths_and_tokens(model, tokenizer, texts: list[str], *, batch_size: int = 16,
                            window_tokens: int | None = None, count_eos: bool = False):
    """Like `code_lengths_bits`, also returning the token count of each text (shape (N,), int64)."""
    return _code_lengths(model, tokenizer, texts, batch_size=batch_size, window_tokens=window_tokens,
                         count_eos=count_eos)


def utf8_bytes(texts: Sequence[str]) -> int:
    """Total number of UTF-8 bytes of the texts."""
    return sum(len(t.encode("utf-8")) for t in texts)


def bits_per_byte(model, tokenizer, texts: list[str], *, batch_size: int = 16,
                  window_tokens: int | None = None, count_eos: bool = False) -> float:
    """Total code length of the texts (bits) divided by their total UTF-8 size (bytes).

    Raises:
        UserError: if the texts hold no bytes at all.
    """
    num_bytes = utf8_bytes(texts)
    if num_bytes == 0:
        raise UserError("bits_per_byte of empty texts is undefined; give at least one non-empty text")
    bits = code_lengths_bits(model, tokenizer, texts, batch_size=batch_size, window_tokens=window_tokens,
                             count_eos=count_eos)
    return float(bits.sum() / num_bytes)


def compression_rate(model, tokenizer, texts: list[str], *, batch_size: int = 16,
                     window_tokens: int | None = None, count_eos: bool = False,
                     average: str = "per-text") -> float:
    """The paper's compression rate gamma of a dataset under a model, in bits per token.

    The paper defines gamma^{D_i} = E_{x ~ P_i}[ L(x) / |x| ]: the expected code length of a response
    divided by its length in tokens, so the faithful estimate averages the per-text ratio
    (`average="per-text"`, texts with no token are skipped). `average="pooled"` gives total bits over
    total tokens instead, which weighs long texts more.

    Returns:
        gamma in bits per token.
    """
    choice("average", average, ("per-text", "pooled"))
    bits, num_tokens = code_lengths_and_tokens(model, tokenizer, texts, batch_size=batch_size,
                                               window_tokens=window_tokens, count_eos=count_eos)
    keep = num_tokens > 0
    if not keep.any():
        raise UserError("compression_rate needs at least one text with at least one token")
    if average == "pooled":
        return float(bits[keep].sum() / num_tokens[keep].sum())
    return float(np.mean(bits[keep] / num_tokens[keep]))


def leaf_count(tokenizer, joint_texts: list[str], depth: int) -> int:
    """M: the number of leaves of the token tree of the joint data pruned at `depth` tokens."""
    from elasticity import tokentree

    ids = [tuple(s) for s in tokenize(tokenizer, joint_texts)]
    return len(tokentree.TokenTree.from_sequences(ids).leaf_masses(depth))


def normalized_compression_rate(model, tokenizer, texts: list[str], joint_texts: list[str], *,
                                batch_size: int = 16, window_tokens: int | None = None,
                                count_eos: bool = False, average: str = "per-text",
                                normalization: str = "log-leaves", depth: int = 4) -> float:
    """The paper's normalized compression rate gamma^{D_i/D} of dataset D_i relative to the joint data D.

    The paper's exact definition could not be read (digest section 2.6). Readings offered:

    * `"log-leaves"` (default, the only form any source states): gamma^{D_i} - log2(M) / depth, where M is
      the number of leaves of the token tree of the joint data D pruned at `depth` tokens, so log2(M) is
      the code length of a uniform code over those leaves; dividing by `depth` puts it per token, like
      gamma. It is a constant for a given D, so it shifts every D_i by the same amount.
    * `"difference"`: gamma^{D_i} - gamma^{D}, the rate of D_i relative to the model's rate on the joint data.
    * `"none"`: gamma^{D_i} itself.

    Args:
        texts: the texts of D_i.
        joint_texts: the texts of the joint data D (usually the union of all D_i).
        normalization: one of NORMALIZATIONS.
        depth: pruning depth (tokens) of the joint token tree, for `"log-leaves"`.

    Returns:
        the normalized rate in bits per token.
    """
    choice("normalization", normalization, NORMALIZATIONS)
    if not isinstance(depth, int) or depth < 1:
        raise UserError(f"depth = {depth!r}; expected a positive integer")
    kwargs = dict(batch_size=batch_size, window_tokens=window_tokens, count_eos=count_eos, average=average)
    gamma = compression_rate(model, tokenizer, texts, **kwargs)
    if normalization == "none":
        return gamma
    if normalization == "difference":
        return gamma - compression_rate(model, tokenizer, joint_texts, **kwargs)
    return gamma - math.log2(leaf_count(tokenizer, joint_texts, depth)) / depth
