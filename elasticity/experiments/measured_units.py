"""Theorem 4.2 measured, the cached units: pre-training theta_p, then aligning, perturbing and measuring rates.

What trains and measures, and nothing that judges: the units' keys cover their config and this measuring
code only (the derivatives, ratios and the verdict are in `measured_judge`, figures in `measured_figures`).
"""

from __future__ import annotations

import copy
import functools
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

import elasticity.config
from elasticity import compression, data, finetune, models, paths, pretrain, results, scoring
from elasticity.config import UserError, check_types

NAME = "measured"  # the units' directories under the results cache: measured-pretrain, measured-unit

# The theorem's datasets (Section 4 of the paper, as secondary sources transcribe it): D_p = D_1 u D_2 u D_3
# in equal parts, D_a distributed like D_2, D_t like D_3. Here D_2 and D_a are positive Rotten Tomatoes
# snippets, D_3 and D_t negative ones (the sentiment rebound task: align on positive, perturb with negative),
# D_1 is neutral tweets, a different domain. Each entry: (dataset, label) of `data.DATASETS`.
PARTS = {"D_1": ("tweets", "neutral"), "D_2": ("rotten-tomatoes", "positive"), "D_3": ("rotten-tomatoes", "negative")}
ALIGNMENT_PART = "D_2"  # D_a ~ D_2
PERTURBATION_PART = "D_3"  # D_t ~ D_3
DATA_SEED = 0  # the order that fixes D_1, D_2, D_3 and the held-out sets (seeds vary D_a, D_t and training)

# How "the model is trained on D = D_p u D_a u D_t" (the theorem) is read for a pre-trained model:
#   sequential: the paper's experiments. theta_p (pre-trained on D_p) is fine-tuned on D_a (alignment),
#       then on D_t (perturbation). Each step sees only its own data; sizes enter through step counts.
#   joint: the theorem's hypothesis. theta_p is trained further on the union D_p u D_a u D_t, each example
#       once per epoch, so every dataset weighs in proportion to its size; l = 0 is the aligned model.
PROTOCOLS = ("sequential", "joint")
PRETRAINABLE = ("tiny",)  # families pre-trained here from scratch, so that |D_p| is known


@dataclass(frozen=True)
class Config:
    """The measured-elasticity experiment.

    A model of `family`/`size` is pre-trained from scratch on D_p (`part_size` examples of each of D_1,
    D_2, D_3). For each alignment size |D_a| (k = |D_p|/|D_a|) and seed it is aligned on D_a and then
    perturbed with the first round(l |D_a|) examples of D_t for each l in `l_values`, following each of
    `protocols`. The normalized compression rates of held-out D_p and D_a are measured before (l = 0) and
    after each perturbation; d gamma/dl is the slope through the origin over l <= `fit_l_max`.
    """

    family: str = "tiny"  # a family pre-trained here (tiny): |D_p| must be known
    size: str | None = None  # key of models.sizes(family): the architecture; None: the family's default size
    alignment_sizes: tuple[int, ...] = (360, 120, 36)  # |D_a|, examples; k = 3 part_size / |D_a|
    l_values: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5)  # |D_t| / |D_a|, each > 0
    seeds: tuple[int, ...] = (0, 1, 2)  # one replicate (D_a, D_t draws and training order) per seed
    protocols: tuple[str, ...] = PROTOCOLS  # each run in turn (see PROTOCOLS); joint decides the verdicts
    part_size: int = 1200  # examples in each of D_1, D_2, D_3; |D_p| = 3 part_size
    pretrain_epochs: float = 3.0  # epochs of pre-training on D_p (from scratch)
    pretrain_learning_rate: float = 2e-3  # learning rate of pre-training
    learning_rate: float = 5e-4  # learning rate of alignment (sequential) and of joint training
    perturb_learning_rate: float = 5e-5  # learning rate of the sequential perturbation (one example per step)
    align_epochs: float = 2.0  # epochs over D_a (sequential)
    perturb_epochs: float = 1.0  # epochs over D_t (sequential) or over the union (joint)
    batch_size: int = 16  # examples per step of pre-training, alignment and joint training
    perturb_batch_size: int = 1  # examples per step of the sequential perturbation (1: one step per example)
    max_length: int = 64  # tokens per training text
    eval_size: int = 150  # held-out texts of each of D_1, D_2, D_3 and D_a
    kl_size: int = 48  # held-out texts per dataset for the model-to-model KL
    normalization: str = "log-leaves"  # compression.NORMALIZATIONS: log-leaves | difference | none
    depth: int = 4  # pruning depth (tokens) of the joint token tree, for log-leaves
    fit_l_max: float = 0.2  # d gamma/dl at l -> 0: slope through the origin over 0 < l <= fit_l_max
    tolerance_factor: float = 10.0  # Theta(k) read as: |ratio| within this factor of k, at every k
    device: str = "cpu"  # torch device: cpu | cuda | cuda:N | mps

    def __post_init__(self) -> None:
        check_types(self)
        elasticity.config.choice("family", self.family, models.FAMILIES)
        if self.family not in PRETRAINABLE:
            raise UserError(f"family {self.family!r} was pre-trained elsewhere on unknown data, so k = |D_p|/|D_a| "
                            f"is unknown; this experiment pre-trains its own model: accepted: "
                            f"{', '.join(PRETRAINABLE)}")
        if self.size is not None:
            elasticity.config.choice(f"size of {self.family}", self.size, models.sizes(self.family))
        if not self.protocols or len(set(self.protocols)) != len(self.protocols):
            raise UserError(f"protocols = {self.protocols!r}; expected one or more of {', '.join(PROTOCOLS)}, "
                            "each once")
        for protocol in self.protocols:
            elasticity.config.choice("protocol", protocol, PROTOCOLS)
        elasticity.config.choice("normalization", self.normalization, compression.NORMALIZATIONS)
        if not elasticity.config.is_device(self.device):
            raise UserError(f"device {self.device!r} is not one of {elasticity.config.DEVICES}")
        positive_ints = ("part_size", "batch_size", "perturb_batch_size", "max_length", "eval_size", "kl_size",
                         "depth")
        for name in positive_ints:
            if getattr(self, name) < 1:
                raise UserError(f"{name} = {getattr(self, name)!r}; expected a positive integer")
        positive_floats = ("pretrain_epochs", "pretrain_learning_rate", "learning_rate", "perturb_learning_rate",
                           "align_epochs",
                           "perturb_epochs", "fit_l_max")
        for name in positive_floats:
            if not getattr(self, name) > 0:
                raise UserError(f"{name} = {getattr(self, name)!r}; expected a positive number")
        if not self.tolerance_factor >= 1:
            raise UserError(f"tolerance_factor = {self.tolerance_factor!r}; expected a number >= 1")
        _check_distinct_positive("alignment_sizes", self.alignment_sizes, minimum=2)
        _check_distinct_positive("l_values", self.l_values, minimum=2)
        _check_distinct_positive("seeds", self.seeds, minimum=1, allow_zero=True)
        if min(self.l_values) > self.fit_l_max:
            raise UserError(f"no l in l_values = {self.l_values} is <= fit_l_max = {self.fit_l_max}; "
                            "the slope at l -> 0 needs at least one")
        for size in self.alignment_sizes:
            if round(min(self.l_values) * size) < 1:
                raise UserError(f"l = {min(self.l_values)} of |D_a| = {size} is less than one example; "
                                "raise the smallest l or the alignment size")

    @property
    def pretraining_size(self) -> int:
        """|D_p|, examples."""
        return 3 * self.part_size

    @property
    def k_values(self) -> tuple[float, ...]:
        """k = |D_p| / |D_a| for each alignment size."""
        return tuple(self.pretraining_size / n for n in self.alignment_sizes)


def _check_distinct_positive(name: str, values: tuple, *, minimum: int, allow_zero: bool = False) -> None:
    if len(values) < minimum:
        raise UserError(f"{name} = {values!r}; expected at least {minimum} value(s)")
    if len(set(values)) != len(values):
        raise UserError(f"{name} = {values!r} repeats a value")
    low = 0 if allow_zero else 0.0
    if any(v < low or (not allow_zero and v <= 0) for v in values):
        raise UserError(f"{name} = {values!r}; expected {'non-negative' if allow_zero else 'positive'} values")


# ---------------------------------------------------------------------------------------------------------
# Data. Every example is plain text (prompt ""): the theorem's datasets are sets of responses coded in
# full, and the loss, like the compression rate, covers every token.
# ---------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _texts(part: str, split: str, seed: int) -> tuple[str, ...]:
    name, label = PARTS[part]
    return tuple(e.text for e in data.examples(name, split, seed=seed, label=label))


def pretraining_texts(part_size: int) -> dict[str, list[str]]:
    """D_1, D_2, D_3: the first `part_size` training texts of each part, in the DATA_SEED order."""
    return {part: _take(list(_texts(part, "train", DATA_SEED)), part_size, part) for part in PARTS}


def heldout_texts(eval_size: int) -> dict[str, list[str]]:
    """Held-out texts (eval split): `eval_size` of each of D_1, D_2, D_3, and another `eval_size` for D_a.

    D_a's held-out texts are eval texts of D_2's distribution that are not among D_2's held-out texts.
    """
    out = {part: _take(list(_texts(part, "eval", DATA_SEED)), eval_size, part) for part in PARTS}
    positives = list(_texts(ALIGNMENT_PART, "eval", DATA_SEED))
    out["D_a"] = _take(positives[eval_size:], eval_size, "D_a (held-out)")
    return out


def draw(part: str, n: int, seed: int, exclude: set[str]) -> list[str]:
    """The first n training texts of `part` in the order of `seed`, skipping those in `exclude`.

    Nested: draw(part, n, seed, x) == draw(part, m, seed, x)[:n] for m >= n.
    """
    pool = [t for t in _texts(part, "train", seed) if t not in exclude]
    return _take(pool, n, f"{part} ({PARTS[part][0]}, {PARTS[part][1]}) beyond D_p")


def _take(items: list, n: int, what: str) -> list:
    if n > len(items):
        raise UserError(f"{what} has {len(items)} texts; asked for {n}")
    return items[:n]


def _plain(texts: list[str]) -> list[data.Example]:
    return [data.Example("", t) for t in texts]


def perturbation_size(l: float, alignment_size: int) -> int:  # noqa: E741
    """|D_t| = round(l |D_a|), at least one example."""
    return max(1, round(l * alignment_size))


# ---------------------------------------------------------------------------------------------------------
# Cached units. An interrupted run resumes at the first unit not yet cached.
#   1. `_Pretrain`: theta_p pre-trained from scratch on D_p (a directory: weights and tokenizer).
#   2. `_Unit`: one (protocol, |D_a|, seed): alignment, every perturbation, and the rates of each model.
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pretrain:
    family: str
    size: str | None
    part_size: int
    epochs: float
    learning_rate: float
    batch_size: int
    max_length: int
    device: str
    seed: int = DATA_SEED


@dataclass(frozen=True)
class _Unit:
    pretrain: _Pretrain
    protocol: str
    alignment_size: int
    l_values: tuple[float, ...]
    seed: int
    learning_rate: float
    perturb_learning_rate: float
    align_epochs: float
    perturb_epochs: float
    batch_size: int
    perturb_batch_size: int
    eval_size: int
    kl_size: int
    normalization: str
    depth: int


def _pretrain_unit(cfg: Config) -> _Pretrain:
    return _Pretrain(cfg.family, cfg.size, cfg.part_size, cfg.pretrain_epochs, cfg.pretrain_learning_rate,
                     cfg.batch_size, cfg.max_length, cfg.device)


def _unit(cfg: Config, protocol: str, alignment_size: int, seed: int) -> _Unit:
    return _Unit(_pretrain_unit(cfg), protocol, alignment_size, cfg.l_values, seed, cfg.learning_rate,
                 cfg.perturb_learning_rate, cfg.align_epochs, cfg.perturb_epochs, cfg.batch_size,
                 cfg.perturb_batch_size, cfg.eval_size, cfg.kl_size, cfg.normalization, cfg.depth)


def _build_pretrained(unit: _Pretrain, directory: Path) -> None:
    """Pre-train a fresh model of the family's architecture on D_p; save weights, tokenizer, token counts."""
    model, tokenizer = fresh_model(unit.family, unit.size, seed=unit.seed, device=unit.device)
    parts = pretraining_texts(unit.part_size)
    train = _plain(shuffled([t for part in PARTS for t in parts[part]], unit.seed))
    ft = finetune.FinetuneConfig(learning_rate=unit.learning_rate, epochs=unit.epochs, batch_size=unit.batch_size,
                                 max_length=unit.max_length, seed=unit.seed)
    out = finetune.finetune(model, tokenizer, train, ft, progress=True)
    out.model.save_pretrained(directory / "model")
    tokenizer.save_pretrained(directory / "model")
    tokens = {part: int(sum(min(len(ids), unit.max_length) for ids in compression.tokenize(tokenizer, parts[part])))
              for part in PARTS}
    record = {"num_tokens": tokens, "final_loss_nats": float(out.final_loss), "steps": len(out.losses)}
    (directory / "pretraining.json").write_text(json.dumps(record, indent=2))


def fresh_model(family: str, size: str | None, *, seed: int, device: str):
    """A randomly initialised model of a tiny size's architecture, with the family's tokenizer.

    Built from `elasticity.pretrain`'s architecture and tokenizer of that size (nothing is pre-trained).
    """
    import torch
    from transformers import LlamaForCausalLM

    if family not in PRETRAINABLE:
        raise UserError(f"family {family!r} cannot be pre-trained here; accepted: {', '.join(PRETRAINABLE)}")
    cfg = pretrain.preset(size or models.default_size(family))
    tokenizer = pretrain.load_tokenizer(cfg.tokenizer)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(pretrain.llama_config(cfg, tokenizer)).to(device)
    return model, tokenizer


def shuffled(texts: list[str], seed: int) -> list[str]:
    """The texts in a seeded random order (`finetune` visits its first epoch in the order given)."""
    order = np.random.default_rng([seed, len(texts)]).permutation(len(texts))
    return [texts[i] for i in order]


def interleave(base: list[str], extra: list[str], seed: int) -> list[str]:
    """`base` (kept in its order) with `extra` inserted at seeded random places.

    Each extra text gets a fixed position key in [0, 1), drawn from `seed` by its index, and base text i
    has key (i + 0.5) / len(base): so interleave(base, extra[:n]) is interleave(base, extra[:m]) without
    the extra texts n..m-1, for any n <= m. Joint runs that differ only in |D_t| see the same sequence of
    D_p and D_a examples, which pairs them.
    """
    keys = np.random.default_rng([seed, 7]).random(len(extra))
    merged = [((i + 0.5) / len(base), 0, t) for i, t in enumerate(base)]
    merged += [(float(keys[j]), 1, t) for j, t in enumerate(extra)]
    return [t for _, _, t in sorted(merged, key=lambda x: (x[0], x[1]))]


def _pretrained_dir(unit: _Pretrain) -> Path:
    return _pretrained_dir_in(unit, paths.cache_dir())


@functools.lru_cache(maxsize=8)
def _pretrained_dir_in(unit: _Pretrain, cache: Path) -> Path:
    # Memoized per process and cache directory: the artifact's key hashes the package source, which is slow.
    return results.artifact_dir(f"{NAME}-pretrain", unit, _build_pretrained, cache=cache)


def _load_pretrained(unit: _Pretrain):
    """A fresh trainable copy of theta_p, with its tokenizer."""
    return finetune.load_checkpoint(_pretrained_dir(unit) / "model", device=unit.device)


def pretraining_record(cfg: Config) -> dict:
    """Token counts of D_1, D_2, D_3 (as trained: truncated to max_length) and theta_p's final loss."""
    return json.loads((_pretrained_dir(_pretrain_unit(cfg)) / "pretraining.json").read_text())


def log_leaves_bits(tokenizer, heldout: dict[str, list[str]], depth: int) -> float:
    """log2(M) / depth for the joint held-out texts: the "log-leaves" normalization (a constant per tokenizer)."""
    texts = [t for name in heldout for t in heldout[name]]
    return math.log2(compression.leaf_count(tokenizer, texts, depth)) / depth


def measure(model, tokenizer, heldout: dict[str, list[str]], *, normalization: str, depth: int,
            log_leaves: float | None = None) -> dict[str, float]:
    """Normalized compression rates (bits per token) of D_p, D_a and the parts of D_p, from their held-out texts.

    One pass of `compression.code_lengths_and_tokens` over all held-out texts; each rate is the mean of
    the per-text bits per token (`compression.compression_rate`'s "per-text" average) minus the
    normalization of `compression.normalized_compression_rate` with the joint data D = all held-out texts
    (D_1, D_2, D_3 and D_a). The joint texts are the same for every model, so "log-leaves" is one constant
    (pass it as `log_leaves` to skip recomputing it).
    """
    names = list(heldout)
    texts = [t for name in names for t in heldout[name]]
    bits, num_tokens = compression.code_lengths_and_tokens(model, tokenizer, texts)
    per_text = np.where(num_tokens > 0, bits / np.maximum(num_tokens, 1), np.nan)
    owner = np.repeat(np.arange(len(names)), [len(heldout[n]) for n in names])
    rates = {n: float(np.nanmean(per_text[owner == i])) for i, n in enumerate(names)}
    parts = [n for n in names if n in PARTS]
    rates["D_p"] = float(np.nanmean(per_text[np.isin(owner, [names.index(p) for p in parts])]))
    if normalization == "difference":
        offset = float(np.nanmean(per_text))
    elif normalization == "log-leaves":
        offset = log_leaves_bits(tokenizer, heldout, depth) if log_leaves is None else log_leaves
    else:
        offset = 0.0
    return {n: r - offset for n, r in rates.items()}


def _kl(after, before, tokenizer, heldout: dict[str, list[str]], kl_size: int, max_length: int) -> dict[str, float]:
    """KL(after || before) in nats per token on the first `kl_size` held-out texts of each dataset."""
    out = {n: scoring.kl_divergence(after, before, tokenizer, texts[:kl_size], max_length=max_length)
           for n, texts in heldout.items()}
    out["D_p"] = float(np.mean([out[p] for p in PARTS]))
    return out


def _train(model, tokenizer, texts: list[str], *, epochs: float, batch_size: int, unit: _Unit,
           learning_rate: float | None = None):
    ft = finetune.FinetuneConfig(learning_rate=learning_rate or unit.learning_rate, epochs=epochs,
                                 batch_size=batch_size, max_length=unit.pretrain.max_length, seed=unit.seed)
    return finetune.finetune(model, tokenizer, _plain(texts), ft, progress=False).model


def _compute_unit(unit: _Unit) -> dict:
    pre = unit.pretrain
    parts = pretraining_texts(pre.part_size)
    heldout = heldout_texts(unit.eval_size)
    in_dp = {t for texts in parts.values() for t in texts}
    d_a = draw(ALIGNMENT_PART, unit.alignment_size, unit.seed, in_dp)
    sizes = {l: perturbation_size(l, unit.alignment_size) for l in unit.l_values}  # noqa: E741
    d_t = draw(PERTURBATION_PART, max(sizes.values()), unit.seed, in_dp)
    union_p = [t for part in PARTS for t in parts[part]]

    def rates(model) -> dict[str, float]:
        return measure(model, tokenizer, heldout, normalization=unit.normalization, depth=unit.depth,
                       log_leaves=log_leaves)

    model, tokenizer = _load_pretrained(pre)
    log_leaves = log_leaves_bits(tokenizer, heldout, unit.depth)
    pretrained = copy.deepcopy(model)
    pretrained_rates = rates(model)
    base_joint = shuffled(union_p + d_a, unit.seed)  # joint: D_p u D_a in one seeded order
    if unit.protocol == "sequential":
        aligned = _train(model, tokenizer, d_a, epochs=unit.align_epochs, batch_size=unit.batch_size, unit=unit)
    else:
        aligned = _train(model, tokenizer, base_joint, epochs=unit.perturb_epochs, batch_size=unit.batch_size,
                         unit=unit)
    aligned.eval()
    aligned_rates = rates(aligned)
    points = [{"l": 0.0, "l_target": 0.0, "num_perturbation": 0, "rates": aligned_rates,
               "kl": dict.fromkeys(aligned_rates, 0.0)}]

    def add_point(l: float, n: int, perturbed) -> None:  # noqa: E741
        perturbed.eval()
        points.append({"l": n / unit.alignment_size, "l_target": l, "num_perturbation": n,
                       "rates": rates(perturbed),
                       "kl": _kl(perturbed, aligned, tokenizer, heldout, unit.kl_size, pre.max_length)})

    largest = max(sizes.values())
    nested = (unit.protocol == "sequential" and unit.perturb_epochs == 1.0
              and all(n % unit.perturb_batch_size == 0 for n in sizes.values()))
    if nested:
        # One pass over the first `largest` texts of D_t with a checkpoint after the first n of them, for each l.
        # `finetune` visits its first epoch in the order given at a constant learning rate, so that checkpoint
        # is exactly the model a perturbation with those n texts alone gives.
        fractions = sorted({n / largest for n in sizes.values()})
        ft = finetune.FinetuneConfig(learning_rate=unit.perturb_learning_rate, epochs=1.0,
                                     batch_size=unit.perturb_batch_size, max_length=pre.max_length, seed=unit.seed,
                                     checkpoint_fractions=tuple(fractions))
        with tempfile.TemporaryDirectory() as tmp:
            out = finetune.finetune(copy.deepcopy(aligned), tokenizer, _plain(d_t[:largest]), ft,
                                    output_dir=Path(tmp), progress=False)
            for l, n in sizes.items():  # noqa: E741
                perturbed, _ = finetune.load_checkpoint(out.checkpoints[fractions.index(n / largest)],
                                                        device=pre.device)
                add_point(l, n, perturbed)
    else:
        for l, n in sizes.items():  # noqa: E741
            if unit.protocol == "sequential":
                perturbed = _train(copy.deepcopy(aligned), tokenizer, d_t[:n], epochs=unit.perturb_epochs,
                                   batch_size=unit.perturb_batch_size, unit=unit,
                                   learning_rate=unit.perturb_learning_rate)
            else:  # joint: theta_p trained on the union with D_t; the same D_p, D_a sequence as the aligned model
                perturbed = _train(copy.deepcopy(pretrained), tokenizer, interleave(base_joint, d_t[:n], unit.seed),
                                   epochs=unit.perturb_epochs, batch_size=unit.batch_size, unit=unit)
            add_point(l, n, perturbed)
    return {"pretrained_rates": pretrained_rates, "points": points}


def _run_unit(unit: _Unit) -> dict:
    return results.load_or_run(f"{NAME}-unit", unit, _compute_unit)


DATASETS = ("D_p", "D_a", "D_1", "D_2", "D_3")


def cached_units(cfg: Config) -> list[results.Unit]:
    """The cache entries `measure_rates(cfg)` reads: theta_p's pre-training, and every (|D_a|, seed) unit."""
    return ([results.Unit(f"{NAME}-pretrain", _pretrain_unit(cfg), _build_pretrained, artifact=True)]
            + [results.Unit(f"{NAME}-unit", unit, _compute_unit) for unit in _units(cfg)])


def _units(cfg: Config) -> list[_Unit]:
    """Every (protocol, |D_a|, seed) unit, protocol by protocol."""
    return [_unit(cfg, p, n, s) for p in cfg.protocols for n in cfg.alignment_sizes for s in cfg.seeds]


def measure_rates(cfg: Config) -> pd.DataFrame:
    """Pre-train, align, perturb and measure, unit by unit (cached).

    Returns:
        `rates`: one row per (protocol, |D_a|, seed, l, dataset): the normalized compression rate (bits/token), its
        change from the aligned model (l = 0), and KL(perturbed || aligned) on the dataset's held-out
        texts (nats/token).
    """
    units = _units(cfg)
    _pretrained_dir(_pretrain_unit(cfg))  # pre-train first (cached), so that the progress bar below is honest
    rows = []
    for unit in tqdm(units, desc="measured: protocol x alignment x seed", unit="unit"):
        out = _run_unit(unit)
        k = cfg.pretraining_size / unit.alignment_size
        aligned = out["points"][0]["rates"]
        for point in out["points"]:
            for name in DATASETS:
                rows.append({"protocol": unit.protocol, "alignment_size": unit.alignment_size, "k": k,
                             "seed": unit.seed, "l": point["l"], "l_target": point["l_target"],
                             "num_perturbation": point["num_perturbation"],
                             "dataset": name, "gamma_bits": point["rates"][name],
                             "delta_gamma_bits": point["rates"][name] - aligned[name],
                             "kl_nats": point["kl"][name],
                             "pretrained_gamma_bits": out["pretrained_rates"][name]})
    return pd.DataFrame(rows)


def sizes_table(cfg: Config) -> pd.DataFrame:
    """Dataset sizes in examples and in training tokens (truncated to max_length), and k."""
    record = pretraining_record(cfg)
    tokens = record["num_tokens"]
    rows = [{"dataset": part, "examples": cfg.part_size, "tokens": tokens[part], "k": math.nan} for part in PARTS]
    rows.append({"dataset": "D_p", "examples": cfg.pretraining_size, "tokens": sum(tokens.values()), "k": math.nan})
    tokens_per_example = tokens[ALIGNMENT_PART] / cfg.part_size
    for n in cfg.alignment_sizes:
        rows.append({"dataset": f"D_a ({n})", "examples": n, "tokens": round(n * tokens_per_example),
                     "k": cfg.pretraining_size / n})
    return pd.DataFrame(rows)


