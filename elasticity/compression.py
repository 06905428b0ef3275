"""Code lengths of text under a language model: bits per token and byte, (normalized) compression rates."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from elasticity.config import UserError, choice
from elasticity.modes import evaluating

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


@torch.no_grad()
def _window_bits(model, bos_id: int | None, segments: list[list[int]], extra_last: list[int | None],
                 batch_size: int) -> np.ndarray:
    """Code length (bits) of each window; `extra_last[k]` is a token coded after window k (EOS) or None."""
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


# ---------------------------------------------------------------------------------------------------------
# The chapter `compression_with_models`: real arithmetic coding with language models beside general-purpose
# compressors on the same bytes, and (normalized) compression rates of positive, negative and pre-training
# data under one model.
# ---------------------------------------------------------------------------------------------------------

SMOLLM2 = "smollm2-135m"


@dataclass(frozen=True)
class ModelsConfig:
    """What the chapter codes and with which models.

    Attributes:
        family: the model family whose sizes are compared.
        sizes: sizes of `family` to code with; () for all of them.
        dataset: held-out text: "pretraining-corpus" (its eval documents) or a DATASETS key (eval examples).
        num_bytes: size of the held-out text that is really coded (UTF-8 bytes, see `held_out_text`).
            Coding runs the model one token at a time, so this stays small.
        ideal_bytes: size of a longer held-out text on which the models' ideal code lengths (batched,
            fast) are compared with the general-purpose compressors; 0 to skip.
        smollm2: also code the same text with SmolLM2-135M (slow on a CPU: tens of ms a token).
        round_trip: also decompress the archives of `family` and check the bytes (doubles the model time).
        smollm2_round_trip: the same for SmolLM2 (on by default: about 20 s more on a CPU).
        rates_size: size of `family` used for the compression rates; None: the family's default size.
        rates_texts: texts per dataset (positive, negative, pre-training) for the rates.
        sentiment_dataset: the labelled dataset whose "positive" and "negative" parts are rated.
        depth: pruning depth (tokens) of the joint token tree, for the "log-leaves" normalization.
    """

    family: str = "tiny"
    sizes: tuple[str, ...] = ()
    dataset: str = "pretraining-corpus"
    num_bytes: int = 1000
    ideal_bytes: int = 20000
    smollm2: bool = True
    round_trip: bool = True
    smollm2_round_trip: bool = True
    rates_size: str | None = None
    rates_texts: int = 200
    sentiment_dataset: str = "rotten-tomatoes"
    depth: int = 4

    def __post_init__(self) -> None:
        from elasticity.config import check_types

        check_types(self)
        if self.num_bytes < 1 or self.rates_texts < 1 or self.depth < 1 or self.ideal_bytes < 0:
            raise UserError("num_bytes, rates_texts and depth must be positive, ideal_bytes non-negative")


PRESETS = {
    "default": ModelsConfig(),
    "smoke": ModelsConfig(num_bytes=300, ideal_bytes=2000, smollm2=False, rates_texts=20),
}


def held_out_text(dataset: str, num_bytes: int) -> str:
    """Held-out documents in their seed-0 order, joined by blank lines, cut to `num_bytes` UTF-8 bytes
    (at a character boundary, so possibly a few bytes fewer; the last document is usually cut)."""
    from elasticity import data

    docs = (data.pretraining_corpus("eval") if dataset == "pretraining-corpus"
            else [e.text for e in data.examples(dataset, "eval", seed=0)])
    out, size = [], 0
    for doc in docs:
        if size >= num_bytes:
            break
        out.append(doc)
        size += len(doc.encode()) + 2
    return "\n\n".join(out).encode()[:num_bytes].decode("utf-8", errors="ignore")


def general_purpose_bits(raw: bytes) -> dict[str, int]:
    """Compressed size in bits of `raw` under gzip, bz2 and lzma at their strongest settings (with headers)."""
    import bz2
    import gzip
    import lzma

    return {"gzip -9": 8 * len(gzip.compress(raw, compresslevel=9, mtime=0)),
            "bz2 -9": 8 * len(bz2.compress(raw, compresslevel=9)),
            "lzma -9e": 8 * len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME))}


def _code_with(name: str, kind: str, model, tokenizer, raw: bytes, round_trip: bool) -> dict:
    from elasticity import archive

    blob, stats = archive.compress_bytes(raw, model, tokenizer)
    ok = None
    if round_trip:
        ok = archive.decompress_bytes(blob, model, tokenizer)[0] == raw
    ideal = float(code_lengths_bits(model, tokenizer, [raw.decode("utf-8", errors="replace")])[0])
    return {"compressor": name, "kind": kind, "bytes": len(raw), "file_bits": 8 * stats["bytes_out"],
            "code_bits": stats["code_bits"], "nll_bits": stats["nll_bits"], "batched_nll_bits": ideal,
            "header_bytes": stats["header_bytes"], "patch_bytes": stats["patch_bytes"],
            "num_tokens": stats["num_tokens"], "round_trip": ok, "seconds": stats["seconds"]}


def compare_compressors(cfg: ModelsConfig):
    """One row per compressor on the same held-out bytes: tiny sizes, SmolLM2, gzip, bz2, lzma.

    Columns: compressor, kind (model | general), bytes, file_bits (whole archive file), code_bits
    (arithmetic code only), nll_bits (the model's ideal code length), batched_nll_bits (the same from the
    batched pass of `code_lengths_bits`), num_tokens, round_trip (decoded bytes equal the input, or None
    if not checked), seconds (compression wall time), and bits per byte of each size.
    """
    import pandas as pd

    from elasticity import models

    raw = held_out_text(cfg.dataset, cfg.num_bytes).encode()
    rows = []
    for size in cfg.sizes or models.sizes(cfg.family):
        model, tokenizer = models.load(cfg.family, size=size)
        rows.append(_code_with(f"{cfg.family} {size}", "model", model, tokenizer, raw, cfg.round_trip))
    if cfg.smollm2 and cfg.family != SMOLLM2:
        model, tokenizer = models.load(SMOLLM2)
        rows.append(_code_with(SMOLLM2, "model", model, tokenizer, raw, cfg.smollm2_round_trip))
    for name, bits in general_purpose_bits(raw).items():
        rows.append({"compressor": name, "kind": "general", "bytes": len(raw), "file_bits": bits,
                     "code_bits": None, "nll_bits": None, "batched_nll_bits": None, "num_tokens": None,
                     "round_trip": None, "seconds": None})
    table = pd.DataFrame(rows)
    for column in ("file_bits", "code_bits", "nll_bits"):
        table[column.replace("_bits", "_bits_per_byte")] = table[column].astype(float) / table["bytes"]
    return table


def ideal_table(cfg: ModelsConfig):
    """Ideal code lengths (bits per byte, batched pass, nothing coded) of the family's sizes on a longer
    held-out text of `cfg.ideal_bytes` bytes, beside gzip, bz2 and lzma files of the same bytes."""
    import pandas as pd

    from elasticity import models

    if cfg.ideal_bytes == 0:
        return pd.DataFrame(columns=["compressor", "kind", "bytes", "bits_per_byte"])
    text = held_out_text(cfg.dataset, cfg.ideal_bytes)
    raw = text.encode()
    rows = []
    for size in cfg.sizes or models.sizes(cfg.family):
        model, tokenizer = models.load(cfg.family, size=size)
        rows.append({"compressor": f"{cfg.family} {size}", "kind": "model (ideal)", "bytes": len(raw),
                     "bits_per_byte": bits_per_byte(model, tokenizer, [text])})
    for name, bits in general_purpose_bits(raw).items():
        rows.append({"compressor": name, "kind": "general", "bytes": len(raw), "bits_per_byte": bits / len(raw)})
    return pd.DataFrame(rows)


def rate_table(cfg: ModelsConfig):
    """Compression rates (bits per token) of positive, negative and pre-training texts under one model.

    One row per dataset part with gamma and the normalized rate under each of NORMALIZATIONS; the joint
    data D is the union of the three parts.
    """
    import pandas as pd

    from elasticity import data, models

    model, tokenizer = models.load(cfg.family, size=cfg.rates_size)
    parts = {
        "positive": [e.text for e in data.examples(cfg.sentiment_dataset, "eval", n=cfg.rates_texts,
                                                   label="positive")],
        "negative": [e.text for e in data.examples(cfg.sentiment_dataset, "eval", n=cfg.rates_texts,
                                                   label="negative")],
        "pre-training": data.pretraining_corpus("eval")[: cfg.rates_texts],
    }
    joint = [t for texts in parts.values() for t in texts]
    bits, num_tokens = code_lengths_and_tokens(model, tokenizer, joint)
    by_text = dict(zip(joint, zip(bits, num_tokens, strict=True), strict=False))
    keep = num_tokens > 0
    gamma_joint = float(np.mean(bits[keep] / num_tokens[keep]))
    log_leaves = math.log2(leaf_count(tokenizer, joint, cfg.depth)) / cfg.depth
    rows = []
    for name, texts in parts.items():
        pairs = np.array([by_text[t] for t in texts if by_text[t][1] > 0], dtype=np.float64)
        gamma = float(np.mean(pairs[:, 0] / pairs[:, 1]))
        rows.append({"data": name, "texts": len(texts), "bits_per_byte": float(pairs[:, 0].sum())
                     / utf8_bytes(texts), "gamma": gamma, "log-leaves": gamma - log_leaves,
                     "difference": gamma - gamma_joint, "none": gamma})
    return pd.DataFrame(rows)


def compare(cfg: ModelsConfig) -> dict:
    """The chapter's tables: {"coding": compare_compressors, "ideal": ideal_table, "rates": rate_table}."""
    return {"coding": compare_compressors(cfg), "ideal": ideal_table(cfg), "rates": rate_table(cfg)}


def run(cfg: ModelsConfig) -> dict:
    """`compare(cfg)`, cached by config and code (`elasticity.results.load_or_run`)."""
    from elasticity import results

    return results.load_or_run("compression_with_models", cfg, compare)
