"""Batched, seeded sampling of continuations from a causal language model (to make datasets from checkpoints)."""

from __future__ import annotations

from elasticity.config import UserError
from elasticity.modes import evaluating


def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int = 32, temperature: float = 1.0,
             top_p: float = 1.0, seed: int = 0, batch_size: int = 32, progress: bool = True) -> list[str]:
    """Sample one continuation per prompt; return only the continuations (decoded, special tokens removed).

    Prompts are tokenized as in training (`tokenizer(prompt)`, with the tokenizer's BOS if it has one) and
    left-padded, so every continuation starts right after its prompt. Generation stops at EOS or after
    `max_new_tokens` tokens. Batch `b` is sampled after seeding torch's generator with (seed, b) inside a
    forked RNG state, so the same seed, prompts and batch size give the same text, and the caller's random
    state is left untouched. `temperature=0` decodes greedily.

    Args:
        prompts: the prompts, any number (batched by `batch_size`).
        max_new_tokens: most tokens generated per prompt.
        temperature: softmax temperature (> 0), or 0 for greedy decoding.
        top_p: nucleus sampling threshold in (0, 1].

    Returns:
        list[str] of len(prompts), continuations only.
    """
    import torch
    from tqdm.auto import tqdm

    if temperature < 0 or not 0 < top_p <= 1 or max_new_tokens < 1 or batch_size < 1:
        raise UserError(f"generate: temperature {temperature} must be >= 0, top_p {top_p} in (0, 1], "
                        f"max_new_tokens {max_new_tokens} and batch_size {batch_size} >= 1")
    if not prompts:
        return []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    sample = temperature > 0
    options = {"do_sample": sample, "max_new_tokens": max_new_tokens, "pad_token_id": pad,
               "eos_token_id": tokenizer.eos_token_id}
    if sample:
        options.update(temperature=temperature, top_p=top_p, top_k=0)
    else:
        options.update(temperature=None, top_p=None, top_k=None)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    out: list[str] = []
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        starts = range(0, len(prompts), batch_size)
        with evaluating(model):
            for b, start in enumerate(tqdm(starts, desc="generate", unit="batch", disable=not progress)):
                batch = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True).to(device)
                with torch.random.fork_rng(devices=devices):
                    torch.manual_seed(seed * 1_000_003 + b)
                    ids = model.generate(**batch, **options)
                new = ids[:, batch["input_ids"].shape[1] :]
                out.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
    return out
