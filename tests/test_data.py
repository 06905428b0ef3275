"""Tests of elasticity.data: registry, content-hash splits, nested subsets, the corpus, hub refusals."""

import os
import subprocess
import sys
import time

import pytest

from elasticity import data
from elasticity.config import UserError

OFFLINE_SFT = ("rotten-tomatoes", "tweets", "tweets-safety")


def test_registry_has_the_contract_names():
    for name in ("rotten-tomatoes", "tweets", "harmful-prompts", "pretraining-corpus", "imdb", "beavertails",
                 "alpaca", "truthfulqa"):
        assert name in data.DATASETS
    assert data.DATASETS["imdb"].hub.id == "stanfordnlp/imdb"
    assert data.DATASETS["beavertails"].hub.splits == {"train": "30k_train", "eval": "30k_test"}
    assert data.DATASETS["truthfulqa"].hub.config == "generation"
    assert all(spec.offline == (spec.hub is None) for spec in data.DATASETS.values())


@pytest.mark.parametrize("name", [n for n, s in data.DATASETS.items() if s.offline])
def test_offline_datasets_load_with_their_labels(name):
    spec = data.DATASETS[name]
    counts = data.label_counts(name)
    assert set(counts.label) == set(spec.labels)
    assert set(counts.split) == {"train", "eval"}
    assert (counts.records > 0).all()


@pytest.mark.parametrize("name", OFFLINE_SFT)
def test_train_and_eval_never_overlap(name):
    train = {data.normalise(e.text) for e in data.examples(name, "train")}
    evaluation = {data.normalise(e.text) for e in data.examples(name, "eval")}
    assert train and evaluation
    assert not train & evaluation
    share = len(evaluation) / (len(train) + len(evaluation))
    assert abs(share - data.EVAL_FRACTION) < 0.02


def test_no_eval_text_of_any_dataset_is_in_the_training_corpus():
    corpus_train = {data.normalise(t) for t in data.pretraining_corpus("train")}
    corpus_eval = {data.normalise(t) for t in data.pretraining_corpus("eval")}
    assert not corpus_train & corpus_eval
    for name in OFFLINE_SFT:
        held_out = {data.normalise(e.text) for e in data.examples(name, "eval")}
        assert not held_out & corpus_train, name
        # the eval snippets are in the corpus's eval split: same content, same split everywhere
        assert held_out <= corpus_eval, name
    # a Rotten Tomatoes snippet's split is the one its content hash gives
    for example in data.examples("rotten-tomatoes", "eval", n=50):
        assert data.split_of(example.text) == "eval"


@pytest.mark.parametrize("label", [None, "positive", "negative"])
def test_subsets_are_nested(label):
    small = data.examples("rotten-tomatoes", n=1000, seed=3, label=label)
    large = data.examples("rotten-tomatoes", n=2000, seed=3, label=label)
    assert small == large[:1000]
    assert data.prompts("rotten-tomatoes", n=100, seed=3) == data.prompts("rotten-tomatoes", n=300, seed=3)[:100]


def test_label_filtering_keeps_the_seed_order():
    everything = data.examples("rotten-tomatoes", seed=5)
    positives = data.examples("rotten-tomatoes", seed=5, label="positive")
    positive_set = set(positives)
    assert [e for e in everything if e in positive_set] == positives


def test_seed_changes_order_not_membership():
    a = data.examples("tweets", "eval", seed=0)
    b = data.examples("tweets", "eval", seed=1)
    assert a != b
    assert sorted(a, key=lambda e: e.text) == sorted(b, key=lambda e: e.text)
    assert data.examples("tweets", "eval", seed=0) == a  # deterministic


def test_examples_cut_a_snippet_into_opening_and_rest():
    for example in data.examples("rotten-tomatoes", n=200, label="negative"):
        assert len(example.prompt.split()) == data.PROMPT_WORDS
        assert len(example.response.split()) >= data.MIN_RESPONSE_WORDS
        assert example.response[0].isspace()
        assert example.text == example.prompt + example.response
    fresh = set(data._rotten_tomatoes_frame().query("category == 'fresh'").text.str.strip())
    assert all(e.text in fresh for e in data.examples("rotten-tomatoes", n=100, label="positive"))


def test_prompts_are_held_out_openings():
    prompts = data.prompts("rotten-tomatoes", n=200)
    assert len(set(prompts)) == 200
    openings = {e.prompt for e in data.examples("rotten-tomatoes", "eval")}
    assert set(prompts) <= openings


def test_safety_analogue_labels_follow_the_classifier():
    safe = data.examples("tweets-safety", label="safe", n=300)
    unsafe = data.examples("tweets-safety", label="unsafe", n=300)
    assert (data.offensiveness([e.text for e in unsafe]) >= data.UNSAFE_MIN_PROBABILITY).all()
    assert (data.offensiveness([e.text for e in safe]) < data.SAFE_MAX_PROBABILITY).all()
    counts = data.label_counts("tweets-safety").set_index(["split", "label"]).examples
    assert counts["train", "unsafe"] >= 1000 and counts["train", "safe"] > counts["train", "unsafe"]


def test_prompt_only_datasets():
    questions = data.prompts("harmful-prompts", n=20)
    assert all(q.startswith("Question: ") and q.endswith("\nAnswer:") for q in questions)
    assert len(data.prompts("toxicity-prompts", "train", n=10, label="insult")) == 10
    with pytest.raises(UserError, match="prompts only"):
        data.examples("harmful-prompts")


def test_corpus_is_real_mixed_text_and_sized():
    corpus = data.pretraining_corpus()
    assert corpus == data.pretraining_corpus()
    assert len(corpus) > 40_000
    stats = data.corpus_stats()
    sources = set(stats.source) - {"all"}
    assert sources == set(data.DATASETS["pretraining-corpus"].labels)
    total = stats.query("split == 'train' and source == 'all'").iloc[0]
    assert total.documents == len(corpus)
    assert total.characters == sum(map(len, corpus))
    assert total.utf8_bytes >= total.characters > 5_000_000
    assert any("Hamlet" in d or "HAMLET" in d for d in corpus)
    assert all(d.strip() == d and d for d in corpus[:1000])


def test_bad_input_is_a_one_line_user_error():
    cases = [
        (lambda: data.examples("imbd"), "unknown dataset 'imbd'; accepted: rotten-tomatoes"),
        (lambda: data.examples("rotten-tomatoes", "test"), "unknown split 'test'; accepted: train, eval"),
        (lambda: data.examples("rotten-tomatoes", label="fresh"), "accepted: positive, negative, plot"),
        (lambda: data.examples("rotten-tomatoes", "eval", n=10**6, label="positive"), "has 702; asked for"),
        (lambda: data.prompts("rotten-tomatoes", n=-1), "non-negative"),
        (lambda: data.pretraining_corpus("validation"), "accepted: train, eval"),
        (lambda: data.task("toxicity"), "accepted: sentiment, safety"),
    ]
    for call, message in cases:
        with pytest.raises(UserError, match=message.replace("(", r"\(")) as error:
            call()
        assert "\n" not in str(error.value)


def test_several_labels_and_task_prompts():
    reviews = data.prompts("rotten-tomatoes", n=300, label=("positive", "negative"))
    plot_openings = set(data.prompts("rotten-tomatoes", label="plot"))
    review_openings = set(data.prompts("rotten-tomatoes", label=("negative", "positive")))
    assert set(reviews) <= review_openings
    assert data.TASKS["sentiment"].eval_prompts(300) == reviews
    assert not set(reviews) & (plot_openings - review_openings)
    both = data.examples("tweets", label=("positive", "negative"), n=500)
    assert {e for e in both} <= set(data.examples("tweets", label="positive")) | set(
        data.examples("tweets", label="negative"))


def test_tweets_are_read_without_mojibake():
    assert all(e.text.isascii() for e in data.examples("tweets", "eval"))


def test_tasks_are_consistent():
    from elasticity.scoring import SCORERS

    for task in data.TASKS.values():
        spec = data.DATASETS[task.dataset]
        assert {task.positive, task.negative} <= set(spec.labels)
        assert task.prompts in data.DATASETS and task.scorer in SCORERS
    assert data.TASKS["sentiment"].dataset == "rotten-tomatoes"
    assert data.TASKS["safety"].scorer == "inoffensiveness"


def test_hub_dataset_refused_at_once_when_unreachable(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    data._records.cache_clear()
    start = time.perf_counter()
    with pytest.raises(UserError, match=r"hub dataset 'stanfordnlp/imdb' needs the Hugging Face Hub") as error:
        data.examples("imdb", n=10)
    assert time.perf_counter() - start < 5
    assert "\n" not in str(error.value)


def test_hub_dataset_offline_reads_only_the_cache(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path),
           "HF_DATASETS_CACHE": str(tmp_path / "datasets")}
    code = ("from elasticity import data, config\n"
            "try:\n    data.examples('beavertails', n=5)\n"
            "except config.UserError as e:\n    print('REFUSED', e)\n")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert time.perf_counter() - start < 60  # mostly the import of datasets; no download retries
    assert "REFUSED hub dataset 'PKU-Alignment/BeaverTails' could not be loaded: not in the local cache" in done.stdout


def test_hub_rows_become_examples(monkeypatch):
    rows = {
        "30k_train": [{"prompt": "How do I bake bread?", "response": "Mix flour and water.", "is_safe": True},
                      {"prompt": "Q2", "response": "bad answer", "is_safe": False}],
        "30k_test": [{"prompt": "Q3", "response": "fine answer", "is_safe": True}],
        "train": [{"text": "I loved this film from start to finish", "label": 1}],
        "test": [{"text": "I hated this film from start to finish", "label": 0}],
    }
    monkeypatch.setattr(data, "_hub_rows", lambda source, split: rows[split])
    data._records.cache_clear()
    try:
        assert data.examples("beavertails", label="safe") == [
            data.Example("Question: How do I bake bread?\nAnswer:", " Mix flour and water.")]
        assert data.examples("beavertails", "eval")[0].response == " fine answer"
        assert data.prompts("beavertails", n=1) == ["Question: Q3\nAnswer:"]
        assert data.examples("imdb", label="positive") == [data.Example("I loved this film", " from start to finish")]
        assert data.examples("imdb", "eval", label="negative")[0].prompt == "I hated this film"
    finally:
        data._records.cache_clear()


def test_cached_records_equal_a_fresh_build():
    spec = data.DATASETS["rotten-tomatoes"]
    fresh = data._build_records(spec, [(t, label, r, "") for t, label, r in spec._load()])
    assert fresh == data._records("rotten-tomatoes")
