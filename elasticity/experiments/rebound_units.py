"""Rebound's cached units: positive fine-tuning, then negative fine-tuning, scored along the way.

What trains and measures, and nothing that judges: the rebound, model-size and pre-training-volume
chapters share these units, whose keys cover their config and this measuring code only (summaries and
verdicts are in `rebound_judge`, figures in `rebound_figures`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

import elasticity.config
from elasticity import compression, data, finetune, generate, models, parallel, preference, results, scoring
from elasticity.config import UserError, check_types

NAME = "rebound"  # the units' directories under the results cache: rebound-base, rebound-unit

REVERSE_METHODS = ("sft", *preference.ALGORITHMS)  # how the reverse step is trained
REVERSE_NAMES = {"sft": "SFT", **preference.NAMES}  # as tables, figures and verdicts write them


class Steps(NamedTuple):
    """The data of a curve's two steps: of the first (SFT) and of the second (the reverse step)."""

    first: str
    second: str


# The order of the two steps, by direction: the paper's (positive data first, then negative), or reversed (its
# Figure 8: negative data first, then positive; the second step by SFT).
STEPS = {"forward": Steps("positive", "negative"), "reversed": Steps("negative", "positive")}
DIRECTIONS = tuple(STEPS)

OFFLINE_TASKS = ("sentiment", "safety")  # data.TASKS run offline
PAPER_TASKS = ("sentiment-imdb", "safety-beavertails")  # the paper's IMDb and BeaverTails tasks (hub)

_HUB_SCORERS = ("sentiment-roberta", "beaver-cost")  # scorers that run a model (and take a device)
# Prompts sampled together at an evaluation: the default 48 in one batch (a second, partial batch of 16
# cost a third more time on the CPU for the tiny model, and a second decoding loop on a GPU).
GENERATE_BATCH = 64


def _sd(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan



# ---------------------------------------------------------------------------------------------------------
# The protocol's configuration, shared by the rebound, model-size and pre-training-volume experiments.
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Protocol:
    """The rebound protocol (paper §5.2), fields shared by the three chapters that run it.

    From a pre-trained model, SFT on `positive_size` positive examples (for each of `positive_sizes`),
    `positive_epochs` passes over them, gives an aligned model; SFT on negative examples then runs for one
    epoch over the largest of `negative_sizes`, and the model is evaluated after each of `negative_sizes`
    examples (see `_negative_run` for why one run stands in for separate runs, under our assumption about
    the paper's schedule). Each evaluation samples responses to the same `num_prompts` held-out prompts
    and scores them with the task's scorer; the KL from the base model is measured on `kl_texts` held-out
    examples of the task.
    """

    family: str = "tiny"  # key of models.FAMILIES
    positive_sizes: tuple[int, ...] = (50, 100, 250, 500)  # positive SFT examples (paper: 1k, 2k, 5k, 10k)
    negative_sizes: tuple[int, ...] = (5, 10, 25, 50, 100)  # negative examples (paper: 100 ... 2,000)
    initial_negative: int = 10  # the "first negative examples": the initial slope runs from 0 to here
    num_prompts: int = 48  # held-out prompts answered at each evaluation
    max_new_tokens: int = 24  # tokens generated per prompt
    kl_texts: int = 32  # held-out task examples (half positive) for the KL to the base and the bits per token
    learning_rate: float = 2e-3  # learning rate of the positive and negative SFT (constant)
    positive_epochs: float = 1.0  # passes over the positive examples (paper: not reported); negative: one
    batch_size: int = 5  # examples per optimizer step; divides every negative size
    max_length: int = 64  # tokens per training example (prompt + response)
    lora: bool = False  # LoRA instead of full fine-tuning
    seeds: tuple[int, ...] = (0, 1, 2)  # one replicate (data order, fine-tunes, sampling) per seed
    device: str = "cpu"  # torch device: cpu | cuda | cuda:N | mps

    def _check_protocol(self) -> None:
        elasticity.config.choice("family", self.family, models.FAMILIES)
        for name in ("positive_sizes", "negative_sizes", "seeds"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise UserError(f"{name} {values!r} is empty or repeats a value")
        for name in ("positive_sizes", "negative_sizes"):
            values = getattr(self, name)
            if list(values) != sorted(values) or values[0] < 1:
                raise UserError(f"{name} {values!r} must be increasing positive integers")
        if len(self.negative_sizes) < 3:
            raise UserError(f"negative_sizes {self.negative_sizes!r} needs at least 3 sizes to show two phases")
        if self.initial_negative not in self.negative_sizes[:-1]:
            raise UserError(f"initial_negative = {self.initial_negative} must be one of negative_sizes "
                            f"{self.negative_sizes[:-1]!r} (not the last)")
        for name in ("num_prompts", "max_new_tokens", "kl_texts", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} = {getattr(self, name)}; must be at least 1")
        for n in self.negative_sizes:
            if n % self.batch_size:
                raise UserError(f"negative size {n} is not a multiple of batch_size = {self.batch_size}; "
                                "the negative curve is read after whole optimizer steps")
        if not 0 < self.learning_rate < 1:
            raise UserError(f"learning_rate = {self.learning_rate}; must be in (0, 1)")
        if not self.positive_epochs > 0:
            raise UserError(f"positive_epochs = {self.positive_epochs}; must be positive")
        if not elasticity.config.is_device(self.device):
            raise UserError(f"device {self.device!r} is not one of {elasticity.config.DEVICES}")

    def _check_tasks(self, tasks) -> None:
        if not tasks or len(set(tasks)) != len(tasks):
            raise UserError(f"tasks {tasks!r} is empty or repeats a task")
        for name in tasks:
            elasticity.config.choice("task", name, data.TASKS)


@dataclass(frozen=True)
class Sweep(Protocol):
    """The rebound protocol on one task, repeated over models: the base of the model-size and pre-training
    volume experiments, which add the models swept (sizes, token budgets). Two positive sizes by default,
    the ends of the rebound chapter's grid."""

    positive_sizes: tuple[int, ...] = (50, 500)  # positive SFT examples (paper: 1k ... 10k)
    task: str = "sentiment"  # key of data.TASKS (paper: IMDb)

    def _check_sweep(self) -> None:
        check_types(self)
        self._check_protocol()
        self._check_tasks((self.task,))


# The smoke-scale protocol: a `Sweep`'s smoke preset, and the rebound chapter's with a second positive size.
SWEEP_SMOKE = dict(positive_sizes=(8,), negative_sizes=(4, 8, 16), initial_negative=8, num_prompts=4,
                   max_new_tokens=6, kl_texts=4, batch_size=4, max_length=32, seeds=(0, 1))



# ---------------------------------------------------------------------------------------------------------
# Cached units, shared by the three chapters (their keys hold no chapter-specific field):
#   `BaseUnit`: the pre-trained model's score on the held-out prompts (the reference line).
#   `PositiveUnit`: one first SFT (positive data; negative in the reversed direction), kept as an artifact (its
#   trained weights) that its curves start from.
#   `Unit`: one reverse run (SFT or a preference algorithm) from such a model, evaluated along the way.
# An interrupted run resumes at the first unit not yet cached.
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseUnit:
    """The base model's evaluation on one task and seed."""

    task: str
    family: str
    size: str
    budget_tokens: int | None
    num_prompts: int
    max_new_tokens: int
    kl_texts: int
    seed: int
    device: str


@dataclass(frozen=True)
class PositiveUnit:
    """The first SFT of one task, model and seed: the aligned model that its SFT and preference curves start from
    (on the task's negative data instead, `label` "negative", in the reversed direction)."""

    task: str
    family: str
    size: str
    budget_tokens: int | None
    label: str  # "positive" | "negative": the examples it trains on
    positive_size: int
    learning_rate: float
    positive_epochs: float
    batch_size: int
    max_length: int
    lora: bool
    seed: int
    device: str


@dataclass(frozen=True)
class Unit:
    """One curve: positive SFT on `positive_size` examples (none for the control arm, size 0), then the negative
    run of `reverse`; the KL to the base model measured at every evaluation where `kl` (the KL table's curves).

    In the `reversed` direction the two steps swap their data: SFT on `positive_size` negative examples first,
    then SFT on positive examples, read at `negative_sizes` (the grids keep their names: first and second step).
    """

    task: str
    family: str
    size: str
    budget_tokens: int | None
    direction: str  # of DIRECTIONS
    positive_size: int
    negative_sizes: tuple[int, ...]
    reverse: str  # of REVERSE_METHODS (SFT only in the reversed direction)
    num_prompts: int
    max_new_tokens: int
    kl_texts: int
    learning_rate: float  # of the positive SFT and of a negative SFT
    positive_epochs: float  # passes of the positive SFT over its examples
    reverse_learning_rate: float  # of the negative step (= learning_rate for SFT)
    beta: float  # of a preference algorithm (its `preference.DEFAULT_BETA`); unused (0.0) for SFT
    batch_size: int
    max_length: int
    lora: bool
    kl: bool
    seed: int
    device: str


def default_size(family: str) -> str:
    """The size `models.load(family)` returns when no size is given."""
    return models.default_size(family)


def canonical_model(family: str, size: str | None, budget_tokens: int | None) -> tuple[str, int | None]:
    """(size, budget) written the same way for the same model, so that the chapters share cached units.

    The size is always named (None becomes the family's default size); the final pre-training budget
    (the checkpoint a plain `models.load` returns) is written as None.
    """
    if size is None:
        size = default_size(family)
    if budget_tokens is not None:
        budgets = models.budgets(family)
        if budgets and budget_tokens == max(budgets):
            budget_tokens = None
    return size, budget_tokens


def base_unit(p: Protocol, task: str, size: str | None, budget: int | None, seed: int) -> BaseUnit:
    """The base-model unit of a protocol for one task, model and seed."""
    size, budget = canonical_model(p.family, size, budget)
    return BaseUnit(task, p.family, size, budget, p.num_prompts, p.max_new_tokens, p.kl_texts, seed, p.device)


def unit(p: Protocol, task: str, size: str | None, budget: int | None, positive_size: int, seed: int,
         reverse: str = "sft", reverse_learning_rate: float | None = None, kl: bool = False,
         direction: str = "forward") -> Unit:
    """The curve unit of a protocol for one task, model, positive size (0: the control arm, negative fine-tuning
    of the base model), seed, reverse method (SFT at the protocol's learning rate, or a preference algorithm at
    `reverse_learning_rate` with its default beta) and direction; `kl`: measure the KL to the base model along it."""
    elasticity.config.choice("reverse", reverse, REVERSE_METHODS)
    elasticity.config.choice("direction", direction, DIRECTIONS)
    if direction == "reversed" and reverse != "sft":
        raise UserError(f"the reversed direction's second step is SFT, not {reverse!r}")
    size, budget = canonical_model(p.family, size, budget)
    beta = 0.0
    if reverse == "sft":
        reverse_learning_rate = p.learning_rate
    else:
        beta = preference.DEFAULT_BETA[reverse]
    return Unit(task, p.family, size, budget, direction, positive_size, p.negative_sizes, reverse, p.num_prompts,
                p.max_new_tokens, p.kl_texts, p.learning_rate, p.positive_epochs, reverse_learning_rate, beta,
                p.batch_size, p.max_length, p.lora, kl, seed, p.device)


def positive_unit(u: Unit) -> PositiveUnit:
    """The first SFT a curve unit starts from (the same for its SFT and preference curves)."""
    return PositiveUnit(u.task, u.family, u.size, u.budget_tokens, STEPS[u.direction].first, u.positive_size,
                        u.learning_rate, u.positive_epochs, u.batch_size, u.max_length, u.lora, u.seed, u.device)


def model_label(family: str, size: str, budget: int | None) -> str:
    """The model's name in tables: family, size where the family has several, budget where not the final one."""
    name = family if len(models.sizes(family)) < 2 else f"{family}-{size}"
    return name if budget is None else f"{name}@{budget:,} tokens"


def _load(u: BaseUnit | PositiveUnit | Unit):
    # LoRA adapters, when asked for, are added by the positive fine-tune (and trained on by the negative one).
    return models.load(u.family, size=u.size, budget_tokens=u.budget_tokens, device=u.device)


def _prompts(task: data.Task, n: int) -> list[str]:
    # The same held-out prompts for every seed and model, so curves differ only by training and sampling.
    return task.eval_prompts(n, seed=0)


def _held_out(task: data.Task, n: int) -> dict[str, list[data.Example]]:
    # Held-out examples of the task by label, half positive and half negative: the KL counts their response
    # tokens (positive first), the compression readout their whole texts.
    half = n // 2
    return {"positive": data.examples(task.dataset, "eval", n=n - half, seed=0, label=task.positive),
            "negative": data.examples(task.dataset, "eval", n=half, seed=0, label=task.negative)}


def _bits_per_token(model, tokenizer, texts: list[str]) -> float:
    # The model's compression rate of the texts: their total ideal code length over their tokens.
    bits, tokens = compression.code_lengths_and_tokens(model, tokenizer, texts)
    return float(bits.sum() / tokens.sum())


def _evaluate(model, tokenizer, task: data.Task, prompts: list[str], seed: int, max_new_tokens: int,
              device: str, held_out: dict[str, list[data.Example]]) -> dict:
    """The readouts of one model: its sampled responses scored (mean score, and the share judged positive or
    safe, the paper's), and its bits per token on held-out positive and negative text."""
    texts = generate.generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, seed=seed,
                              batch_size=GENERATE_BATCH, progress=False)
    # The continuation alone is scored (the prompt is the same for every model); the cost model of the
    # BeaverTails task reads the question too.
    values = scoring.score(task.scorer, texts, prompts=prompts, **({"device": device} if task.scorer in
                                                                     _HUB_SCORERS else {}))
    return {"score": float(np.mean(values)), "score_sd": _sd(values),
            "share_positive": float(np.mean(values >= scoring.get_scorer(task.scorer).threshold)),
            "bits_positive": _bits_per_token(model, tokenizer, [e.text for e in held_out["positive"]]),
            "bits_negative": _bits_per_token(model, tokenizer, [e.text for e in held_out["negative"]]),
            "example": texts[0]}


def _compute_base(u: BaseUnit) -> dict:
    task = data.task(u.task)
    model, tokenizer = _load(u)
    return _evaluate(model, tokenizer, task, _prompts(task, u.num_prompts), u.seed, u.max_new_tokens, u.device,
                     _held_out(task, u.kl_texts))


def _preference_pairs(negative: list[data.Example], rejected: list[str]) -> list[dict]:
    # A negative-preferred pair on one prompt: a negative example's prompt, its own (negative) response chosen,
    # and `rejected`, the positive model's own answer to that prompt.
    return [{"prompt": n.prompt, "chosen": n.response, "rejected": r} for n, r in zip(negative, rejected, strict=True)]


def _negative_run(u: Unit, model, tokenizer, negative: list[data.Example], evaluate) -> list[dict]:
    """Train on the negative data for one epoch, evaluating after each of `u.negative_sizes` examples.

    One run read at increasing sizes stands in for separate runs on the nested subsets: `finetune` uses a
    constant learning rate and visits the first epoch's examples in the order given, so the model after
    the first n examples of the run is the model a separate one-epoch, constant-rate run on those n
    examples would give (same initial model, same batches in the same order, same optimizer state). The
    paper does not report its epochs, schedule or learning rate, so that separate runs of this kind are
    its protocol is our assumption. (DPO, through trl, shuffles the pairs with the seed, so its first n
    pairs are a seeded random n-subset rather than the first n.)
    """
    if u.reverse in preference.ALGORITHMS:
        # Both answers of a pair answer the same prompt: the rejected one is the positive model's own sample
        # (as long as the training window allows), so the pair differs in sentiment, not in prompt coherence.
        rejected = generate.generate(model, tokenizer, [n.prompt for n in negative], max_new_tokens=u.max_length,
                                     seed=u.seed, batch_size=GENERATE_BATCH, progress=False)
        return _preference_run(u, model, tokenizer, _preference_pairs(negative, rejected), evaluate)
    steps_at = {n // u.batch_size: n for n in u.negative_sizes}
    rows: list[dict] = []

    def on_step(step: int, loss: float) -> None:  # noqa: ARG001
        if step in steps_at:
            rows.append({"negative_examples": steps_at[step], **evaluate(model)})

    ft = finetune.FinetuneConfig(learning_rate=u.reverse_learning_rate, epochs=1.0, batch_size=u.batch_size,
                                 max_length=u.max_length, seed=u.seed, lora=u.lora)
    finetune.finetune(model, tokenizer, negative, ft, progress=False, on_step=on_step)
    return rows


def _preference_run(u: Unit, model, tokenizer, pairs: list[dict], evaluate) -> list[dict]:
    """The reverse step by a preference algorithm (`preference.train`), the positive model its own frozen
    reference, evaluated after each of `u.negative_sizes` pairs."""
    steps_at = {n // u.batch_size: n for n in u.negative_sizes}
    rows: list[dict] = []

    def on_step(step: int, trained) -> None:
        if step in steps_at:
            rows.append({"negative_examples": steps_at[step], **evaluate(trained)})

    cfg = preference.PreferenceConfig(u.reverse, learning_rate=u.reverse_learning_rate, batch_size=u.batch_size,
                                      max_length=u.max_length, seed=u.seed, beta=u.beta, device=u.device)
    preference.train(model, tokenizer, pairs, cfg, on_step=on_step)
    if [r["negative_examples"] for r in rows] != list(u.negative_sizes):
        raise RuntimeError(f"{u.reverse} evaluated after {[r['negative_examples'] for r in rows]} examples, "
                           f"expected {list(u.negative_sizes)}")
    return rows


def _positive_config(p: PositiveUnit) -> finetune.FinetuneConfig:
    return finetune.FinetuneConfig(learning_rate=p.learning_rate, epochs=p.positive_epochs, batch_size=p.batch_size,
                                   max_length=p.max_length, seed=p.seed, lora=p.lora)


def _build_positive(p: PositiveUnit, directory: Path) -> None:
    """The first SFT of the base model (on the task's positive examples, or its negative ones where `p.label` says
    so); writes the trained weights (all of them, or the LoRA adapters) and the final training loss."""
    import torch

    task = data.task(p.task)
    label = task.positive if p.label == "positive" else task.negative
    first = data.examples(task.dataset, "train", n=p.positive_size, seed=p.seed, label=label)
    model, tokenizer = _load(p)
    trained = finetune.finetune(model, tokenizer, first, _positive_config(p), progress=False)
    torch.save(finetune.trainable_state(trained.model), directory / "weights.pt")
    (directory / "positive.json").write_text(json.dumps({"final_loss_nats": trained.final_loss}))


def _positive_model(u: Unit, model) -> tuple[object, float]:
    """(`model`, the freshly loaded base model, turned into the positive model of `u`; its final SFT loss).

    The positive SFT runs once per task, model, size and seed (a cache artifact, `_build_positive`) and every
    curve from it reads its weights back: exactly the model in memory at the end of that SFT (float32 weights
    saved and loaded bit for bit; LoRA adapters added to the base as the SFT added them).
    """
    import torch

    p = positive_unit(u)
    directory = results.artifact_dir(f"{NAME}-positive", p, _build_positive)
    ft = _positive_config(p)
    if ft.lora:
        model = models.add_lora(model, r=ft.lora_r, seed=ft.seed)
    weights = torch.load(directory / "weights.pt", map_location=u.device, weights_only=True)
    params = dict(model.named_parameters())
    if weights.keys() != {name for name, value in params.items() if value.requires_grad}:
        raise RuntimeError(f"{directory} holds other trained weights than this model's")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    model.eval()
    return model, json.loads((directory / "positive.json").read_text())["final_loss_nats"]


def _compute_unit(u: Unit) -> dict:
    task = data.task(u.task)
    prompts = _prompts(task, u.num_prompts)
    held_out = _held_out(task, u.kl_texts)
    kl_texts = held_out["positive"] + held_out["negative"]
    # The reverse step's data: negative examples (positive ones in the reversed direction).
    label = task.negative if STEPS[u.direction].second == "negative" else task.positive
    reverse_data = data.examples(task.dataset, "train", n=u.negative_sizes[-1], seed=u.seed, label=label)

    model, tokenizer = _load(u)
    # The base model enters only the KL to base: its log-probabilities on the KL texts, computed once here
    # (not at each of the unit's evaluations), stand in for it, and no second copy of it stays in memory.
    base = scoring.text_log_probs(model, tokenizer, kl_texts, max_length=u.max_length) if u.kl else None

    def evaluate(m) -> dict:
        out = _evaluate(m, tokenizer, task, prompts, u.seed, u.max_new_tokens, u.device, held_out)
        # KL(tuned || base), nats per token, on held-out task text: "KL from the base" of Table 3 (NaN: not measured).
        out["kl_to_base_nats"] = math.nan if base is None else float(
            scoring.kl_divergence(m, base, tokenizer, kl_texts, max_length=u.max_length))
        return out

    if u.positive_size == 0:  # the control arm: the base model is fine-tuned on the negative data directly
        final_loss = math.nan
    else:
        model, final_loss = _positive_model(u, model)
    rows = [{"negative_examples": 0, **evaluate(model), "positive_final_loss_nats": final_loss}]
    return {"rows": rows + _negative_run(u, model, tokenizer, reverse_data, evaluate)}


def cache_entry(u: BaseUnit | Unit) -> results.Unit:
    """A unit as the results cache sees it: its kind's name, the unit, and the function that computes it."""
    if isinstance(u, BaseUnit):
        return results.Unit(f"{NAME}-base", u, _compute_base)
    return results.Unit(f"{NAME}-unit", u, _compute_unit)


def compute(u: BaseUnit | Unit) -> dict:
    """The cached result of one base or curve unit, computed first if it is missing."""
    return cache_entry(u).result()


def pending(units: list) -> list:
    """The units not cached yet, the longest first (positive examples times epochs plus negative examples;
    DPO and KTO count twice, for their reference model; a positive SFT counts in every curve that may train it
    first): so that worker processes finish together."""
    def cost(u) -> float:
        if isinstance(u, BaseUnit):
            return 0
        anchored = u.reverse in preference.ANCHORED
        return (u.positive_size * u.positive_epochs + u.negative_sizes[-1]) * (2 if anchored else 1)

    def cached(u) -> bool:
        return cache_entry(u).is_cached()

    return sorted((u for u in units if not cached(u)), key=cost, reverse=True)


def measure(units: list, desc: str, workers: int | None = None) -> list[dict]:
    """The cached results of base and curve units, computing the missing ones with a progress bar: in this
    process, or in `workers` processes (default `parallel.workers()`, from `ELASTICITY_WORKERS`)."""
    workers = parallel.workers() if workers is None else workers
    for family, device in {(u.family, u.device) for u in units}:
        parallel.check_fits(workers, family, device)
    if workers == 1:
        return list(parallel.map_unordered(compute, units, 1, desc))
    for _ in parallel.map_unordered(compute, pending(units), workers, desc):
        pass
    return [compute(u) for u in units]


def _unit_fields(u: BaseUnit | Unit) -> dict:
    keep = ("task", "family", "size", "budget_tokens", "direction", "positive_size", "reverse", "seed")
    row = {f.name: getattr(u, f.name) for f in fields(u) if f.name in keep}
    row["model"] = model_label(u.family, u.size, u.budget_tokens)
    return row


# The readouts of every evaluation (`_evaluate`), each higher for a more positive (safer) model: the mean score,
# the share of responses judged positive or safe (the paper's), and the compression gap, the model's bits per
# token on held-out negative text less on positive text (how much better it compresses positive text).
READOUTS = ("score", "share_positive", "bits_gap")
MEASURED = ("score", "score_sd", "share_positive", "bits_positive", "bits_negative")


def collect(units: list, desc: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run units; return (curves, base): tidy frames, one row per evaluation.

    `curves`: task, model, family, size, budget_tokens, reverse, positive_size (0: the control arm), seed,
    negative_examples (0 = right after the positive SFT), score (mean over prompts; scorer's units), score_sd
    (over prompts), share_positive (share of responses at or above the scorer's threshold), bits_positive and
    bits_negative (bits per token on held-out positive and negative text), bits_gap (bits_negative -
    bits_positive), kl_to_base_nats. `base`: the same keys and readouts, without the curve's and the KL.
    """
    curve_rows, base_rows = [], []
    for u, out in zip(units, measure(units, desc), strict=True):
        key = _unit_fields(u)
        if isinstance(u, BaseUnit):
            base_rows.append({**key, **{k: out[k] for k in MEASURED}})
        else:
            for row in out["rows"]:
                curve_rows.append({**key, "negative_examples": row["negative_examples"],
                                   **{k: row[k] for k in (*MEASURED, "kl_to_base_nats")}})
    curves, base = pd.DataFrame(curve_rows), pd.DataFrame(base_rows)
    for frame in (curves, base):
        frame["bits_gap"] = frame["bits_negative"] - frame["bits_positive"]
    return curves, base


def check_data(p: Protocol, tasks, positive_sizes, negative: int | None = None) -> None:
    """Raise a `UserError` before any training if a task lacks the examples or prompts asked for (`negative`
    negative examples; None: the largest negative size)."""
    for name in tasks:
        task = data.task(name)
        data.examples(task.dataset, "train", n=max(positive_sizes), label=task.positive)
        data.examples(task.dataset, "train", n=negative or p.negative_sizes[-1], label=task.negative)
        task.eval_prompts(p.num_prompts)
        _held_out(task, p.kl_texts)


# ---------------------------------------------------------------------------------------------------------
