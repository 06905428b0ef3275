"""Supervised fine-tuning (full or LoRA) with checkpoints along the run; resumable, seeded, multi-process."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

from elasticity import config
from elasticity.config import UserError

IGNORE = -100  # label of tokens that carry no loss (prompt tokens, padding)


@dataclass(frozen=True)
class FinetuneConfig:
    """One SFT run.

    The learning rate is constant (no warm-up, no decay) and the first epoch visits the examples in the order
    given, so that the model after the first n examples of a run is the model a run on those n examples
    alone would give; later epochs are permuted with the seed.
    """

    learning_rate: float  # AdamW learning rate, constant
    epochs: float  # passes over the examples; fractional values train round(epochs * batches per epoch) steps
    batch_size: int  # examples per optimizer step (the global batch, over all processes)
    max_length: int  # tokens per example, prompt + response + EOS; longer ones are cut at the end
    seed: int
    lora: bool = False  # train LoRA adapters (peft) instead of all weights
    lora_r: int = 8  # LoRA rank
    checkpoint_fractions: tuple[float, ...] = ()  # save checkpoints at these fractions of the run, e.g. (1/3, 2/3, 1.0)
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    max_grad_norm: float = 1.0  # gradient clipping; 0 disables it
    pack: bool = True  # pack each batch into rows of 2 x max_length tokens instead of padding it (same loss)

    def __post_init__(self):
        config.check_types(self)
        if not self.learning_rate > 0:
            raise UserError(f"FinetuneConfig.learning_rate = {self.learning_rate}; expected > 0")
        if not self.epochs > 0:
            raise UserError(f"FinetuneConfig.epochs = {self.epochs}; expected > 0")
        if self.batch_size < 1:
            raise UserError(f"FinetuneConfig.batch_size = {self.batch_size}; expected >= 1")
        if self.max_length < 2:
            raise UserError(f"FinetuneConfig.max_length = {self.max_length}; expected >= 2")
        if self.lora_r < 1:
            raise UserError(f"FinetuneConfig.lora_r = {self.lora_r}; expected >= 1")
        fractions = self.checkpoint_fractions
        if any(not 0 < f <= 1 for f in fractions) or list(fractions) != sorted(fractions):
            raise UserError(f"FinetuneConfig.checkpoint_fractions = {fractions}; expected increasing values in (0, 1]")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise UserError("FinetuneConfig.weight_decay and max_grad_norm must be >= 0")


@dataclass
class FinetuneResult:
    """What `finetune` returns."""

    model: object  # the trained model, in memory (a peft model when LoRA was trained)
    losses: list[float]  # per optimizer step: mean loss over the step's response tokens, nats/token
    final_loss: float  # mean of `losses` over the last 10% of steps (at least one step)
    checkpoints: list[Path] = field(default_factory=list)  # one directory per checkpoint fraction


class LossNotFinite(UserError):
    """The training loss became NaN or infinite; training stopped and the last good weights were kept."""


# --------------------------------------------------------------------------------------------------
# Encoding: prompt tokens carry no loss; the response ends with EOS.
# --------------------------------------------------------------------------------------------------


def encode(tokenizer, examples: Sequence, max_length: int) -> list[tuple[list[int], list[int]]]:
    """Token ids and labels of each example.

    The prompt is tokenized as the model sees a prompt at generation time (`tokenizer(prompt)`, which adds
    the tokenizer's BOS if it has one); the response is tokenized on its own (no special tokens) and EOS is
    appended, so the model learns to stop. Labels are IGNORE on prompt tokens when the prompt is non-empty,
    otherwise every token is trained on (plain text). Sequences longer than `max_length` are cut at the end
    (here, so the tokenizer's warning about texts longer than the model takes is silenced).

    Returns:
        [(input_ids, labels)] with equal lengths <= max_length.
    """
    out = []
    for example in examples:
        prompt_ids = tokenizer(example.prompt, verbose=False)["input_ids"]
        response_ids = tokenizer(example.response, add_special_tokens=False, verbose=False)["input_ids"]
        if tokenizer.eos_token_id is not None:
            response_ids = [*response_ids, tokenizer.eos_token_id]
        ids = (prompt_ids + response_ids)[:max_length]
        labels = ([IGNORE] * len(prompt_ids) if example.prompt else list(prompt_ids)) + response_ids
        out.append((ids, labels[:max_length]))
    return out


def collate(pairs: Sequence[tuple[list[int], list[int]]], pad_id: int, device) -> dict[str, torch.Tensor]:
    """Right-pad a batch: input_ids, attention_mask and labels tensors of shape (batch, longest)."""
    import torch

    longest = max(len(ids) for ids, _ in pairs)
    ids = torch.full((len(pairs), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(pairs), longest), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(pairs), longest), dtype=torch.long)
    for row, (i, lab) in enumerate(pairs):
        ids[row, : len(i)] = torch.tensor(i)
        labels[row, : len(lab)] = torch.tensor(lab)
        mask[row, : len(i)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def pack_rows(lengths: Sequence[int], row_tokens: int) -> list[list[int]]:
    """First-fit-decreasing packing: lists of indices (into `lengths`) whose lengths sum to <= row_tokens.

    Deterministic (ties keep the given order); an item longer than `row_tokens` gets a row of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    used: list[int] = []
    for i in order:
        for r, u in enumerate(used):
            if u + lengths[i] <= row_tokens:
                rows[r].append(i)
                used[r] += lengths[i]
                break
        else:
            rows.append([i])
            used.append(lengths[i])
    return rows


def collate_packed(pairs: Sequence[tuple[list[int], list[int]]], pad_id: int, device,
                   row_tokens: int) -> dict[str, torch.Tensor]:
    """A batch packed into rows of at most `row_tokens` tokens, without padding between examples.

    Each example keeps its own positions (position_ids restart at 0) and no attention mask is passed, so
    transformers builds a block-diagonal causal mask from the position ids (packed-sequence detection in
    `transformers.masking_utils`): no token attends across examples, and the loss and its gradient equal
    those of the padded batch up to floating-point summation order. An example's first token is never a
    target (as in a padded row, where nothing precedes it); a row's padding tail is a block of its own.

    Returns:
        input_ids, position_ids and labels tensors of shape (rows, longest row).
    """
    import torch

    rows = pack_rows([len(ids) for ids, _ in pairs], row_tokens)
    width = max(sum(len(pairs[i][0]) for i in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            x, lab = pairs[i]
            ids[r, at : at + len(x)] = torch.tensor(x)
            labels[r, at + 1 : at + len(x)] = torch.tensor(lab[1:])
            positions[r, at : at + len(x)] = torch.arange(len(x))
            at += len(x)
        positions[r, at:] = torch.arange(width - at)
    return {"input_ids": ids.to(device), "position_ids": positions.to(device), "labels": labels.to(device)}


def token_nll_sum(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token negative log-likelihood of the labelled tokens (nats) and their number.

    `batch` is padded (`collate`: attention_mask) or packed (`collate_packed`: position_ids).
    """
    import torch

    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
    logits = model(**inputs, use_cache=False).logits
    # Each position's target is the next label; the last position gets none. Shifting the labels rather than
    # slicing the logits spares a copy of the logits and, in backward, a zero-filled gradient of their size.
    targets = torch.nn.functional.pad(batch["labels"][:, 1:], (0, 1), value=IGNORE)
    nll = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                            ignore_index=IGNORE, reduction="sum")
    return nll, (targets != IGNORE).sum()


def _device_of(model) -> torch.device:
    return next(model.parameters()).device


def mean_loss(model, tokenizer, examples: Sequence, *, max_length: int, batch_size: int = 16) -> float:
    """Mean next-token loss over the response tokens of `examples` (all tokens where the prompt is ""), nats."""
    import torch

    pairs = encode(tokenizer, examples, max_length)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            nll, n = token_nll_sum(model, collate(pairs[start : start + batch_size], pad, _device_of(model)))
            total += nll.item()
            count += int(n)
    if count == 0:
        raise UserError("mean_loss: the examples have no response tokens within max_length")
    return total / count


# --------------------------------------------------------------------------------------------------
# Schedule: which examples each step sees, where checkpoints fall.
# --------------------------------------------------------------------------------------------------


def num_steps(num_examples: int, cfg: FinetuneConfig) -> int:
    """Optimizer steps of a run: round(epochs * ceil(num_examples / batch_size)), at least 1."""
    return max(1, round(cfg.epochs * math.ceil(num_examples / cfg.batch_size)))


def checkpoint_steps(total_steps: int, fractions: Sequence[float]) -> list[int]:
    """The step after which each checkpoint is saved: ceil(fraction * total_steps), within [1, total_steps]."""
    return [min(total_steps, max(1, math.ceil(f * total_steps - 1e-9))) for f in fractions]


def batch_indices(step: int, num_examples: int, cfg: FinetuneConfig) -> list[int]:
    """Indices of the examples of optimizer step `step` (0-based): epoch 0 in the given order, later epochs
    permuted with (seed, epoch); the last batch of an epoch may be smaller."""
    per_epoch = math.ceil(num_examples / cfg.batch_size)
    epoch, j = divmod(step, per_epoch)
    if epoch == 0:
        order = np.arange(num_examples)
    else:
        order = np.random.default_rng([cfg.seed, epoch]).permutation(num_examples)
    return order[j * cfg.batch_size : (j + 1) * cfg.batch_size].tolist()


# --------------------------------------------------------------------------------------------------
# Saving and loading checkpoints
# --------------------------------------------------------------------------------------------------


def _is_peft(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def _base_reference(model) -> dict | None:
    """Where the frozen base of a peft model can be reloaded from (a local directory or a hub id), or None."""
    base = model.get_base_model()
    source = getattr(base.config, "_name_or_path", "") or getattr(base, "name_or_path", "")
    revision = getattr(base, "elasticity_revision", None)
    if source and (Path(source).is_dir() or (not source.startswith(("/", ".")) and "/" in source)):
        return {"source": source, "revision": revision}
    return None


def save_checkpoint(model, tokenizer, directory: Path, meta: dict | None = None) -> Path:
    """Save a model (full weights, or a LoRA adapter with a reference to its base) with its tokenizer.

    A LoRA checkpoint stores only the adapter and `base.json` naming the base model's directory or hub id;
    a base that was never saved (a model built in memory) is saved inside the checkpoint, under `base/`.
    """
    from elasticity.pretrain import save_quietly

    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_quietly(model, tokenizer, tmp)
    if _is_peft(model):
        reference = _base_reference(model)
        if reference is None:
            # The base weights are frozen, so saving them now is saving them as they were at the start.
            base = model.get_base_model()  # holds the injected LoRA layers: strip them from its state
            clean = {k.replace(".base_layer.", "."): v for k, v in base.state_dict().items() if "lora_" not in k}
            base.save_pretrained(tmp / "base", state_dict=clean)
            reference = {"source": "base", "revision": None}
        (tmp / "base.json").write_text(json.dumps(reference))
    (tmp / "finetune.json").write_text(json.dumps(meta or {}, default=str))
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
    return directory


def load_checkpoint(path: Path | str, *, device: str = "cpu"):
    """Load a checkpoint written by `finetune` as a fresh trainable copy: (model, tokenizer).

    A LoRA checkpoint comes back as a peft model with trainable adapters on its (reloaded) base model.
    Weights load in float32 on a CPU and in their saved dtype on CUDA.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise UserError(f"no checkpoint at {path}")
    from elasticity.models import quiet_progress

    dtype = torch.float32 if device == "cpu" else "auto"
    with quiet_progress():
        tokenizer = AutoTokenizer.from_pretrained(path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if (path / "adapter_config.json").is_file():
            from peft import PeftModel

            reference = json.loads((path / "base.json").read_text())
            source = path / "base" if reference["source"] == "base" else reference["source"]
            base = AutoModelForCausalLM.from_pretrained(source, revision=reference["revision"], dtype=dtype)
            base.elasticity_revision = reference["revision"]
            model = PeftModel.from_pretrained(base.to(device), path, is_trainable=True)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    return model, tokenizer


# --------------------------------------------------------------------------------------------------
# The training loop
# --------------------------------------------------------------------------------------------------


def _fingerprint(cfg: FinetuneConfig, pairs, world: int) -> str:
    digest = hashlib.sha256(json.dumps([asdict(cfg), world], default=str).encode())
    for ids, labels in pairs:
        digest.update(np.asarray(ids, dtype=np.int64).tobytes() + b"|" + np.asarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


def trainable_state(model) -> dict[str, torch.Tensor]:
    """A copy of the weights being trained (all of them, or a LoRA model's adapters), by parameter name."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def finetune(model, tokenizer, examples: Sequence, cfg: FinetuneConfig, *, output_dir: Path | None = None,
             progress: bool = True, state_every_steps: int = 100,
             on_step: Callable[[int, float], None] | None = None) -> FinetuneResult:
    """Supervised fine-tuning of `model` on `examples` (`data.Example`: prompt, response).

    The loss of a step is the mean next-token loss over the response tokens of its global batch (all tokens
    of examples with an empty prompt). AdamW at a constant learning rate, gradient clipping at
    `max_grad_norm`. With `cfg.lora`, fresh LoRA adapters are added (unless the model already is a peft
    model, whose adapters then continue training) and only they change.

    Same seed, same examples, same config => bitwise identical losses and weights on a CPU with the same
    thread count. Under `accelerate launch --num_processes P` each process takes every P-th example of each
    global batch; token counts are summed over processes so that the gradient equals the one-process
    gradient up to floating-point summation order.

    Resuming: with `output_dir`, a resumable state is saved every `state_every_steps` steps, at every
    checkpoint and when training is interrupted by an exception (Ctrl-C included). Calling `finetune` again
    with the same model, tokenizer, examples, config and `output_dir` resumes from it and ends with the same
    weights as an uninterrupted run. The state is removed when the run completes.

    Args:
        model: a causal LM (trained in place).
        output_dir: where checkpoints (`checkpoint-<k>`) and the resumable state go; required when
            `cfg.checkpoint_fractions` is not empty.
        on_step: called as on_step(step, loss) after each optimizer step (1-based).

    Returns:
        A `FinetuneResult`.

    Raises:
        LossNotFinite: the loss became NaN/inf; the weights before that step are saved to
            `output_dir/last-good` (when an output_dir is given) and kept in `model`.
    """
    import torch
    import transformers
    from tqdm.auto import tqdm

    from elasticity import models

    if not examples:
        raise UserError("finetune needs at least one example")
    if cfg.checkpoint_fractions and output_dir is None:
        raise UserError("checkpoint_fractions need an output_dir to save the checkpoints in")
    if cfg.lora and not _is_peft(model):
        model = models.add_lora(model, r=cfg.lora_r, seed=cfg.seed)
    elif not cfg.lora and _is_peft(model):
        raise UserError("the model carries LoRA adapters but FinetuneConfig.lora is False")
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is None:
        raise UserError("the tokenizer has neither a pad nor an EOS token to pad batches with")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    world = _world()
    accelerator = None
    if world > 1:
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=_device_of(model).type == "cpu")
    rank = accelerator.process_index if accelerator else 0
    main = rank == 0

    transformers.set_seed(cfg.seed)
    pairs = encode(tokenizer, examples, cfg.max_length)
    total = num_steps(len(pairs), cfg)
    saves = checkpoint_steps(total, cfg.checkpoint_fractions)
    trainable = [p for p in model.parameters() if p.requires_grad]
    # fused: one kernel over all tensors (CPU and CUDA); 3x less optimizer time than the foreach default.
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=True)

    output_dir = Path(output_dir) if output_dir is not None else None
    state_path = output_dir / "state" / (f"rank-{rank}.pt" if world > 1 else "state.pt") if output_dir else None
    fingerprint = _fingerprint(cfg, pairs, world)
    step, losses = 0, []
    if state_path is not None and state_path.is_file():
        state = torch.load(state_path, weights_only=False)
        if state["fingerprint"] != fingerprint:
            raise UserError(f"{output_dir} holds a run of other examples or another config; "
                            "use an empty output_dir")
        with torch.no_grad():
            params = dict(model.named_parameters())
            for name, value in state["trainable"].items():
                params[name].copy_(value)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        step, losses = state["step"], state["losses"]

    def save_state() -> None:
        if state_path is None:
            return
        state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = state_path.with_suffix(".tmp")
        torch.save({"fingerprint": fingerprint, "trainable": trainable_state(unwrapped), "step": step,
                    "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state(), "losses": losses}, tmp)
        tmp.replace(state_path)

    unwrapped = model
    if accelerator is not None:
        model, optimizer = accelerator.prepare(model, optimizer)
    device = _device_of(unwrapped)
    checkpoints = [output_dir / f"checkpoint-{k + 1:02d}" for k in range(len(saves))] if output_dir else []

    def save_checkpoints_at(done: int) -> None:
        for k, at in enumerate(saves):
            if at == done and main:
                meta = {"step": done, "total_steps": total, "fraction": cfg.checkpoint_fractions[k],
                        "examples_seen": min(done * cfg.batch_size, round(cfg.epochs * len(pairs))),
                        "config": asdict(cfg), "losses": losses}
                save_checkpoint(unwrapped, tokenizer, checkpoints[k], meta)
        if accelerator is not None and done in saves:
            accelerator.wait_for_everyone()

    unwrapped.train()
    bar = tqdm(total=total, initial=step, desc="fine-tune", unit="step", disable=not (progress and main))
    try:
        while step < total:
            indices = batch_indices(step, len(pairs), cfg)
            mine = indices[rank::world]
            weight = 1.0
            if not mine:  # fewer examples than processes in a last batch: take part with zero weight
                mine, weight = indices[:1], 0.0
            chosen = [pairs[i] for i in mine]
            batch = (collate_packed(chosen, pad, device, 2 * cfg.max_length) if cfg.pack
                     else collate(chosen, pad, device))
            nll, count = token_nll_sum(model, batch)
            nll, count = nll * weight, count * int(weight)
            totals = torch.stack([nll.detach().float(), count.float()])
            if accelerator is not None:
                totals = accelerator.reduce(totals, reduction="sum")
            global_count = max(1.0, totals[1].item())
            loss_value = totals[0].item() / global_count
            if not math.isfinite(loss_value):
                where = ""
                if output_dir is not None and main:
                    save_checkpoint(unwrapped, tokenizer, output_dir / "last-good",
                                    {"step": step, "config": asdict(cfg), "losses": losses})
                    where = f"; the weights before it are saved in {output_dir / 'last-good'}"
                raise LossNotFinite(f"the training loss became {loss_value} at step {step + 1} of {total} "
                                    f"(learning_rate {cfg.learning_rate}); training stopped{where}")
            # DDP averages gradients over processes; scaling by the world size makes the result the gradient of
            # (sum of the global batch's token losses) / (global token count), as in one process.
            loss = nll * world / global_count
            if accelerator is not None:
                accelerator.backward(loss)
            else:
                loss.backward()
            if cfg.max_grad_norm:
                if accelerator is not None:
                    accelerator.clip_grad_norm_(trainable, cfg.max_grad_norm)
                else:
                    torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(loss_value)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
            save_checkpoints_at(step)
            if step in saves or step % state_every_steps == 0:
                save_state()
            if on_step is not None:
                on_step(step, loss_value)
    except BaseException as error:
        if not isinstance(error, LossNotFinite):
            save_state()  # an interrupted run resumes from exactly here
        raise
    finally:
        bar.close()
    if state_path is not None:
        shutil.rmtree(state_path.parent, ignore_errors=True)
    unwrapped.eval()
    tail = max(1, math.ceil(0.1 * len(losses)))
    return FinetuneResult(model=unwrapped, losses=losses, final_loss=float(np.mean(losses[-tail:])),
                          checkpoints=checkpoints)
