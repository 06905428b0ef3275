"""Rebound: positive fine-tuning, then negative fine-tuning, scored on held-out prompts (Figures 4 and 7, Table 3)."""

from __future__ import annotations

import copy
import math
import re
import tempfile
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

import elasticity.config
from elasticity import data, finetune, generate, models, paper, parallel, plotting, results, scoring, verdicts
from elasticity.config import UserError, check_types

NAME = "rebound"
CHAPTER = "rebound"  # the notebook stem that shows this experiment

REVERSE_METHODS = ("sft", "dpo")  # how the negative (reverse) step is trained
OFFLINE_TASKS = ("sentiment", "safety")  # data.TASKS run offline
PAPER_TASKS = ("sentiment-imdb", "safety-beavertails")  # the paper's IMDb and BeaverTails tasks (hub)
# What the paper reports for the end of the negative curves (Figure 4, per CY-F and KO): the IMDb curves
# fall below the base model's level, the BeaverTails curves converge near it. Each task is matched to
# the paper's task it stands in for.
END_SHAPE = {"sentiment": "below", "sentiment-imdb": "below", "safety": "near", "safety-beavertails": "near"}

_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")
_HUB_SCORERS = ("sentiment-roberta", "beaver-cost")  # scorers that run a model (and take a device)
# Prompts sampled together at an evaluation: the default 48 in one batch (a second, partial batch of 16
# cost a third more time on the CPU for the tiny model, and a second decoding loop on a GPU).
GENERATE_BATCH = 64


def _sd(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def mean_se(values) -> tuple[float, float]:
    """Mean and standard error (sd / sqrt(n), NaN for n < 2) of a sequence of numbers."""
    values = np.asarray(values, dtype=float)
    return float(np.mean(values)), _sd(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan


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
    kl_texts: int = 32  # held-out task examples on which the KL to the base model is measured
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
        if not _DEVICE.match(self.device):
            raise UserError(f"device {self.device!r} is not one of cpu, cuda, cuda:N, mps")

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


@dataclass(frozen=True)
class Config(Protocol):
    """The rebound experiment: both tasks, one model, every positive size, SFT (and DPO) reverse steps."""

    tasks: tuple[str, ...] = OFFLINE_TASKS  # keys of data.TASKS
    size: str | None = None  # key of models.sizes(family); None: the family's default size
    dpo_task: str | None = "sentiment"  # task of the DPO ablation (paper: IMDb); None: no ablation
    dpo_positive_sizes: tuple[int, ...] = (50, 500)  # positive sizes the DPO ablation starts from
    dpo_beta: float = 0.1  # DPO's beta (strength of the KL anchor to the reference model)
    dpo_learning_rate: float = 2e-3  # learning rate of the DPO reverse step (constant)
    kl_task: str = "safety"  # task of the KL-to-base table (paper: BeaverTails)
    kl_epsilon: float = 0.01  # KL threshold (nats/token) of the table's "negative examples to return"

    def __post_init__(self) -> None:
        check_types(self)
        self._check_protocol()
        self._check_tasks(self.tasks)
        if self.size is not None:
            elasticity.config.choice(f"size of family {self.family!r}", self.size, models.sizes(self.family))
        if self.dpo_task is not None:
            elasticity.config.choice("dpo_task", self.dpo_task, data.TASKS)
            if not self.dpo_positive_sizes or len(set(self.dpo_positive_sizes)) != len(self.dpo_positive_sizes):
                raise UserError(f"dpo_positive_sizes {self.dpo_positive_sizes!r} is empty or repeats a size")
            if min(self.dpo_positive_sizes) < 1:
                raise UserError(f"dpo_positive_sizes {self.dpo_positive_sizes!r} must be positive integers")
        elasticity.config.choice("kl_task", self.kl_task, self.tasks)
        for name in ("dpo_beta", "kl_epsilon"):
            if not getattr(self, name) > 0:
                raise UserError(f"{name} = {getattr(self, name)}; must be positive")
        if not 0 < self.dpo_learning_rate < 1:
            raise UserError(f"dpo_learning_rate = {self.dpo_learning_rate}; must be in (0, 1)")


PRESETS = {
    # The paper's sizes divided by 20 (positive 1k..10k -> 50..500; negative 100..2,000 -> 5..100), which
    # keeps every ratio (positive:negative, and the spacing of each grid) and fits the CPU time budget.
    # Ten positive passes (the paper's epochs are unknown): on tiny-l (seeds 0-2, positive sizes 50 and 500)
    # one, three and five passes left the positive SFT lift (start - base) within the seed noise on both
    # tasks; ten resolved it on sentiment and brought safety after 500 examples to the level of its positive
    # training data (the measurements are in the commit message that set it).
    "default": Config(positive_epochs=10.0),
    "smoke": Config(**{**SWEEP_SMOKE, "positive_sizes": (8, 16)}, dpo_positive_sizes=(8, 16)),
}


# The presets' learning rates and positive epochs suit the tiny family, pre-trained here at 2e-3 to 5e-3. A
# pre-trained model (SmolLM2, the hub families) is fine-tuned at a rate typical of full SFT of such models
# instead, for one positive pass.
PRETRAINED_LEARNING_RATE = 2e-5  # SFT of a pre-trained family, unless given
PRETRAINED_DPO_LEARNING_RATE = 5e-6  # DPO of a pre-trained family, unless given
PRETRAINED_POSITIVE_EPOCHS = 1.0  # positive SFT passes of a pre-trained family, unless given


def family_defaults(family: str, overrides: dict) -> dict:
    """`overrides` with the learning rate and positive epochs of a pre-trained family filled in where unset."""
    if family == "tiny":
        return overrides
    out = dict(overrides)
    if out.get("learning_rate") is None:
        out["learning_rate"] = PRETRAINED_LEARNING_RATE
    if out.get("positive_epochs") is None:
        out["positive_epochs"] = PRETRAINED_POSITIVE_EPOCHS
    return out


def preset_config(presets: dict, overrides: dict):
    """`presets[scale]` with the non-None `overrides`, the learning rates of a pre-trained family filled in
    (`family_defaults`); the `config` function of the model-size and pre-training-volume experiments."""
    base = presets[elasticity.config.scale()]
    return elasticity.config.replace(base, **family_defaults(overrides.get("family") or base.family, overrides))


def config(**overrides) -> Config:
    """The preset of the current scale (`ELASTICITY_SCALE`) with the non-None overrides.

    A family other than tiny is fine-tuned at `PRETRAINED_LEARNING_RATE` (and DPO at
    `PRETRAINED_DPO_LEARNING_RATE`) for `PRETRAINED_POSITIVE_EPOCHS` positive passes unless told otherwise;
    a hub family (not tiny or smollm2-135m) runs the paper's tasks (IMDb, BeaverTails) when `tasks` is unset.
    """
    family = overrides.get("family") or PRESETS[elasticity.config.scale()].family
    if family != "tiny" and overrides.get("dpo_learning_rate") is None:
        overrides["dpo_learning_rate"] = PRETRAINED_DPO_LEARNING_RATE
    if overrides.get("tasks") is None and family not in ("tiny", "smollm2-135m"):
        overrides = {**overrides, "tasks": PAPER_TASKS, "dpo_task": PAPER_TASKS[0], "kl_task": PAPER_TASKS[1]}
    return preset_config(PRESETS, overrides)


# ---------------------------------------------------------------------------------------------------------
# Cached units, shared by the three chapters (their keys hold no chapter-specific field):
#   `BaseUnit`: the pre-trained model's score on the held-out prompts (the reference line).
#   `Unit`: one positive SFT, then one negative run (SFT or DPO) evaluated along the way.
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
    seed: int
    device: str


@dataclass(frozen=True)
class Unit:
    """One curve: positive SFT on `positive_size` examples, then the negative run of `reverse`."""

    task: str
    family: str
    size: str
    budget_tokens: int | None
    positive_size: int
    negative_sizes: tuple[int, ...]
    reverse: str  # "sft" | "dpo"
    num_prompts: int
    max_new_tokens: int
    kl_texts: int
    learning_rate: float  # of the positive SFT and of a negative SFT
    positive_epochs: float  # passes of the positive SFT over its examples
    reverse_learning_rate: float  # of the negative step (= learning_rate for SFT)
    dpo_beta: float  # unused (0.0) for SFT
    batch_size: int
    max_length: int
    lora: bool
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
    return BaseUnit(task, p.family, size, budget, p.num_prompts, p.max_new_tokens, seed, p.device)


def unit(p: Protocol, task: str, size: str | None, budget: int | None, positive_size: int, seed: int,
         reverse: str = "sft", reverse_learning_rate: float | None = None, dpo_beta: float = 0.0) -> Unit:
    """The curve unit of a protocol for one task, model, positive size, seed and reverse method."""
    size, budget = canonical_model(p.family, size, budget)
    if reverse == "sft":
        reverse_learning_rate, dpo_beta = p.learning_rate, 0.0
    return Unit(task, p.family, size, budget, positive_size, p.negative_sizes, reverse, p.num_prompts,
                p.max_new_tokens, p.kl_texts, p.learning_rate, p.positive_epochs, reverse_learning_rate, dpo_beta,
                p.batch_size, p.max_length, p.lora, seed, p.device)


def model_label(family: str, size: str, budget: int | None) -> str:
    """The model's name in tables: family, size where the family has several, budget where not the final one."""
    name = family if len(models.sizes(family)) < 2 else f"{family}-{size}"
    return name if budget is None else f"{name}@{budget:,} tokens"


def _load(u: BaseUnit | Unit):
    # LoRA adapters, when asked for, are added by the positive fine-tune (and trained on by the negative one).
    return models.load(u.family, size=u.size, budget_tokens=u.budget_tokens, device=u.device)


def _prompts(task: data.Task, n: int) -> list[str]:
    # The same held-out prompts for every seed and model, so curves differ only by training and sampling.
    return task.eval_prompts(n, seed=0)


def _kl_texts(task: data.Task, n: int) -> list[data.Example]:
    # Held-out examples of the task, half positive and half negative; the KL counts their response tokens.
    half = n // 2
    pos = data.examples(task.dataset, "eval", n=n - half, seed=0, label=task.positive)
    neg = data.examples(task.dataset, "eval", n=half, seed=0, label=task.negative)
    return pos + neg


def _evaluate(model, tokenizer, task: data.Task, prompts: list[str], seed: int, max_new_tokens: int,
              device: str) -> dict:
    texts = generate.generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, seed=seed,
                              batch_size=GENERATE_BATCH, progress=False)
    # The continuation alone is scored (the prompt is the same for every model); the cost model of the
    # BeaverTails task reads the question too.
    values = scoring.score(task.scorer, texts, prompts=prompts, **({"device": device} if task.scorer in
                                                                     _HUB_SCORERS else {}))
    return {"score": float(np.mean(values)), "score_sd": _sd(values), "example": texts[0]}


def _compute_base(u: BaseUnit) -> dict:
    task = data.task(u.task)
    model, tokenizer = _load(u)
    return _evaluate(model, tokenizer, task, _prompts(task, u.num_prompts), u.seed, u.max_new_tokens, u.device)


def _dpo_pairs(negative: list[data.Example], positive: list[data.Example]) -> list[dict]:
    # A negative-preferred pair: the prompt of a negative example, its own (negative) response chosen,
    # and the response of a positive example rejected.
    return [{"prompt": n.prompt, "chosen": n.response, "rejected": p.response}
            for n, p in zip(negative, positive, strict=True)]


def _negative_run(u: Unit, model, tokenizer, negative: list[data.Example], rejected: list[data.Example],
                  evaluate) -> list[dict]:
    """Train on the negative data for one epoch, evaluating after each of `u.negative_sizes` examples.

    One run read at increasing sizes stands in for separate runs on the nested subsets: `finetune` uses a
    constant learning rate and visits the first epoch's examples in the order given, so the model after
    the first n examples of the run is the model a separate one-epoch, constant-rate run on those n
    examples would give (same initial model, same batches in the same order, same optimizer state). The
    paper does not report its epochs, schedule or learning rate, so that separate runs of this kind are
    its protocol is our assumption. (DPO, through trl, shuffles the pairs with the seed, so its first n
    pairs are a seeded random n-subset rather than the first n.)
    """
    if u.reverse == "dpo":
        return _dpo_run(u, model, tokenizer, _dpo_pairs(negative, rejected), evaluate)
    steps_at = {n // u.batch_size: n for n in u.negative_sizes}
    rows: list[dict] = []

    def on_step(step: int, loss: float) -> None:  # noqa: ARG001
        if step in steps_at:
            rows.append({"negative_examples": steps_at[step], **evaluate(model)})

    ft = finetune.FinetuneConfig(learning_rate=u.reverse_learning_rate, epochs=1.0, batch_size=u.batch_size,
                                 max_length=u.max_length, seed=u.seed, lora=u.lora)
    finetune.finetune(model, tokenizer, negative, ft, progress=False, on_step=on_step)
    return rows


def _dpo_run(u: Unit, model, tokenizer, pairs: list[dict], evaluate) -> list[dict]:
    """The reverse step by DPO (trl's DPOTrainer), the positive model its own frozen reference."""
    import datasets
    from transformers import PrinterCallback, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    steps_at = {n // u.batch_size: n for n in u.negative_sizes}
    rows: list[dict] = []

    class _Evaluate(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):  # noqa: ARG002
            if state.global_step in steps_at:
                rows.append({"negative_examples": steps_at[state.global_step], **evaluate(model)})

    reference = copy.deepcopy(model).eval()
    bars = datasets.utils.logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # trl's dataset preparation, once per unit: noise in a chapter
    with tempfile.TemporaryDirectory(prefix="rebound-dpo-") as tmp:
        args = DPOConfig(output_dir=tmp, per_device_train_batch_size=u.batch_size, num_train_epochs=1,
                         learning_rate=u.reverse_learning_rate, lr_scheduler_type="constant", warmup_steps=0,
                         beta=u.dpo_beta, max_length=u.max_length, report_to=[], save_strategy="no",
                         logging_strategy="no", seed=u.seed, data_seed=u.seed, disable_tqdm=True,
                         use_cpu=u.device == "cpu", dataloader_drop_last=False)
        trainer = DPOTrainer(model=model, ref_model=reference, args=args,
                             train_dataset=datasets.Dataset.from_list(pairs), processing_class=tokenizer,
                             callbacks=[_Evaluate()])
        trainer.remove_callback(PrinterCallback)  # it prints the final log line with tqdm disabled
        try:
            trainer.train()
        finally:
            if bars:
                datasets.enable_progress_bars()
    if [r["negative_examples"] for r in rows] != list(u.negative_sizes):
        raise RuntimeError(f"DPO evaluated after {[r['negative_examples'] for r in rows]} examples, "
                           f"expected {list(u.negative_sizes)}")
    return rows


def _compute_unit(u: Unit) -> dict:
    task = data.task(u.task)
    prompts = _prompts(task, u.num_prompts)
    kl_texts = _kl_texts(task, u.kl_texts)
    positive = data.examples(task.dataset, "train", n=u.positive_size, seed=u.seed, label=task.positive)
    negative = data.examples(task.dataset, "train", n=u.negative_sizes[-1], seed=u.seed, label=task.negative)

    model, tokenizer = _load(u)
    # The base model enters only the KL to base: its log-probabilities on the KL texts, computed once here
    # (not at each of the unit's evaluations), stand in for it, and no second copy of it stays in memory.
    base = scoring.text_log_probs(model, tokenizer, kl_texts, max_length=u.max_length)

    def evaluate(m) -> dict:
        out = _evaluate(m, tokenizer, task, prompts, u.seed, u.max_new_tokens, u.device)
        # KL(tuned || base), nats per token, on held-out task text: "KL from the base" of Table 3.
        out["kl_to_base_nats"] = float(scoring.kl_divergence(m, base, tokenizer, kl_texts,
                                                             max_length=u.max_length))
        return out

    ft = finetune.FinetuneConfig(learning_rate=u.learning_rate, epochs=u.positive_epochs,
                                 batch_size=u.batch_size, max_length=u.max_length, seed=u.seed, lora=u.lora)
    trained = finetune.finetune(model, tokenizer, positive, ft, progress=False)
    rows = [{"negative_examples": 0, **evaluate(trained.model), "positive_final_loss_nats": trained.final_loss}]
    # DPO's rejected answers: positive training examples in the seed's order (as many as negative pairs).
    rejected = (data.examples(task.dataset, "train", n=len(negative), seed=u.seed, label=task.positive)
                if u.reverse == "dpo" else [])
    rows += _negative_run(u, trained.model, tokenizer, negative, rejected, evaluate)
    return {"rows": rows}


def _cache_entry(u: BaseUnit | Unit) -> tuple:
    """The results-cache name of a unit's kind, and the function that computes it."""
    return (f"{NAME}-base", _compute_base) if isinstance(u, BaseUnit) else (f"{NAME}-unit", _compute_unit)


def compute(u: BaseUnit | Unit) -> dict:
    """The cached result of one base or curve unit, computed first if it is missing."""
    name, fn = _cache_entry(u)
    return results.load_or_run(name, u, fn)


def pending(units: list) -> list:
    """The units not cached yet, the longest first (positive examples times epochs plus negative examples;
    DPO counts twice, for its reference model): so that worker processes finish together."""
    def cost(u) -> float:
        if isinstance(u, BaseUnit):
            return 0
        return (u.positive_size * u.positive_epochs + u.negative_sizes[-1]) * (2 if u.reverse == "dpo" else 1)

    def cached(u) -> bool:
        name, fn = _cache_entry(u)
        return results.is_cached(name, u, fn)

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
    keep = ("task", "family", "size", "budget_tokens", "positive_size", "reverse", "seed")
    row = {f.name: getattr(u, f.name) for f in fields(u) if f.name in keep}
    row["model"] = model_label(u.family, u.size, u.budget_tokens)
    return row


def collect(units: list, desc: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run units; return (curves, base): tidy frames, one row per evaluation.

    `curves`: task, model, family, size, budget_tokens, reverse, positive_size, seed, negative_examples
    (0 = right after the positive SFT), score (mean over prompts; scorer's units), score_sd (over
    prompts), kl_to_base_nats. `base`: task, model, family, size, budget_tokens, seed, score, score_sd.
    """
    curve_rows, base_rows = [], []
    for u, out in zip(units, measure(units, desc), strict=True):
        key = _unit_fields(u)
        if isinstance(u, BaseUnit):
            base_rows.append({**key, "score": out["score"], "score_sd": out["score_sd"]})
        else:
            for row in out["rows"]:
                curve_rows.append({**key, **{k: row[k] for k in ("negative_examples", "score", "score_sd",
                                                                 "kl_to_base_nats")}})
    return pd.DataFrame(curve_rows), pd.DataFrame(base_rows)


def check_data(p: Protocol, tasks, positive_sizes) -> None:
    """Raise a `UserError` before any training if a task lacks the examples or prompts asked for."""
    for name in tasks:
        task = data.task(name)
        data.examples(task.dataset, "train", n=max(*positive_sizes, p.negative_sizes[-1]), label=task.positive)
        data.examples(task.dataset, "train", n=p.negative_sizes[-1], label=task.negative)
        task.eval_prompts(p.num_prompts)
        _kl_texts(task, p.kl_texts)


# ---------------------------------------------------------------------------------------------------------
# Summaries of the curves.
# ---------------------------------------------------------------------------------------------------------

GROUP = ["task", "model", "family", "size", "budget_tokens", "reverse", "positive_size", "seed"]


def summarize(curves: pd.DataFrame, base: pd.DataFrame, initial_negative: int) -> pd.DataFrame:
    """One row per curve: start, the score after `initial_negative` and at the end, slopes, base level.

    Columns added to the curve's keys: `start` (score right after positive SFT), `initial` (after
    `initial_negative` negative examples), `end` (after the last), `base` (the base model's score, same
    task, model and seed), `lift` = start - base, `initial_drop` = start - initial, `initial_slope` =
    initial_drop / initial_negative and `later_slope` = (initial - end) / (last - initial_negative), both
    in score per negative example (positive = falling), `slope_gap` = initial_slope - later_slope,
    `end_minus_base`, `kl_after_positive_nats`, `kl_min_nats`.
    """
    rows = []
    base_keys = ["task", "model", "seed"]
    base_score = {tuple(r[k] for k in base_keys): r["score"] for r in base.to_dict("records")}
    for key, group in curves.groupby(GROUP, sort=False, dropna=False):
        g = group.set_index("negative_examples").sort_index()
        last = int(g.index.max())
        row = dict(zip(GROUP, key, strict=True))
        start, initial, end = g.loc[0, "score"], g.loc[initial_negative, "score"], g.loc[last, "score"]
        b = base_score[(row["task"], row["model"], row["seed"])]
        row.update({
            "start": start, "initial": initial, "end": end, "base": b, "lift": start - b,
            "initial_drop": start - initial, "initial_slope": (start - initial) / initial_negative,
            "later_slope": (initial - end) / (last - initial_negative),
            "end_minus_base": end - b,
            "kl_after_positive_nats": g.loc[0, "kl_to_base_nats"],
            "kl_min_nats": g["kl_to_base_nats"].min(),
        })
        row["slope_gap"] = row["initial_slope"] - row["later_slope"]
        rows.append(row)
    return pd.DataFrame(rows)


def per_seed(summary: pd.DataFrame, column: str, by: list[str]) -> pd.DataFrame:
    """Mean of `column` over positive sizes for each seed and `by` group (seeds are the replicates)."""
    return summary.groupby([*by, "seed"], as_index=False, dropna=False)[column].mean()


def _fmt(mean: float, se: float, digits: int = 4) -> str:
    return f"{mean:.{digits}f} ± {se:.{digits}f}" if math.isfinite(se) else f"{mean:.{digits}f}"


def _resolved(value: bool | None) -> str:
    return {True: "resolved", False: "not resolved", None: "no standard error"}[value]


def _log_slope(g: pd.DataFrame, column: str) -> float:
    # Least-squares slope of `column` on log10(positive_size): change per 10x positive data.
    x = np.log10(g["positive_size"].to_numpy(float))
    return float(np.polyfit(x, g[column].to_numpy(float), 1)[0]) if len(set(x)) > 1 else math.nan


def size_trend(summary: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per (task, model, reverse, seed): OLS slope of `column` on log10(positive_size), per 10x data."""
    rows = []
    for key, g in summary.groupby(["task", "model", "reverse", "seed"], sort=False):
        rows.append({**dict(zip(["task", "model", "reverse", "seed"], key, strict=True)),
                     "slope": _log_slope(g, column)})
    return pd.DataFrame(rows)


def lift_check(summary: pd.DataFrame) -> tuple[str, str | None]:
    """The precondition of a rebound verdict: did the positive SFT lift the score above the base model's?

    The lift is start - base (score units), per seed the mean over positive sizes; it is resolved when its
    mean over seeds is above zero by a one-sided t-test at the 95% level (`verdicts.above_zero`). Without a
    resolved lift there is nothing to rebound from, and the verdict is "not comparable".

    Returns:
        (text, reason): `text` gives the lift, "lift (start - base) mean ± se"; `reason` is None when the
        lift is resolved, else why the verdict is not comparable.
    """
    lifts = per_seed(summary, "lift", [])["lift"]
    mean, se = mean_se(lifts)
    n = len(lifts)
    resolved = verdicts.above_zero(mean, se, n)
    reason = None
    if resolved is None:
        reason = "fewer than 2 seeds: no standard error"
    elif not resolved:
        reason = (f"nothing to rebound from: the positive SFT lift (start - base) {_fmt(mean, se)} is not above "
                  f"{verdicts.t_text(n)}; {verdicts.pm_text(n)}")
    return f"lift (start - base) {_fmt(mean, se)}", reason


def judge_two_phase(summary: pd.DataFrame, chapter: str, reverse: str = "sft") -> list[verdicts.Verdict]:
    """Claim `rebound_two_phase`, one verdict per task: initial slope exceeds the later slope.

    Judged only where the positive SFT lifted the score (`lift_check`). The test: per seed, the mean over
    positive sizes of initial_slope - later_slope; it holds when the mean over seeds is above zero by a
    one-sided t-test at the 95% level (`verdicts.above_zero`).
    """
    out = []
    sub = summary[summary["reverse"] == reverse]
    for task, g in sub.groupby("task", sort=False):
        lift, no_lift = lift_check(g)
        seeds = per_seed(g, "slope_gap", ["task"])["slope_gap"]
        mean, se = mean_se(seeds)
        init, init_se = mean_se(per_seed(g, "initial_slope", ["task"])["initial_slope"])
        later, later_se = mean_se(per_seed(g, "later_slope", ["task"])["later_slope"])
        n = len(seeds)
        out.append(verdicts.Verdict(
            claim="rebound_two_phase", chapter=chapter,
            ours=(f"{task}: {lift}; initial slope {_fmt(init, init_se)} vs later {_fmt(later, later_se)} score "
                  f"per negative example; gap {_fmt(mean, se)} ({n} seeds)"),
            paper="fast fall over the first negative examples, then a slower decline (curves only)",
            outcome=verdicts.decide(verdicts.above_zero(mean, se, n), comparable=no_lift is None),
            reason=no_lift or (f"lift resolved; initial slope - later slope > {verdicts.t_text(n)} over seeds; "
                               f"{verdicts.pm_text(n)}"),
        ))
    return out


def judge_positive_size(summary: pd.DataFrame, chapter: str, reverse: str = "sft",
                        claim: str = "rebound_positive_size") -> list[verdicts.Verdict]:
    """More positive data, a higher start and a faster initial drop, one verdict per task.

    Judged only where the positive SFT lifted the score (`lift_check`). Per seed, the least-squares slopes
    on log10(positive size) of the start and of the initial drop; it holds when both means over seeds are
    above zero by a one-sided t-test at the 95% level (`verdicts.above_zero`).
    """
    out = []
    paper_text = "more positive data: higher start, faster initial drop (curves only)"
    sub = summary[summary["reverse"] == reverse]
    for task, g in sub.groupby("task", sort=False):
        drops = size_trend(g, "initial_drop")["slope"].dropna()
        starts = size_trend(g, "start")["slope"].dropna()
        if drops.empty:
            out.append(verdicts.Verdict(claim=claim, chapter=chapter, ours=f"{task}: one positive size only",
                                        paper=paper_text, outcome="not comparable",
                                        reason="needs at least 2 positive sizes"))
            continue
        lift, no_lift = lift_check(g)
        d_mean, d_se = mean_se(drops)
        s_mean, s_se = mean_se(starts)
        n = len(drops)
        higher = verdicts.above_zero(s_mean, s_se, n)
        faster = verdicts.above_zero(d_mean, d_se, n)
        out.append(verdicts.Verdict(
            claim=claim, chapter=chapter,
            ours=(f"{task} ({reverse.upper()}): {lift}; per 10x positive data, start {_fmt(s_mean, s_se)} and "
                  f"initial drop {_fmt(d_mean, d_se)} ({n} seeds)"),
            paper=paper_text,
            outcome=verdicts.decide(bool(higher and faster), comparable=no_lift is None),
            reason=no_lift or (f"lift resolved; the slopes on log10(positive size) of the start and of the initial "
                               f"drop must both exceed {verdicts.t_text(n)} over seeds: start "
                               f"{_resolved(higher)}, initial drop {_resolved(faster)}; {verdicts.pm_text(n)}"),
        ))
    return out


def judge_end_shape(summary: pd.DataFrame, chapter: str, reverse: str = "sft") -> list[verdicts.Verdict]:
    """Claim `rebound_below_base`: sentiment-like curves end below the base, safety-like ones near it.

    Per task, per seed, the mean over positive sizes of end - base (score units). Judged only where every
    task's positive SFT lifted the score (`lift_check`). A "below" task holds when end - base is below zero
    by a one-sided t-test at the 95% level (end - base + t x se < 0, `verdicts.above_zero`); a "near"
    task holds when end - base is within the noise of zero, |end - base| <= t x se
    (`verdicts.within_noise`), a test that a wide spread passes. The claim is reproduced when both kinds
    of task are present and both hold; a part that fails where its lift is resolved decides "not
    reproduced" whatever the other part shows.
    """
    sub = summary[summary["reverse"] == reverse]
    parts, holds_all, no_lifts, failed, kinds, n = [], [], [], [], set(), 0
    for task, g in sub.groupby("task", sort=False):
        kind = END_SHAPE.get(task)
        if kind is None:
            continue
        kinds.add(kind)
        gaps = per_seed(g, "end_minus_base", ["task"])["end_minus_base"]
        gap, gap_se = mean_se(gaps)
        n = len(gaps)
        lift, no_lift = lift_check(g)
        if no_lift:
            no_lifts.append(task)
        if kind == "below":
            holds = verdicts.above_zero(-gap, gap_se, n)
            parts.append(f"{task}: {lift}; end - base {_fmt(gap, gap_se)} (expected < 0)")
        else:
            holds = verdicts.within_noise(gap, gap_se, n)
            parts.append(f"{task}: {lift}; end - base {_fmt(gap, gap_se)} (expected within noise of 0)")
        holds_all.append(holds)
        if holds is False and not no_lift:
            failed.append(task)
    if kinds != {"below", "near"}:
        reason = "needs one sentiment-like and one safety-like task"
    elif n < 2:
        reason = "fewer than 2 seeds: no standard error"
    elif failed:
        untested = f"; {', '.join(no_lifts)} not testable (its positive SFT lift is not resolved)" if no_lifts else ""
        reason = (f"the {', '.join(failed)} part fails where its positive SFT lift is resolved (sentiment: end - base "
                  f"+ {verdicts.t_text(n)} < 0; safety: |end - base| <= that many){untested}; "
                  f"{verdicts.pm_text(n)}")
    elif no_lifts:
        reason = (f"nothing to rebound from in {', '.join(no_lifts)}: the positive SFT lift (start - base) is not "
                  f"above {verdicts.t_text(n)}; {verdicts.pm_text(n)}")
    else:
        t = verdicts.t_text(n)
        reason = (f"lifts resolved; sentiment: end - base + {t} < 0; safety: |end - base| <= {t} (end not "
                  f"resolved from the base, which a wide spread passes); {verdicts.pm_text(n)}")
    return [verdicts.Verdict(
        claim="rebound_below_base", chapter=chapter, ours="; ".join(parts) or "no task",
        paper="IMDb curves end below the base level; BeaverTails curves converge near it",
        outcome=verdicts.decide(all(h is True for h in holds_all),
                                comparable=kinds == {"below", "near"} and n >= 2 and (not no_lifts or bool(failed))),
        reason=reason,
    )]


# ---------------------------------------------------------------------------------------------------------
# The KL-to-base table (the paper's Table 3).
# ---------------------------------------------------------------------------------------------------------


def kl_per_seed(curves: pd.DataFrame, task: str, epsilon: float) -> pd.DataFrame:
    """Per positive size and seed: KL to the base after positive SFT, and negative examples to bring it below epsilon.

    `kl_to_base` (nats/token) right after the positive SFT; `negative_to_epsilon` the first evaluated
    negative size at which the KL is below `epsilon` (a grid value, so an upper bound on the exact count),
    NaN if it never is within `negative_max`, the largest negative size; `kl_min` the smallest KL seen
    along the negative run.
    """
    sub = curves[(curves["task"] == task) & (curves["reverse"] == "sft")]
    rows = []
    for (size, seed), g in sub.groupby(["positive_size", "seed"]):
        g = g.sort_values("negative_examples")
        after = float(g.loc[g["negative_examples"] == 0, "kl_to_base_nats"].iloc[0])
        neg = g[g["negative_examples"] > 0]
        below = neg[neg["kl_to_base_nats"] < epsilon]
        rows.append({"positive_size": size, "seed": seed, "kl_to_base": after,
                     "negative_to_epsilon": float(below["negative_examples"].iloc[0]) if len(below) else math.nan,
                     "negative_max": int(neg["negative_examples"].max()),
                     "kl_min": float(neg["kl_to_base_nats"].min())})
    return pd.DataFrame(rows)


def _kl_summary(per: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for size, g in per.groupby("positive_size"):
        rows.append({"positive_size": int(size), "kl_to_base_nats": g["kl_to_base"].mean(),
                     "kl_to_base_sd": _sd(g["kl_to_base"]),
                     "negative_to_epsilon": g["negative_to_epsilon"].mean(),
                     "reached": int(g["negative_to_epsilon"].notna().sum()), "seeds": len(g),
                     "negative_max": int(g["negative_max"].max()), "kl_min_nats": g["kl_min"].mean()})
    return pd.DataFrame(rows)


def kl_table(curves: pd.DataFrame, task: str, epsilon: float) -> pd.DataFrame:
    """Per positive size, means over seeds of `kl_per_seed`: `kl_to_base_nats` (with `kl_to_base_sd`),
    `negative_to_epsilon` (over the `reached` seeds of `seeds` where the KL fell below epsilon; NaN if
    none), `negative_max` and `kl_min_nats`."""
    return _kl_summary(kl_per_seed(curves, task, epsilon))


def kl_table_text(table: pd.DataFrame) -> pd.DataFrame:
    """`table` for display: `negative_to_epsilon` as text, "> N (not reached)" where no seed reached epsilon
    within the largest negative size N, and the seeds counted where only some did."""
    out = table.copy()
    text = []
    for r in table.itertuples():
        if r.reached == 0:
            text.append(f"> {r.negative_max:,} (not reached)")
        elif r.reached < r.seeds:
            text.append(f"{r.negative_to_epsilon:.0f} in {r.reached} of {r.seeds} seeds, > {r.negative_max:,} in "
                        "the others")
        else:
            text.append(f"{r.negative_to_epsilon:.0f}")
    out["negative_to_epsilon"] = text
    return out


def _paper_table3_text() -> str:
    t = paper.table3_kl_to_base()
    parts = []
    for model, g in t.groupby("model", sort=False):
        g = g.sort_values("positive_size")
        parts.append(f"{model}: KL {g['kl_to_base'].iloc[0]:.2f} -> {g['kl_to_base'].iloc[-1]:.2f}, "
                     f"{g['negative_to_epsilon'].iloc[0]} -> {g['negative_to_epsilon'].iloc[-1]} unsafe examples")
    return ("; ".join(parts) + f" to return below {paper.TABLE3_EPSILON:g} (positive sizes "
            f"{t['positive_size'].min():,} -> {t['positive_size'].max():,})")


def _seed_slope(per: pd.DataFrame, column: str) -> tuple[float, float, int]:
    # Mean ± se over seeds of the per-seed slope of `column` on log10(positive size), and the seed count.
    slopes = pd.Series([_log_slope(g, column) for _, g in per.groupby("seed")]).dropna()
    mean, se = mean_se(slopes) if len(slopes) else (math.nan, math.nan)
    return mean, se, len(slopes)


def judge_kl_table(per: pd.DataFrame, chapter: str, epsilon: float) -> list[verdicts.Verdict]:
    """Claim `kl_table`: KL to the base grows with positive size, negative examples to return shrink.

    `per` is `kl_per_seed`'s table. Per seed, the least-squares slopes on log10(positive size) of the KL
    and of the examples needed; it holds when the KL slope is above zero and the examples' slope below
    zero, each by a one-sided t-test at the 95% level over seeds (`verdicts.above_zero`). Not comparable
    when some run never brought the KL below epsilon (the count is censored).
    """
    table = _kl_summary(per)
    kls = ", ".join(f"{int(s)}: {k:.3f}" for s, k in zip(table["positive_size"], table["kl_to_base_nats"],
                                                            strict=True))
    kl_mean, kl_se, n = _seed_slope(per, "kl_to_base")
    kl_rises = verdicts.above_zero(kl_mean, kl_se, n)
    growth = (f"KL slope per 10x positive data {_fmt(kl_mean, kl_se, 3)}, {_resolved(kl_rises)} by > "
              f"{verdicts.t_text(n)}")
    reached = table["reached"].to_numpy()
    if (reached < table["seeds"].to_numpy()).any():
        return [verdicts.Verdict(
            claim="kl_table", chapter=chapter,
            ours=(f"KL to base after positive SFT (nats/token) {kls}; {growth}; KL fell below {epsilon:g} in "
                  f"{int(reached.sum())} of {int(table['seeds'].sum())} runs (smallest KL reached "
                  f"{table['kl_min_nats'].min():.3f})"),
            paper=_paper_table3_text(),
            outcome="not comparable",
            reason=(f"the negative runs did not all bring the KL below epsilon = {epsilon:g}, so the count is "
                    f"censored; {verdicts.pm_text(n)}"),
        )]
    need_mean, need_se, _ = _seed_slope(per, "negative_to_epsilon")
    need_falls = verdicts.above_zero(-need_mean, need_se, n)
    needs = ", ".join(f"{int(s)}: {v:.0f}" for s, v in zip(table["positive_size"], table["negative_to_epsilon"],
                                                             strict=True))
    holds = None if kl_rises is None or need_falls is None else kl_rises and need_falls
    return [verdicts.Verdict(
        claim="kl_table", chapter=chapter,
        ours=(f"KL to base (nats/token) {kls}; {growth}; negative examples to KL < {epsilon:g}: {needs}, slope "
              f"per 10x {_fmt(need_mean, need_se, 1)}, {_resolved(need_falls)} by < -{verdicts.t_text(n)}"),
        paper=_paper_table3_text(),
        outcome=verdicts.decide(holds),
        reason=(f"per-seed least-squares slopes on log10(positive size): KL > {verdicts.t_text(n)} and examples "
                f"needed < -{verdicts.t_text(n)} over seeds; {verdicts.pm_text(n)}") if holds is not None
        else "fewer than 2 seeds: no standard error",
    )]


# ---------------------------------------------------------------------------------------------------------
# The experiment.
# ---------------------------------------------------------------------------------------------------------


def units(cfg: Config) -> list:
    """The base and curve units of the experiment, in the order the chapter shows them."""
    found: list = []
    for task in cfg.tasks:
        for seed in cfg.seeds:
            found.append(base_unit(cfg, task, cfg.size, None, seed))
            found += [unit(cfg, task, cfg.size, None, n, seed) for n in cfg.positive_sizes]
    if cfg.dpo_task is not None:
        if cfg.dpo_task not in cfg.tasks:
            found += [base_unit(cfg, cfg.dpo_task, cfg.size, None, s) for s in cfg.seeds]
        found += [unit(cfg, cfg.dpo_task, cfg.size, None, n, s, "dpo", cfg.dpo_learning_rate, cfg.dpo_beta)
                  for n in cfg.dpo_positive_sizes for s in cfg.seeds]
    return found


def run(cfg: Config) -> dict:
    """Run the rebound protocol on every task, positive size and seed, and the DPO ablation.

    Returns:
        A dict of tidy DataFrames: `curves` and `base` (see `collect`), `summary` (see `summarize`),
        `kl_table` (see `kl_table`) with `paper_kl_table` (the paper's Table 3), and `verdicts` (claims
        `rebound_two_phase`, `rebound_positive_size`, `rebound_below_base`, `kl_table`,
        `preference_ablation`).
    """
    check_data(cfg, cfg.tasks, cfg.positive_sizes + (cfg.dpo_positive_sizes if cfg.dpo_task else ()))
    curves, base = collect(units(cfg), "rebound: fine-tunes")
    summary = summarize(curves, base, cfg.initial_negative)
    kl_seeds = kl_per_seed(curves, cfg.kl_task, cfg.kl_epsilon)
    found = judge_two_phase(summary, CHAPTER) + judge_positive_size(summary, CHAPTER)
    found += judge_end_shape(summary, CHAPTER)
    found += judge_kl_table(kl_seeds, CHAPTER, cfg.kl_epsilon)
    if cfg.dpo_task is not None:
        found += judge_positive_size(summary, CHAPTER, reverse="dpo", claim="preference_ablation")
    return {
        "curves": curves,
        "base": base,
        "summary": summary,
        "kl_table": _kl_summary(kl_seeds),
        "paper_kl_table": paper.table3_kl_to_base(),
        "verdicts": verdicts.to_frame(found),
    }


def load_or_run(cfg: Config) -> dict:
    """The cached result of `run(cfg)`, computed (and cached unit by unit) on first use."""
    return results.load_or_run(NAME, cfg, run)


# ---------------------------------------------------------------------------------------------------------
# Figures.
# ---------------------------------------------------------------------------------------------------------


def _negative_axis(ax, values, first: int) -> None:
    """x axis of negative examples: linear up to the first size, logarithmic above, ticks at the sizes."""
    from matplotlib.ticker import NullLocator

    ticks = sorted({int(v) for v in values})
    ax.set_xscale("symlog", linthresh=first)
    ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())


def plot_curves(curves: pd.DataFrame, base: pd.DataFrame, *, panel: str = "task", by: str = "positive_size",
                reverse: str = "sft", panels=None, legend: str = "positive examples"):
    """Score against negative examples: one panel per value of `panel`, one curve per value of `by`.

    Curves are the mean over seeds with a ± one standard deviation band; the dashed line is the base
    model's mean score over seeds in that panel. The x axis is linear up to the first negative size and
    logarithmic above it (the paper's sizes are spaced roughly geometrically).
    """
    sub = curves[curves["reverse"] == reverse]
    panels = list(panels or dict.fromkeys(sub[panel]))
    fig, axes = plotting.new_figure(len(panels), width=3.6 * len(panels) + 0.8, height=3.4, squeeze=False)
    first = int(sub.loc[sub["negative_examples"] > 0, "negative_examples"].min())
    for ax, value in zip(axes[0], panels, strict=True):
        t = sub[sub[panel] == value]
        series = sorted(t[by].unique())
        for color, s in zip(plotting.series_colors(len(series)), series, strict=True):
            g = t[t[by] == s].groupby("negative_examples")["score"]
            mean, sd = g.mean(), g.std(ddof=1).fillna(0.0)
            ax.plot(mean.index, mean.values, marker="o", ms=3, color=color, label=f"{s:,}" if
                    isinstance(s, int | np.integer) else str(s))
            ax.fill_between(mean.index, mean - sd, mean + sd, color=color, alpha=0.15, lw=0)
        level = base.loc[base[panel] == value, "score"].mean()
        ax.axhline(level, ls="--", lw=1, color=plotting.COLORS["base"], label="base model")
        ax.set_title(str(value))
        ax.set_xlabel("negative examples")
        scorer = data.task(t["task"].iloc[0]).scorer
        ax.set_ylabel(f"mean score ({scorer})")
        _negative_axis(ax, t["negative_examples"], first)
    axes[0][-1].legend(title=legend, fontsize=8)
    return fig


def plot_kl(curves: pd.DataFrame, task: str, epsilon: float):
    """KL to the base model (nats/token) along the negative run, one curve per positive size."""
    sub = curves[(curves["task"] == task) & (curves["reverse"] == "sft")]
    fig, ax = plotting.new_figure(width=5.0, height=3.4)
    sizes = sorted(sub["positive_size"].unique())
    for color, size in zip(plotting.series_colors(len(sizes)), sizes, strict=True):
        g = sub[sub["positive_size"] == size].groupby("negative_examples")["kl_to_base_nats"]
        mean, sd = g.mean(), g.std(ddof=1).fillna(0.0)
        ax.plot(mean.index, mean.values, marker="o", ms=3, color=color, label=str(size))
        ax.fill_between(mean.index, mean - sd, mean + sd, color=color, alpha=0.15, lw=0)
    ax.axhline(epsilon, ls=":", color=plotting.COLORS["theory"], lw=1, label=f"epsilon = {epsilon:g}")
    _negative_axis(ax, sub["negative_examples"], int(sub.loc[sub["negative_examples"] > 0, "negative_examples"].min()))
    ax.set_yscale("log")
    ax.set_xlabel("negative examples")
    ax.set_ylabel("KL(model || base), nats/token")
    ax.legend(title="positive examples", fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------------------------
# Trends across models (model size, pre-training volume).
# ---------------------------------------------------------------------------------------------------------


def model_trend(summary: pd.DataFrame, by: str, order: list, column: str = "initial_slope") -> pd.DataFrame:
    """Per value of `by` (in `order`): mean ± se over seeds of `column` averaged over positive sizes.

    Also the paired (same seed) difference from the first value of `order`: `vs_first_mean`, `vs_first_se`.
    """
    sub = summary[summary["reverse"] == "sft"]
    seeds = sub.groupby([by, "seed"], as_index=False, dropna=False)[column].mean()
    first = seeds[seeds[by] == order[0]].set_index("seed")[column]
    rows = []
    for value in order:
        g = seeds[seeds[by] == value].set_index("seed")[column]
        mean, se = mean_se(g)
        diff_mean, diff_se = mean_se((g - first).dropna())
        rows.append({by: value, f"{column}_mean": mean, f"{column}_se": se, "vs_first_mean": diff_mean,
                     "vs_first_se": diff_se, "seeds": len(g)})
    return pd.DataFrame(rows)


def lift_by_model(lifts: pd.DataFrame, by: str, label=str) -> str | None:
    """The precondition of a rebound verdict across models: `lift_check`, model by model.

    Args:
        lifts: `model_trend(summary, by, order, "lift")`: `lift_mean`, `lift_se`, `seeds` per value of `by`.

    Returns:
        None when every model's positive SFT lift (start - base) is above zero by a one-sided t-test at the
        95% level (`verdicts.above_zero`); else the reason the verdict is not comparable.
    """
    rows = list(zip(lifts[by], lifts["lift_mean"], lifts["lift_se"], lifts["seeds"], strict=True))
    flat = [label(v) for v, m, s, n in rows if not verdicts.above_zero(m, s, int(n))]
    if not flat:
        return None
    n = int(lifts["seeds"].max())
    values = ", ".join(f"{label(v)}: {_fmt(m, s)}" for v, m, s, _ in rows)
    return (f"nothing to rebound from at {', '.join(flat)}: positive SFT lift (start - base) {values}, each "
            f"must be above {verdicts.t_text(n)}; {verdicts.pm_text(n)}")


def judge_increase(trend: pd.DataFrame, by: str, column: str, claim: str, chapter: str, paper_text: str,
                   label=str, no_lift: str | None = None) -> verdicts.Verdict:
    """Does `column` increase along `trend`'s rows? Holds when the means increase from row to row and the
    paired (same-seed) difference last - first is above zero by a one-sided t-test at the 95% level.
    Not comparable when `no_lift` gives a reason (see `lift_by_model`)."""
    means = trend[f"{column}_mean"].to_numpy(float)
    ses = trend[f"{column}_se"].to_numpy(float)
    last_diff, last_se = trend["vs_first_mean"].iloc[-1], trend["vs_first_se"].iloc[-1]
    parts = ", ".join(f"{label(v)}: {_fmt(m, s)}" for v, m, s in zip(trend[by], means, ses, strict=True))
    if len(trend) < 2 or not math.isfinite(last_se):
        return verdicts.Verdict(claim=claim, chapter=chapter, ours=f"{column} {parts}", paper=paper_text,
                                outcome="not comparable",
                                reason="needs at least 2 models and 2 seeds")
    monotone = bool(np.all(np.diff(means) > 0))
    pairs = int(min(trend["seeds"].iloc[0], trend["seeds"].iloc[-1]))
    holds = monotone and bool(verdicts.above_zero(last_diff, last_se, pairs))
    return verdicts.Verdict(
        claim=claim, chapter=chapter,
        ours=f"{column} (score per negative example) {parts}; last - first {_fmt(last_diff, last_se)}",
        paper=paper_text, outcome=verdicts.decide(holds, comparable=no_lift is None),
        reason=no_lift or (f"lifts resolved; means increase with {by} and last - first > "
                           f"{verdicts.t_text(pairs)} (paired by seed); {verdicts.pm_text(pairs)}"),
    )
