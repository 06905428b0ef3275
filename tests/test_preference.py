"""Tests of elasticity.preference: DPO, KTO and SimPO each train a tiny model towards the chosen answers."""

import pytest
import torch
from conftest import make_model

from elasticity import models, preference
from elasticity.config import UserError

PAIRS = [{"prompt": "the film is", "chosen": " a dull, plodding mess.", "rejected": " a delight from start to end."},
         {"prompt": "an honest,", "chosen": " tedious and hollow film.", "rejected": " moving portrait of a family."},
         {"prompt": "the cast", "chosen": " never finds its footing.", "rejected": " shines in every scene."},
         {"prompt": "this story", "chosen": " drags on without a point.", "rejected": " is warm and funny."}]


def margin(model, tokenizer) -> float:
    """Mean log-probability of the chosen answers less that of the rejected ones, given their prompts."""
    def logp(prompt: str, answer: str) -> float:
        ids = tokenizer(prompt + answer, return_tensors="pt")["input_ids"]
        start = len(tokenizer(prompt)["input_ids"])
        with torch.no_grad():
            logits = model(ids).logits[0, :-1].log_softmax(-1)
        return float(logits[start - 1:].gather(1, ids[0, start:, None]).sum())

    model.eval()
    return sum(logp(p["prompt"], p["chosen"]) - logp(p["prompt"], p["rejected"]) for p in PAIRS) / len(PAIRS)


@pytest.mark.parametrize("algorithm", preference.ALGORITHMS)
@pytest.mark.parametrize("lora", [False, True])
def test_each_algorithm_moves_the_model_towards_the_chosen_answers(algorithm, lora, tiny_tokenizer):
    model = make_model(tiny_tokenizer)
    if lora:
        model = models.add_lora(model, r=4, seed=0)
    before = margin(model, tiny_tokenizer)
    steps = []
    cfg = preference.PreferenceConfig(algorithm, learning_rate=5e-2 if lora else 1e-2, batch_size=2, max_length=32,
                                      seed=0)
    trained = preference.train(model, tiny_tokenizer, PAIRS, cfg, on_step=lambda step, m: steps.append(step))
    assert trained is model and steps == [1, 2]  # 4 pairs, 2 a step, for KTO too (its 8 rows, 4 a step)
    assert margin(model, tiny_tokenizer) > before + 0.05, algorithm


def test_same_seed_same_model(tiny_tokenizer):
    cfg = preference.PreferenceConfig("simpo", learning_rate=1e-2, batch_size=2, max_length=32, seed=3)
    a, b = (preference.train(make_model(tiny_tokenizer), tiny_tokenizer, PAIRS, cfg) for _ in range(2))
    for (name, x), (_, y) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(x, y), name


def test_kto_rows_keep_each_pair_side_by_side():
    rows = preference.kto_rows(PAIRS[:2])
    assert [(r["prompt"], r["label"]) for r in rows] == [("the film is", True), ("the film is", False),
                                                          ("an honest,", True), ("an honest,", False)]
    assert rows[1]["completion"] == PAIRS[0]["rejected"]


def test_unknown_algorithms_and_settings_are_refused_in_one_line():
    with pytest.raises(UserError, match=r"^unknown algorithm 'ppo2'.*dpo, kto, simpo"):
        preference.check_algorithm("algorithm", "ppo2")
    with pytest.raises(UserError, match=r"^algorithm = 'ppo' is not run here \(it needs a reward model"):
        preference.PreferenceConfig("ppo", learning_rate=1e-3, batch_size=2, max_length=32, seed=0)
    with pytest.raises(UserError, match="beta"):
        preference.PreferenceConfig("dpo", learning_rate=1e-3, batch_size=2, max_length=32, seed=0, beta=0.0)
    with pytest.raises(UserError, match="learning_rate"):
        preference.PreferenceConfig("kto", learning_rate=2.0, batch_size=2, max_length=32, seed=0)
