"""The model families chapter's tables: the tiny sizes as pre-trained here, and every model's held-out bits
per byte on the same texts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

import elasticity.config
from elasticity import compression, data, models, pretrain, results
from elasticity.config import UserError

NAME = "models-bpb"  # the bits-per-byte table's directory under the results cache
CHAPTER = "models"  # the notebook stem that shows these tables


def tiny_table() -> pd.DataFrame:
    """One row per tiny size at the current scale: architecture, parameters, and the pre-training run as it
    was measured where the checkpoints were built (seconds, tokens/s, threads, CPU/wall ratio).

    Pre-trains the sizes that are not cached yet.
    """
    rows = []
    for size in models.sizes("tiny"):
        cfg = pretrain.preset(size)
        pretrain.pretrain(size, progress=False)  # builds it if not cached, without a progress bar
        record = pretrain.record(size)
        rows.append({"size": size, "hidden_size": cfg.hidden_size, "num_layers": cfg.num_layers,
                     "num_heads": cfg.num_heads, "num_parameters": record["num_parameters"],
                     "budget_tokens": cfg.budgets_tokens[-1], "train_seconds": record["train_seconds"],
                     "tokens_per_second": record["tokens_per_second"], "threads": record["threads"],
                     "cpu_per_wall": record["cpu_per_wall"], "resumed_at_step": record["resumed_at_step"],
                     "final_train_loss_nats": float(np.mean(record["losses"][-20:]))})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Config:
    """Held-out bits per byte of every tiny size and budget (and SmolLM2-135M) on the same texts."""

    num_texts: int  # the first n documents of the pre-training corpus' eval split
    include_smollm2: bool  # also measure smollm2-135m (converts its GGUF on first use)
    batch_size: int  # texts per forward pass
    scale: str  # the tiny presets measured (default | smoke); part of the cache key

    def __post_init__(self):
        elasticity.config.check_types(self)
        elasticity.config.choice("scale", self.scale, elasticity.config.SCALES)
        if self.num_texts < 1 or self.batch_size < 1:
            raise UserError("num_texts and batch_size must be >= 1")


PRESETS = {
    "default": Config(num_texts=200, include_smollm2=True, batch_size=16, scale="default"),
    "smoke": Config(num_texts=16, include_smollm2=False, batch_size=16, scale="smoke"),
}


def config(**overrides) -> Config:
    """The preset of the current scale (`ELASTICITY_SCALE`) with the non-None overrides."""
    return elasticity.config.replace(PRESETS[elasticity.config.scale()], **overrides)


def run(cfg: Config) -> pd.DataFrame:
    """Held-out bits per byte of every tiny size and budget (and SmolLM2) on the first `num_texts` eval documents
    of the pre-training corpus: family, size, budget_tokens, num_parameters, bits_per_byte, num_texts, num_bytes."""
    if cfg.scale != elasticity.config.scale():
        raise UserError(f"scale = {cfg.scale!r} but ELASTICITY_SCALE selects {elasticity.config.scale()!r}")
    texts = data.pretraining_corpus("eval")[: cfg.num_texts]
    num_bytes = sum(len(t.encode("utf-8")) for t in texts)
    rows = []
    for size in models.sizes("tiny"):
        for budget in models.budgets("tiny"):
            model, tokenizer = models.load("tiny", size=size, budget_tokens=budget)
            model.eval()
            rows.append({"family": "tiny", "size": size, "budget_tokens": budget,
                         "num_parameters": sum(p.numel() for p in model.parameters()),
                         "bits_per_byte": compression.bits_per_byte(model, tokenizer, texts,
                                                                    batch_size=cfg.batch_size)})
    if cfg.include_smollm2:
        model, tokenizer = models.load("smollm2-135m")
        model.eval()
        rows.append({"family": "smollm2-135m", "size": "default", "budget_tokens": None,
                     "num_parameters": sum(p.numel() for p in model.parameters()),
                     "bits_per_byte": compression.bits_per_byte(model, tokenizer, texts,
                                                                batch_size=cfg.batch_size)})
    frame = pd.DataFrame(rows)
    frame["num_texts"], frame["num_bytes"] = len(texts), num_bytes
    return frame


def load_or_run(cfg: Config) -> pd.DataFrame:
    """Held-out bits per byte (`compression.bits_per_byte`) of each tiny size and budget, and of SmolLM2,
    on the same eval documents of the pre-training corpus (`run`); cached by config and code."""
    return results.load_or_run(NAME, cfg, run)
