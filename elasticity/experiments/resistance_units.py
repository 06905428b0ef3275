"""Resistance's cached units: the SFT checkpoints, their samples, and the forward and inverse fine-tunes.

What trains and measures, and nothing that judges: the units' keys cover their config and this measuring
code only (the cells and verdicts are in `resistance_judge`, figures in `resistance_figures`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

import elasticity.config
from elasticity import data, finetune, generate, models, results, scoring
from elasticity.config import UserError, check_types

NAME = "resistance"  # the units' directories under the results cache: resistance-sft, -samples, -align

# The paper's three alignment datasets (Alpaca, TruthfulQA, BeaverTails), registered in `data.DATASETS`
# by hub id; a hub family runs them when `datasets` is left unset.
PAPER_DATASETS = ("alpaca", "truthfulqa", "beavertails")
OFFLINE_DATASETS = ("rotten-tomatoes", "tweets-safety")



def default_pairs(num_checkpoints: int) -> tuple[tuple[int, int], ...]:
    """The checkpoint pairs (k, l), k < l, compared by default: neighbours, then first with last.

    With 3 checkpoints these are the paper's Table 1 columns (1, 2), (2, 3), (1, 3); with 7 they are
    the seven pairs of its finer Table 2 (six neighbours and (1, 7)).
    """
    pairs = [(k, k + 1) for k in range(1, num_checkpoints)]
    if num_checkpoints > 2:
        pairs.append((1, num_checkpoints))
    return tuple(pairs)


def pair_label(pair: tuple[int, int]) -> str:
    """A Table 1 column heading: 'θ2→θ1 vs θ1→θ2' (inverse vs forward) for the pair (1, 2)."""
    early, late = pair
    return f"θ{late}→θ{early} vs θ{early}→θ{late}"


@dataclass(frozen=True)
class Config:
    """The resistance experiment.

    From the pre-trained model theta_0 of `family`, one epoch of SFT on `num_sft` examples of each dataset
    saves `num_checkpoints` checkpoints theta_1..theta_n at equal fractions of the epoch. Each checkpoint
    answers the same `num_samples` held-out prompts: dataset D_k (and `num_eval` further held-out prompts,
    never trained on, on which losses and KLs are evaluated). For each pair (k, l), forward alignment
    trains theta_k on D_l and inverse alignment trains theta_l on D_k, both for `steps` optimizer steps
    with the same learning rate, batch size and data size. Everything is repeated for each seed.
    """

    family: str = "tiny"  # key of models.FAMILIES
    size: str | None = None  # key of models.sizes(family); None: models.default_size(family)
    datasets: tuple[str, ...] = OFFLINE_DATASETS  # keys of data.DATASETS: the alignment datasets
    num_checkpoints: int = 3  # SFT checkpoints theta_1..theta_n along one epoch
    pairs: tuple[tuple[int, int], ...] | None = None  # (k, l), 1 <= k < l <= n; None: default_pairs(n)
    num_sft: int = 256  # examples in the SFT epoch that makes the checkpoints
    sft_learning_rate: float = 3e-3  # learning rate of that SFT
    num_samples: int = 128  # held-out prompts answered by each checkpoint: |D_k|, the training data
    num_eval: int = 32  # further held-out prompts each checkpoint answers, for evaluation only
    max_new_tokens: int = 24  # length of each generated response, tokens
    steps: int = 16  # optimizer steps of each forward and inverse fine-tune
    learning_rate: float = 2e-4  # learning rate of the forward and inverse fine-tunes
    batch_size: int = 8  # examples per optimizer step, everywhere
    max_length: int = 64  # tokens per training example (prompt + response), everywhere
    lora: bool = False  # LoRA instead of full fine-tuning, everywhere
    seeds: tuple[int, ...] = (0, 1, 2)  # one full replicate (SFT, sampling, fine-tunes) per seed
    device: str = "cpu"  # torch device: cpu | cuda | cuda:N | mps

    def __post_init__(self) -> None:
        if isinstance(self.pairs, list | tuple):  # papermill and YAML give lists of lists
            pairs = tuple(tuple(p) if isinstance(p, list) else p for p in self.pairs)
            object.__setattr__(self, "pairs", pairs)
        check_types(self)
        elasticity.config.choice("family", self.family, models.FAMILIES)
        if self.size is not None:
            elasticity.config.choice(f"size of family {self.family!r}", self.size, models.sizes(self.family))
        if not self.datasets:
            raise UserError("datasets is empty; give at least one key of data.DATASETS")
        for name in self.datasets:
            elasticity.config.choice("dataset", name, data.DATASETS)
        if len(set(self.datasets)) != len(self.datasets):
            raise UserError(f"datasets {self.datasets!r} repeats a name")
        if self.num_checkpoints < 2:
            raise UserError(f"num_checkpoints = {self.num_checkpoints}; needs at least 2 checkpoints to pair")
        for pair in self.pairs or ():
            early, late = pair
            if not 1 <= early < late <= self.num_checkpoints:
                raise UserError(
                    f"checkpoint pair {pair!r} is out of range; needs 1 <= k < l <= num_checkpoints "
                    f"= {self.num_checkpoints}"
                )
        if self.pairs is not None and (not self.pairs or len(set(self.pairs)) != len(self.pairs)):
            raise UserError(f"pairs {self.pairs!r} is empty or repeats a pair")
        for name in ("num_sft", "num_samples", "num_eval", "max_new_tokens", "steps", "batch_size",
                     "max_length"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} = {getattr(self, name)}; must be at least 1")
        if self.num_sft < self.num_checkpoints:
            raise UserError(f"num_sft = {self.num_sft} is fewer than num_checkpoints "
                            f"= {self.num_checkpoints}")
        for name in ("learning_rate", "sft_learning_rate"):
            if not 0 < getattr(self, name) < 1:
                raise UserError(f"{name} = {getattr(self, name)}; must be in (0, 1)")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise UserError(f"seeds {self.seeds!r} is empty or repeats a seed")
        if not elasticity.config.is_device(self.device):
            raise UserError(f"device {self.device!r} is not one of {elasticity.config.DEVICES}")

    @property
    def checkpoint_pairs(self) -> tuple[tuple[int, int], ...]:
        """The pairs (k, l) this run compares."""
        return self.pairs or default_pairs(self.num_checkpoints)

    @property
    def model(self) -> str:
        """The model's name in tables: family, and size where the family has several."""
        if len(models.sizes(self.family)) < 2:
            return self.family
        return f"{self.family}-{self.size or models.default_size(self.family)}"


# ---------------------------------------------------------------------------------------------------------
# Cached units. An interrupted run resumes at the first unit not yet cached.
#   1. `_Sft`: one epoch of SFT of theta_0 on one dataset and seed: checkpoints theta_1..theta_n (files).
#   2. `_Samples`: the held-out prompts and each checkpoint's responses D_1..D_n (training part and
#      evaluation part), with the loss of each evaluation part under its own generating checkpoint (the
#      floor that normalises Table 1's cells).
#   3. `_Align`: one forward or inverse fine-tune on one pair, its final loss and the KL to the target.
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sft:
    family: str
    size: str | None
    dataset: str
    num_sft: int
    num_checkpoints: int
    learning_rate: float
    batch_size: int
    max_length: int
    lora: bool
    seed: int
    device: str


@dataclass(frozen=True)
class _Samples:
    sft: _Sft
    num_samples: int
    num_eval: int
    max_new_tokens: int


@dataclass(frozen=True)
class _Align:
    samples: _Samples
    pair: tuple[int, int]
    direction: str  # forward: theta_k trained on D_l; inverse: theta_l trained on D_k
    steps: int
    learning_rate: float


def _sft_unit(cfg: Config, dataset: str, seed: int) -> _Sft:
    return _Sft(cfg.family, cfg.size, dataset, cfg.num_sft, cfg.num_checkpoints, cfg.sft_learning_rate,
                cfg.batch_size, cfg.max_length, cfg.lora, seed, cfg.device)


def alignment_label(dataset: str) -> str | None:
    """The label of `dataset` a model is aligned with: a rebound task's positive label ("positive",
    "safe") when a task uses the dataset, else "positive" if the dataset has it, else all examples (None).
    """
    for task in data.TASKS.values():
        if task.dataset == dataset:
            return task.positive
    return "positive" if "positive" in data.DATASETS[dataset].labels else None


def heldout_prompts(dataset: str, n: int, seed: int) -> list[str]:
    """The held-out prompts every checkpoint answers: a rebound task's prompts when a task uses the dataset
    (for Rotten Tomatoes: openings of positive and negative reviews, not of plot summaries), else the
    dataset's eval-split prompts."""
    for task in data.TASKS.values():
        if task.dataset == dataset:
            return task.eval_prompts(n, seed=seed)
    return data.prompts(dataset, "eval", n=n, seed=seed)



def _build_checkpoints(unit: _Sft, directory: Path) -> None:
    """One epoch of SFT from theta_0, saving theta_1..theta_n as `directory/theta_<k>`."""
    model, tokenizer = models.load(unit.family, size=unit.size, device=unit.device, lora=unit.lora,
                                   seed=unit.seed)
    label = alignment_label(unit.dataset)
    train = data.examples(unit.dataset, "train", n=unit.num_sft, seed=unit.seed, label=label)
    fractions = tuple((k + 1) / unit.num_checkpoints for k in range(unit.num_checkpoints))
    ft = finetune.FinetuneConfig(learning_rate=unit.learning_rate, epochs=1.0, batch_size=unit.batch_size,
                                 max_length=unit.max_length, seed=unit.seed, lora=unit.lora,
                                 checkpoint_fractions=fractions)
    out = finetune.finetune(model, tokenizer, train, ft, output_dir=directory / "run", progress=False)
    if len(out.checkpoints) != unit.num_checkpoints:
        raise RuntimeError(f"finetune saved {len(out.checkpoints)} checkpoints, "
                           f"expected {unit.num_checkpoints}")
    for k, path in enumerate(out.checkpoints, start=1):
        Path(path).rename(directory / f"theta_{k}")


def _checkpoints(unit: _Sft) -> Path:
    return results.artifact_dir(f"{NAME}-sft", unit, _build_checkpoints)


def _load_checkpoint(unit: _Sft, k: int):
    """A fresh trainable copy of theta_k of a cached SFT run, with its tokenizer."""
    return finetune.load_checkpoint(_checkpoints(unit) / f"theta_{k}", device=unit.device)


def _examples(prompts: list[str], responses: list[str]) -> list[data.Example]:
    return [data.Example(prompt=p, response=r) for p, r in zip(prompts, responses, strict=True)]


def _compute_samples(unit: _Samples) -> dict:
    sft = unit.sft
    # Nested prompts: the first num_samples are trained on, the next num_eval only evaluated on.
    prompts = heldout_prompts(sft.dataset, unit.num_samples + unit.num_eval, sft.seed)
    responses, floor = [], []
    for k in range(1, sft.num_checkpoints + 1):
        model, tokenizer = _load_checkpoint(sft, k)
        model.eval()
        texts = generate.generate(model, tokenizer, prompts, max_new_tokens=unit.max_new_tokens,
                                  seed=sft.seed, batch_size=32, progress=False)
        responses.append(texts)
        own = _examples(prompts, texts)[unit.num_samples:]
        floor.append(finetune.mean_loss(model, tokenizer, own, max_length=sft.max_length))
        del model
    return {"prompts": prompts, "responses": responses, "floor_loss_nats": floor}


def _samples(unit: _Samples) -> dict:
    return results.load_or_run(f"{NAME}-samples", unit, _compute_samples)


def _compute_align(unit: _Align) -> dict:
    sft = unit.samples.sft
    early, late = unit.pair
    start, target = (early, late) if unit.direction == "forward" else (late, early)
    samples = _samples(unit.samples)
    target_data = _examples(samples["prompts"], samples["responses"][target - 1])
    train, held_out = target_data[: unit.samples.num_samples], target_data[unit.samples.num_samples :]

    model, tokenizer = _load_checkpoint(sft, start)
    reference, _ = _load_checkpoint(sft, target)
    reference.eval()
    model.eval()
    # KL(target checkpoint || model) over the response tokens of the target's held-out answers, nats/token.
    kl_before = scoring.kl_divergence(reference, model, tokenizer, held_out, max_length=sft.max_length)

    # Same number of optimizer steps in both directions: epochs is chosen so that `steps` batches are drawn.
    batches_per_epoch = math.ceil(len(train) / sft.batch_size)
    ft = finetune.FinetuneConfig(learning_rate=unit.learning_rate, epochs=unit.steps / batches_per_epoch,
                                 batch_size=sft.batch_size, max_length=sft.max_length, seed=sft.seed,
                                 lora=sft.lora)
    out = finetune.finetune(model, tokenizer, train, ft, progress=False)
    trained = out.model
    trained.eval()
    kl_after = scoring.kl_divergence(reference, trained, tokenizer, held_out, max_length=sft.max_length)
    # The trained model's loss on the target's held-out answers, evaluated as the floor is (same examples,
    # EOS included). Unlike the final training loss it cannot be lowered by memorising the training set.
    heldout_loss = finetune.mean_loss(trained, tokenizer, held_out, max_length=sft.max_length)
    return {
        "final_loss_nats": float(out.final_loss),
        "heldout_loss_nats": float(heldout_loss),
        "losses": [float(x) for x in out.losses],
        "steps": len(out.losses),
        "kl_before_nats": float(kl_before),
        "kl_after_nats": float(kl_after),
        "target_floor_nats": float(samples["floor_loss_nats"][target - 1]),
    }


def _align(unit: _Align) -> dict:
    return results.load_or_run(f"{NAME}-align", unit, _compute_align)




# ---------------------------------------------------------------------------------------------------------
# The measurement.
# ---------------------------------------------------------------------------------------------------------


def align_units(cfg: Config) -> list[_Align]:
    """Every forward and inverse fine-tune of the experiment, dataset by dataset, seed by seed, pair by pair."""
    sfts = [_sft_unit(cfg, d, s) for d in cfg.datasets for s in cfg.seeds]
    return [
        _Align(_Samples(sft, cfg.num_samples, cfg.num_eval, cfg.max_new_tokens), pair, direction, cfg.steps,
               cfg.learning_rate)
        for sft in sfts for pair in cfg.checkpoint_pairs for direction in ("forward", "inverse")
    ]


def cached_units(cfg: Config) -> list[results.Unit]:
    """The cache entries `measure(cfg)` reads: each SFT's checkpoints, its samples, and every fine-tune."""
    aligns = align_units(cfg)
    samples = list(dict.fromkeys(a.samples for a in aligns))
    sfts = list(dict.fromkeys(s.sft for s in samples))
    return ([results.Unit(f"{NAME}-sft", u, _build_checkpoints, artifact=True) for u in sfts]
            + [results.Unit(f"{NAME}-samples", u, _compute_samples) for u in samples]
            + [results.Unit(f"{NAME}-align", u, _compute_align) for u in aligns])


def measure(cfg: Config) -> dict:
    """Every dataset, seed and checkpoint pair's forward and inverse fine-tune, computed unit by unit.

    Returns:
        A dict of tidy DataFrames:
        `runs`: one row per (dataset, seed, pair, direction): final training loss (nats/token, the
            paper's Table 1 quantity: mean over the last 10% of steps); on the target checkpoint's answers
            to the `num_eval` evaluation prompts: the trained model's loss (`heldout_loss_nats`), the
            target checkpoint's own loss (`target_floor_nats`), the excess (`heldout_loss_nats -
            target_floor_nats`), the KL (nats/token) from the target checkpoint to the model before and
            after training, and its change (`kl_change_nats` = before - after).
        `curves`: the per-step training loss of every fine-tune.
    """
    units = align_units(cfg)
    rows, curves = [], []
    outs = [_align(unit) for unit in tqdm(units, desc="resistance: fine-tunes", unit="run")]
    for unit, out in zip(units, outs, strict=True):
        sft = unit.samples.sft
        key = {"dataset": sft.dataset, "model": cfg.model, "seed": sft.seed, "k": unit.pair[0],
               "l": unit.pair[1], "pair": pair_label(unit.pair), "direction": unit.direction}
        names = ("final_loss_nats", "heldout_loss_nats", "target_floor_nats", "kl_before_nats", "kl_after_nats",
                 "steps")
        rows.append({**key, **{n: out[n] for n in names}})
        curves.extend({**key, "step": i + 1, "loss_nats": x} for i, x in enumerate(out["losses"]))
    runs = pd.DataFrame(rows)
    runs["excess_loss_nats"] = runs["heldout_loss_nats"] - runs["target_floor_nats"]
    runs["kl_change_nats"] = runs["kl_before_nats"] - runs["kl_after_nats"]
    return {"runs": runs, "curves": pd.DataFrame(curves)}
