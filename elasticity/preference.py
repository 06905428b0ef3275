"""Preference fine-tuning through trl: a reverse step by DPO, KTO or SimPO on pairs of answers to one prompt.

A pair is `{"prompt", "chosen", "rejected"}`, both answers to the same prompt. DPO (`trl.DPOTrainer`) and KTO
(`trl.KTOTrainer`) anchor the model to a frozen copy of itself; SimPO (`trl.experimental.cpo.CPOTrainer` with
its SimPO loss and no SFT term, `cpo_alpha = 0`) needs no reference model. KTO learns from single answers
labelled desirable or not: each pair gives two rows, its chosen answer desirable and its rejected one not,
side by side, and a batch holds `batch_size` pairs as in DPO and SimPO, so that step k has seen k *
`batch_size` pairs under every algorithm (DPO and SimPO draw the pairs in a seeded random order, KTO in the
order given: its KL estimate pairs rows within a fixed-order batch).

PPO, the paper's fourth reverse step, is left out: it trains a reward model and samples rollouts from the
policy at every step (`LEFT_OUT`).
"""

import copy
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from elasticity import config

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

ALGORITHMS = ("dpo", "kto", "simpo")
ANCHORED = ("dpo", "kto")  # those that keep a frozen reference model beside the trained one
NAMES = {"dpo": "DPO", "kto": "KTO", "simpo": "SimPO"}  # as their papers write them
LEFT_OUT = {"ppo": "a reward model trained on the pairs, and rollouts sampled from the policy at every step"}
# beta: DPO's and KTO's strength of the anchor to the reference model (trl's default); SimPO's reward scale
# (the SimPO paper's 2.0, with its target margin gamma = 0.5, trl's default).
DEFAULT_BETA = {"dpo": 0.1, "kto": 0.1, "simpo": 2.0}


def check_algorithm(name: str, value: object) -> str:
    """`value` if it names an algorithm this module runs, else a `UserError` naming those accepted."""
    if value in LEFT_OUT:
        raise config.UserError(f"{name} = {value!r} is not run here (it needs {LEFT_OUT[value]}); "
                               f"accepted: {', '.join(ALGORITHMS)}")
    return config.choice(name, value, ALGORITHMS)


@dataclass(frozen=True)
class PreferenceConfig:
    """One preference run: the algorithm and its settings (one epoch over the pairs, constant learning rate)."""

    algorithm: str
    learning_rate: float
    batch_size: int  # pairs per optimizer step
    max_length: int  # tokens of prompt and answer, cut on the right
    seed: int
    beta: float | None = None  # None: DEFAULT_BETA of the algorithm
    simpo_gamma: float = 0.5  # SimPO's target reward margin
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_algorithm("algorithm", self.algorithm)
        if not 0 < self.learning_rate < 1:
            raise config.UserError(f"learning_rate = {self.learning_rate}; must be in (0, 1)")
        if self.batch_size < 1 or self.max_length < 2:
            raise config.UserError(f"batch_size = {self.batch_size}, max_length = {self.max_length}; "
                                   "need batch_size >= 1 and max_length >= 2")
        if self.beta is not None and self.beta <= 0:
            raise config.UserError(f"beta = {self.beta}; must be > 0")


def kto_rows(pairs: list[dict]) -> list[dict]:
    """KTO's unpaired rows: each pair's chosen answer (desirable), then its rejected answer (undesirable)."""
    return [row for p in pairs for row in ({"prompt": p["prompt"], "completion": p["chosen"], "label": True},
                                           {"prompt": p["prompt"], "completion": p["rejected"], "label": False})]


def _reference(model: "PreTrainedModel") -> "PreTrainedModel":
    reference = copy.deepcopy(model).eval()
    if hasattr(reference, "merge_and_unload"):
        # A LoRA model's frozen reference is the model with the adapters merged in: trl's fused forward reads a
        # plain causal LM's backbone, which a peft wrapper does not expose.
        reference = reference.merge_and_unload()
    return reference


def _trainer(model, tokenizer, pairs: list[dict], cfg: PreferenceConfig, output_dir: str, callbacks: list):
    import datasets

    common = dict(output_dir=output_dir, num_train_epochs=1, learning_rate=cfg.learning_rate,
                  lr_scheduler_type="constant", warmup_steps=0, max_length=cfg.max_length, report_to=[],
                  save_strategy="no", logging_strategy="no", seed=cfg.seed, data_seed=cfg.seed, disable_tqdm=True,
                  use_cpu=cfg.device == "cpu", dataloader_drop_last=False,
                  # float32 and no activation checkpointing, as the SFT steps (trl defaults to bf16 autocast, which
                  # a CPU without bf16 units emulates slowly, and to checkpointing, which also turns the KV cache
                  # off in the evaluations' sampling)
                  bf16=False, gradient_checkpointing=False, beta=cfg.beta or DEFAULT_BETA[cfg.algorithm])
    if cfg.algorithm == "dpo":
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(per_device_train_batch_size=cfg.batch_size, **common)
        return DPOTrainer(model=model, ref_model=_reference(model), args=args, processing_class=tokenizer,
                          train_dataset=datasets.Dataset.from_list(pairs), callbacks=callbacks)
    if cfg.algorithm == "kto":
        from trl import KTOConfig, KTOTrainer

        args = KTOConfig(per_device_train_batch_size=2 * cfg.batch_size, **common)
        return KTOTrainer(model=model, ref_model=_reference(model), args=args, processing_class=tokenizer,
                          train_dataset=datasets.Dataset.from_list(kto_rows(pairs)), callbacks=callbacks)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # CPOTrainer lives in trl.experimental
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    args = CPOConfig(per_device_train_batch_size=cfg.batch_size, loss_type="simpo", cpo_alpha=0.0,
                     simpo_gamma=cfg.simpo_gamma, remove_unused_columns=False, **common)
    return CPOTrainer(model=model, args=args, processing_class=tokenizer,
                      train_dataset=datasets.Dataset.from_list(pairs), callbacks=callbacks)


def train(model: "PreTrainedModel", tokenizer: "PreTrainedTokenizerBase", pairs: list[dict], cfg: PreferenceConfig,
          on_step: Callable[[int, "PreTrainedModel"], None] | None = None) -> "PreTrainedModel":
    """Train `model` in place for one epoch over `pairs` by `cfg.algorithm`, calling `on_step(step, model)` after
    every optimizer step (step k has seen k * `cfg.batch_size` pairs); return it."""
    import datasets
    from transformers import PrinterCallback, TrainerCallback

    if not pairs:
        raise config.UserError("no preference pairs to train on")

    class _OnStep(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):  # noqa: ARG002
            if on_step is not None:
                on_step(state.global_step, model)

    bars = datasets.utils.logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # trl's dataset preparation, once per run: noise in a chapter
    try:
        with tempfile.TemporaryDirectory(prefix=f"preference-{cfg.algorithm}-") as tmp:
            trainer = _trainer(model, tokenizer, pairs, cfg, tmp, [_OnStep()])
            trainer.remove_callback(PrinterCallback)  # it prints the final log line with tqdm disabled
            trainer.train()
    finally:
        if bars:
            datasets.enable_progress_bars()
    return model
