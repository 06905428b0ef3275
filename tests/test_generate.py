"""Tests of elasticity.generate: continuations only, seeded, left-padded batches."""

import pytest
import torch

from elasticity.config import UserError
from elasticity.generate import generate

PROMPTS = ["the film is", "a dull, plodding", "pack my box with five dozen", "an"]


def test_returns_only_continuations_and_is_seeded(tiny_model, tiny_tokenizer):
    a = generate(tiny_model, tiny_tokenizer, PROMPTS, max_new_tokens=8, seed=3, progress=False)
    b = generate(tiny_model, tiny_tokenizer, PROMPTS, max_new_tokens=8, seed=3, progress=False)
    c = generate(tiny_model, tiny_tokenizer, PROMPTS, max_new_tokens=8, seed=4, progress=False)
    assert len(a) == len(PROMPTS) and a == b and a != c
    assert not any(text.startswith(prompt) for prompt, text in zip(PROMPTS, a, strict=True))
    # greedy: exactly the tokens after the prompt that the library's generate returns
    ids = tiny_tokenizer(PROMPTS[1], return_tensors="pt")["input_ids"]
    full = tiny_model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=8,
                               pad_token_id=tiny_tokenizer.pad_token_id)
    expected = tiny_tokenizer.decode(full[0, ids.shape[1] :], skip_special_tokens=True)
    assert generate(tiny_model, tiny_tokenizer, [PROMPTS[1]], max_new_tokens=8, temperature=0,
                    progress=False) == [expected]


def test_continuation_follows_its_prompt(tiny_model, tiny_tokenizer):
    # Greedy continuations in a left-padded batch equal those of each prompt alone.
    batched = generate(tiny_model, tiny_tokenizer, PROMPTS, max_new_tokens=6, temperature=0, progress=False)
    alone = [generate(tiny_model, tiny_tokenizer, [p], max_new_tokens=6, temperature=0, progress=False)[0]
             for p in PROMPTS]
    assert batched == alone


def test_leaves_caller_state_alone(tiny_model, tiny_tokenizer):
    tiny_model.train()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    generate(tiny_model, tiny_tokenizer, PROMPTS, max_new_tokens=4, batch_size=3, progress=False)
    assert torch.equal(torch.rand(3), expected)
    assert tiny_model.training and tiny_tokenizer.padding_side == "right"
    assert generate(tiny_model, tiny_tokenizer, [], progress=False) == []


@pytest.mark.parametrize("bad", [dict(temperature=-1.0), dict(top_p=0.0), dict(max_new_tokens=0), dict(batch_size=0)])
def test_bad_arguments(tiny_model, tiny_tokenizer, bad):
    with pytest.raises(UserError, match="generate"):
        generate(tiny_model, tiny_tokenizer, PROMPTS, progress=False, **bad)
