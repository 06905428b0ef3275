"""Compression with models, the computation: real arithmetic coding with language models beside general-purpose
compressors on the same bytes, and (normalized) compression rates of positive, negative and pre-training data
under one model, built on `elasticity.compression` (code lengths and rates) and `elasticity.archive` (the coder's
files). Judged in `compression_with_models`.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from elasticity import archive, compression, data, models, results
from elasticity.config import UserError, check_types

TABLES = "compression_with_models-tables"  # the cache entry of `tables`
SMOLLM2 = "smollm2-135m"


@dataclass(frozen=True)
class Config:
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
        check_types(self)
        if self.num_bytes < 1 or self.rates_texts < 1 or self.depth < 1 or self.ideal_bytes < 0:
            raise UserError("num_bytes, rates_texts and depth must be positive, ideal_bytes non-negative")



def held_out_text(dataset: str, num_bytes: int) -> str:
    """Held-out documents in their seed-0 order, joined by blank lines, cut to `num_bytes` UTF-8 bytes
    (at a character boundary, so possibly a few bytes fewer; the last document is usually cut)."""
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
    return {"gzip -9": 8 * len(gzip.compress(raw, compresslevel=9, mtime=0)),
            "bz2 -9": 8 * len(bz2.compress(raw, compresslevel=9)),
            "lzma -9e": 8 * len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME))}


def _code_with(name: str, kind: str, model, tokenizer, raw: bytes, round_trip: bool) -> dict:
    blob, stats = archive.compress_bytes(raw, model, tokenizer)
    ok = None
    if round_trip:
        ok = archive.decompress_bytes(blob, model, tokenizer)[0] == raw
    ideal = float(compression.code_lengths_bits(model, tokenizer, [raw.decode("utf-8", errors="replace")])[0])
    return {"compressor": name, "kind": kind, "bytes": len(raw), "file_bits": 8 * stats["bytes_out"],
            "code_bits": stats["code_bits"], "nll_bits": stats["nll_bits"], "batched_nll_bits": ideal,
            "header_bytes": stats["header_bytes"], "patch_bytes": stats["patch_bytes"],
            "num_tokens": stats["num_tokens"], "round_trip": ok, "seconds": stats["seconds"]}


def compare_compressors(cfg: Config):
    """One row per compressor on the same held-out bytes: tiny sizes, SmolLM2, gzip, bz2, lzma.

    Columns: compressor, kind (model | general), bytes, file_bits (whole archive file), code_bits
    (arithmetic code only), nll_bits (the model's ideal code length), batched_nll_bits (the same from the
    batched pass of `code_lengths_bits`), num_tokens, round_trip (decoded bytes equal the input, or None
    if not checked), seconds (compression wall time), and bits per byte of each size.
    """
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


def ideal_table(cfg: Config):
    """Ideal code lengths (bits per byte, batched pass, nothing coded) of the family's sizes on a longer
    held-out text of `cfg.ideal_bytes` bytes, beside gzip, bz2 and lzma files of the same bytes."""
    if cfg.ideal_bytes == 0:
        return pd.DataFrame(columns=["compressor", "kind", "bytes", "bits_per_byte"])
    text = held_out_text(cfg.dataset, cfg.ideal_bytes)
    raw = text.encode()
    rows = []
    for size in cfg.sizes or models.sizes(cfg.family):
        model, tokenizer = models.load(cfg.family, size=size)
        rows.append({"compressor": f"{cfg.family} {size}", "kind": "model (ideal)", "bytes": len(raw),
                     "bits_per_byte": compression.bits_per_byte(model, tokenizer, [text])})
    for name, bits in general_purpose_bits(raw).items():
        rows.append({"compressor": name, "kind": "general", "bytes": len(raw), "bits_per_byte": bits / len(raw)})
    return pd.DataFrame(rows)


def rate_table(cfg: Config):
    """Compression rates (bits per token) of positive, negative and pre-training texts under one model.

    One row per dataset part with gamma and the normalized rate under each of NORMALIZATIONS; the joint
    data D is the union of the three parts.
    """
    model, tokenizer = models.load(cfg.family, size=cfg.rates_size)
    parts = {
        "positive": [e.text for e in data.examples(cfg.sentiment_dataset, "eval", n=cfg.rates_texts,
                                                   label="positive")],
        "negative": [e.text for e in data.examples(cfg.sentiment_dataset, "eval", n=cfg.rates_texts,
                                                   label="negative")],
        "pre-training": data.pretraining_corpus("eval")[: cfg.rates_texts],
    }
    joint = [t for texts in parts.values() for t in texts]
    bits, num_tokens = compression.code_lengths_and_tokens(model, tokenizer, joint)
    by_text = dict(zip(joint, zip(bits, num_tokens, strict=True), strict=False))
    keep = num_tokens > 0
    gamma_joint = float(np.mean(bits[keep] / num_tokens[keep]))
    log_leaves = math.log2(compression.leaf_count(tokenizer, joint, cfg.depth)) / cfg.depth
    rows = []
    for name, texts in parts.items():
        pairs = np.array([by_text[t] for t in texts if by_text[t][1] > 0], dtype=np.float64)
        gamma = float(np.mean(pairs[:, 0] / pairs[:, 1]))
        rows.append({"data": name, "texts": len(texts), "bits_per_byte": float(pairs[:, 0].sum())
                     / compression.utf8_bytes(texts), "gamma": gamma, "log-leaves": gamma - log_leaves,
                     "difference": gamma - gamma_joint, "none": gamma})
    return pd.DataFrame(rows)


def tables(cfg: Config) -> dict:
    """The chapter's tables: {"coding": compare_compressors, "ideal": ideal_table, "rates": rate_table}."""
    return {"coding": compare_compressors(cfg), "ideal": ideal_table(cfg), "rates": rate_table(cfg)}


def cached_units(cfg: Config) -> list[results.Unit]:
    """The one cache entry the chapter computes: its tables (for `elasticity status`)."""
    return [results.Unit(TABLES, cfg, tables)]


def measure(cfg: Config) -> dict:
    """`tables(cfg)`, cached under its own entry, so that judging them again computes nothing."""
    return results.load_or_run(TABLES, cfg, tables)
