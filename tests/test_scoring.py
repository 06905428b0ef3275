"""Tests of elasticity.scoring: offline scorers, hub scorers on tiny local models, the KL divergence."""

import math
import time

import numpy as np
import pytest
import torch

from elasticity import scoring
from elasticity.config import UserError
from elasticity.data import Example

WORDS = "the a film movie was is good bad great awful I loved hated it plot story and but very".split()


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="[PAD]", unk_token="[UNK]")


def tiny_llama(seed: int, vocab_size: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # random init is near uniform; sharpen it so that KLs are not tiny
        model.lm_head.weight.mul_(20)
    return model


def test_offline_scorers_order_texts_sensibly():
    texts = ["A wonderful, moving film; I loved it.", "A dull, lifeless and awful mess."]
    sentiment = scoring.score("vader", texts)
    assert sentiment.shape == (2,) and sentiment[0] > 0.05 > sentiment[1]
    safety = scoring.score("inoffensiveness", ["Have a lovely day.", "shut up you stupid idiot"])
    assert 0 <= safety[1] < 0.5 < safety[0] <= 1
    assert scoring.positive_rate("vader", texts) == 0.5
    assert scoring.score("vader", []).shape == (0,)


def test_bad_input():
    with pytest.raises(UserError, match="unknown scorer 'roberta'; accepted: vader, inoffensiveness"):
        scoring.score("roberta", ["x"])
    with pytest.raises(UserError, match="got 1 prompts for 2 texts"):
        scoring.score("vader", ["a", "b"], prompts=["p"])


@pytest.mark.parametrize("name", ["sentiment-roberta", "beaver-cost"])
def test_hub_scorers_refuse_at_once_without_hub(name, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    start = time.perf_counter()
    with pytest.raises(UserError, match=f"hub model '{scoring.SCORERS[name].hub_id}' needs the Hugging Face Hub"):
        scoring.score(name, ["some text"])
    assert time.perf_counter() - start < 5


def test_sentiment_classifier_path_on_a_tiny_local_model(tokenizer, tmp_path):
    from transformers import RobertaConfig, RobertaForSequenceClassification

    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=len(WORDS) + 2, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, max_position_embeddings=40, pad_token_id=0,
                           id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1})
    model = RobertaForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    texts = ["I loved it", "the film was awful and bad"]
    got = scoring.score("sentiment-roberta", texts, model_path=str(tmp_path), batch_size=1)
    with torch.no_grad():
        want = [torch.softmax(model(**tokenizer(t, return_tensors="pt")).logits, -1)[0, 1].item() for t in texts]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert ((got >= 0) & (got <= 1)).all()


def test_cost_model_path_on_a_tiny_local_model(tokenizer, tmp_path):
    from transformers import LlamaConfig

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(WORDS) + 2, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0)
    model = scoring.score_model_class()(config).eval()
    assert {k.split(".")[0] for k in model.state_dict()} == {"model", "score_head"}  # safe-rlhf's layout
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    prompts, responses = ["I loved the film", "the plot"], ["it was good", "awful and bad very bad"]
    got = scoring.score("beaver-cost", responses, prompts=prompts, model_path=str(tmp_path), batch_size=2)
    want = []
    with torch.no_grad():
        for p, r in zip(prompts, responses, strict=True):
            ids = tokenizer(scoring.BEAVER_TEMPLATE.format(prompt=p, response=r), return_tensors="pt").input_ids
            hidden = model.model(input_ids=ids).last_hidden_state
            want.append(-model.score_head(hidden)[0, -1, 0].item())  # negated cost at the last token
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_kl_of_a_model_with_itself_is_zero(tokenizer):
    p = tiny_llama(0, len(WORDS) + 2)
    texts = ["the film was good", "I hated the plot and the story", "a very great movie"]
    assert abs(scoring.kl_divergence(p, p, tokenizer, texts)) < 1e-6


def test_kl_matches_a_hand_computation(tokenizer):
    p, q = tiny_llama(0, len(WORDS) + 2), tiny_llama(1, len(WORDS) + 2)
    texts = ["the film was good", "I hated the plot and the story but it was great", "a movie"]
    total, count = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt").input_ids
            lp, lq = p(ids).logits[0].double().softmax(-1), q(ids).logits[0].double().softmax(-1)
            for t in range(ids.shape[1] - 1):  # position t predicts token t + 1
                total += sum(lp[t, v] * math.log(lp[t, v] / lq[t, v]) for v in range(lp.shape[1])).item()
                count += 1
    want = total / count
    got = scoring.kl_divergence(p, q, tokenizer, texts, batch_size=2)
    assert got > 0.01
    assert got == pytest.approx(want, rel=1e-4)
    assert scoring.kl_divergence(p, q, tokenizer, texts, batch_size=1) == pytest.approx(got, rel=1e-5)
    assert scoring.kl_divergence(q, p, tokenizer, texts) != pytest.approx(got, rel=1e-3)  # not symmetric


def test_kl_counts_only_response_tokens_of_examples(tokenizer):
    p, q = tiny_llama(0, len(WORDS) + 2), tiny_llama(1, len(WORDS) + 2)
    example = Example("the film was", " good and great")
    with torch.no_grad():
        ids = tokenizer(example.text, return_tensors="pt").input_ids
        lp, lq = p(ids).logits[0].log_softmax(-1), q(ids).logits[0].log_softmax(-1)
        per_position = (lp.exp() * (lp - lq)).sum(-1)
    # tokens: the film was | good and great -> positions 2, 3, 4 predict the response tokens
    want = per_position[2:5].mean().item()
    assert scoring.kl_divergence(p, q, tokenizer, [example]) == pytest.approx(want, rel=1e-5)
    plain = per_position[:5].mean().item()
    assert scoring.kl_divergence(p, q, tokenizer, [example.text]) == pytest.approx(plain, rel=1e-5)


def test_kl_from_precomputed_log_probs_equals_kl_from_the_model(tokenizer):
    p, q = tiny_llama(0, len(WORDS) + 2), tiny_llama(1, len(WORDS) + 2)
    texts = ["the film was good", Example("I hated", " the plot and the story"), "a movie", "great"]
    want = scoring.kl_divergence(p, q, tokenizer, texts, batch_size=3)
    q_fixed = scoring.text_log_probs(q, tokenizer, texts, batch_size=3)
    p_fixed = scoring.text_log_probs(p, tokenizer, texts, batch_size=3)
    assert scoring.kl_divergence(p, q_fixed, tokenizer, texts, batch_size=3) == want  # bitwise: same tensors
    assert scoring.kl_divergence(p_fixed, q, tokenizer, texts, batch_size=3) == want
    p.train()  # each model's train/eval mode is as it was after the call
    scoring.kl_divergence(p, q_fixed, tokenizer, texts, batch_size=3)
    scoring.text_log_probs(p, tokenizer, texts, batch_size=3)
    assert p.training and not q.training
    with pytest.raises(UserError, match="other texts, batch_size or max_length"):
        scoring.kl_divergence(p, q_fixed, tokenizer, texts, batch_size=2)
    with pytest.raises(UserError, match="other texts"):
        scoring.kl_divergence(p, q_fixed, tokenizer, texts[:2], batch_size=3)


def test_kl_is_non_negative_on_random_models(tokenizer):
    rng = np.random.default_rng(0)
    for seed in range(3):
        p, q = tiny_llama(10 + seed, len(WORDS) + 2), tiny_llama(20 + seed, len(WORDS) + 2)
        texts = [" ".join(rng.choice(WORDS, size=rng.integers(2, 12))) for _ in range(5)]
        assert scoring.kl_divergence(p, q, tokenizer, texts) >= 0


def test_kl_with_a_bos_tokenizer_counts_every_real_token(tiny_tokenizer):
    from conftest import make_model

    p, q = make_model(tiny_tokenizer, seed=0).eval(), make_model(tiny_tokenizer, seed=1).eval()
    example = Example("the film is a", " delight from start to finish.")
    with torch.no_grad():
        encoded = tiny_tokenizer(example.text, return_tensors="pt")
        assert encoded.input_ids[0, 0] == tiny_tokenizer.bos_token_id
        lp, lq = p(**encoded).logits[0].log_softmax(-1), q(**encoded).logits[0].log_softmax(-1)
        per_position = (lp.exp() * (lp - lq)).sum(-1)[:-1]  # position t predicts token t + 1
        n_prompt = len(tiny_tokenizer(example.prompt).input_ids)  # BOS + prompt tokens
    assert scoring.kl_divergence(p, q, tiny_tokenizer, [example.text]) == pytest.approx(
        per_position.mean().item(), rel=1e-5)  # BOS predicts the first real token: all of them count
    response_ids, counted = scoring._scored_tokens(tiny_tokenizer, example, None)
    assert tiny_tokenizer.decode([t for t, c in zip(response_ids, counted, strict=True) if c]) == example.response
    want = per_position[n_prompt - 1:].mean().item()
    assert scoring.kl_divergence(p, q, tiny_tokenizer, [example]) == pytest.approx(want, rel=1e-5)
