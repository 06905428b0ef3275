"""Tests of rebound's cached units: what a unit trains, and units computed in worker processes."""

import json

import numpy as np
import pytest

from elasticity import finetune, numerics
from elasticity.experiments import rebound, rebound_units


def test_positive_epochs_reach_the_positive_sft_only(tmp_path, monkeypatch):
    """A unit's positive SFT makes `positive_epochs` passes; its negative run stays one pass, read along it."""
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    cfg = rebound.config(positive_sizes=(8,), positive_epochs=2.0, seeds=(0,), tasks=("sentiment",),
                         kl_task="sentiment", preference_task=None, reversed_direction=False)
    u = rebound_units.unit(cfg, "sentiment", None, None, 8, 0)
    assert u.positive_epochs == 2.0
    runs = []
    real = rebound_units.finetune.finetune

    def recording(model, tokenizer, examples, ft, **kwargs):
        out = real(model, tokenizer, examples, ft, **kwargs)
        runs.append((len(examples), ft.epochs, len(out.losses)))
        return out

    monkeypatch.setattr(rebound_units.finetune, "finetune", recording)
    rows = rebound_units._compute_unit(u)["rows"]
    steps = -(-8 // cfg.batch_size)  # optimizer steps per pass over 8 examples
    assert runs == [(8, 2.0, 2 * steps), (cfg.negative_sizes[-1], 1.0, cfg.negative_sizes[-1] // cfg.batch_size)]
    assert [r["negative_examples"] for r in rows] == [0, *cfg.negative_sizes]


@pytest.mark.parametrize("lora", [False, True])
def test_the_positive_model_is_trained_once_and_read_back_exactly(tmp_path, monkeypatch, lora):
    """The SFT and preference curves of one positive size and seed start from one positive SFT (trained once, kept in
    the cache), and the model read back is the model that SFT left in memory, weight for weight."""
    import torch

    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    cfg = rebound.config(positive_sizes=(8,), seeds=(0,), tasks=("sentiment",), kl_task="sentiment", lora=lora)
    sft = rebound_units.unit(cfg, "sentiment", None, None, 8, 0)
    dpo = rebound_units.unit(cfg, "sentiment", None, None, 8, 0, "dpo", cfg.preference_learning_rate)
    assert rebound_units.positive_unit(sft) == rebound_units.positive_unit(dpo)
    backward = rebound_units.unit(cfg, "sentiment", None, None, 8, 0, direction="reversed")
    assert rebound_units.positive_unit(backward).label == "negative" != rebound_units.positive_unit(sft).label
    trainings = []
    real = rebound_units.finetune.finetune

    def recording(model, tokenizer, examples, ft, **kwargs):
        out = real(model, tokenizer, examples, ft, **kwargs)
        trainings.append(out)
        return out

    monkeypatch.setattr(rebound_units.finetune, "finetune", recording)
    first, loss = rebound_units._positive_model(sft, rebound_units._load(sft)[0])
    in_memory = trainings[0]
    again, loss_again = rebound_units._positive_model(dpo, rebound_units._load(dpo)[0])
    assert len(trainings) == 1 and loss == loss_again == in_memory.final_loss
    for model in (first, again):
        read_back = dict(model.named_parameters())
        trained = dict(in_memory.model.named_parameters())
        assert read_back.keys() == trained.keys()
        assert all(torch.equal(read_back[k], trained[k]) for k in trained)
        assert sum(p.requires_grad for p in read_back.values()) == sum(p.requires_grad for p in trained.values())
    saved = finetune.trainable_state(first)
    assert saved and (not lora or all("lora_" in k for k in saved))


def test_the_reference_model_doubles_a_units_cost_where_there_is_one(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    cfg = rebound.config(positive_sizes=(8,), seeds=(0,), tasks=("sentiment",), kl_task="sentiment")
    by = {r: rebound_units.unit(cfg, "sentiment", None, None, 8, 0, r, 1e-3) for r in ("simpo", "kto", "dpo")}
    by["sft"] = rebound_units.unit(cfg, "sentiment", None, None, 8, 0)
    order = [u.reverse for u in rebound_units.pending(list(by.values()))]
    assert order[:2] == ["kto", "dpo"] and set(order[2:]) == {"simpo", "sft"}  # a stable sort keeps the rest


def test_the_kl_is_measured_on_the_kl_table_curves_only():
    cfg = rebound.config(tasks=("sentiment", "safety"), kl_task="safety", preference_task="sentiment")
    measured = {(u.task, u.reverse, u.positive_size > 0) for u in rebound.units(cfg) if getattr(u, "kl", False)}
    assert measured == {("safety", "sft", True)}
    order = [(u.task, getattr(u, "reverse", "base")) for u in rebound.units(cfg)]
    for algorithm in cfg.algorithms:  # each preference curve after its task's SFT curves
        assert order.index(("sentiment", algorithm)) < order.index(("safety", "base"))


def test_a_reversed_unit_trains_on_negative_data_first_then_on_positive(tmp_path, monkeypatch):
    """The reversed direction (the paper's Figure 8): its first SFT takes the task's negative examples, its second
    (read along the way) the positive ones; a preference algorithm is refused there."""
    from elasticity import data
    from elasticity.config import UserError

    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    cfg = rebound.config(positive_sizes=(8,), seeds=(0,), tasks=("sentiment",), kl_task="sentiment")
    u = rebound_units.unit(cfg, "sentiment", None, None, 8, 0, direction="reversed")
    task = data.task("sentiment")
    texts = {label: {e.text for e in data.examples(task.dataset, "train", label=label)}
             for label in (task.positive, task.negative)}
    runs = []
    real = rebound_units.finetune.finetune

    def recording(model, tokenizer, examples, ft, **kwargs):
        runs.append([label for e in examples for label, known in texts.items() if e.text in known])
        return real(model, tokenizer, examples, ft, **kwargs)

    monkeypatch.setattr(rebound_units.finetune, "finetune", recording)
    rows = rebound_units._compute_unit(u)["rows"]
    assert runs == [[task.negative] * 8, [task.positive] * cfg.negative_sizes[-1]]
    assert [r["negative_examples"] for r in rows] == [0, *cfg.negative_sizes]
    with pytest.raises(UserError, match="reversed direction's second step is SFT"):
        rebound_units.unit(cfg, "sentiment", None, None, 8, 0, "kto", 1e-3, direction="reversed")
    with pytest.raises(UserError, match="unknown reverse"):
        rebound_units.unit(cfg, "sentiment", None, None, 8, 0, "ppo", 1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["dpo", "kto", "simpo"])
def test_each_preference_algorithm_reverses_a_curve_unit(tmp_path, monkeypatch, algorithm):
    """DPO, KTO and SimPO each run the reverse step of a tiny curve unit at smoke scale, read at every negative
    size, at the algorithm's own beta; the unit moves the model (its readouts change along the run)."""
    from elasticity import preference

    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    cfg = rebound.config(positive_sizes=(8,), seeds=(0,), tasks=("sentiment",), kl_task="sentiment")
    u = rebound_units.unit(cfg, "sentiment", None, None, 8, 0, algorithm, cfg.preference_learning_rate)
    assert u.beta == preference.DEFAULT_BETA[algorithm]
    rows = rebound_units._compute_unit(u)["rows"]
    assert [r["negative_examples"] for r in rows] == [0, *cfg.negative_sizes]
    bits = [r["bits_negative"] for r in rows]
    assert np.isfinite(bits).all() and len(set(bits)) == len(bits)


@pytest.mark.slow
def test_units_in_worker_processes_equal_units_in_process(tmp_path, monkeypatch):
    """Two workers compute the same numbers as this process (same seeds, the pinned thread count in each, though
    this process runs one thread), and a unit already cached is not computed again."""
    import torch

    from elasticity import parallel

    monkeypatch.setattr(parallel, "cores", lambda: 4)  # two workers of two threads fit (oversubscribed here)
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    cfg = rebound.config(positive_sizes=(8,), preference_positive_sizes=(8,), algorithms=("dpo",), seeds=(0,),
                         tasks=("sentiment",), kl_task="sentiment", control=False, reversed_direction=False)
    units = rebound.units(cfg)
    assert [type(u).__name__ for u in units] == ["BaseUnit", "Unit", "Unit"] and units[2].reverse == "dpo"
    assert rebound_units.pending(units) == [units[2], units[1], units[0]]  # the longest (DPO) first
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rebound_units.measure(units[:1], "in process", workers=1)
        assert rebound_units.pending(units) == [units[2], units[1]]
        in_workers = rebound_units.measure(units, "workers", workers=2)
        assert rebound_units.pending(units) == []
        worker = rebound_units.cache_entry(units[2]).load_provenance()["numerics"]  # a worker's unit
        assert worker["torch_threads"] == numerics.THREADS
        assert worker["cpu_capability"] == numerics.PINNED_CAPABILITY or not numerics.applies()
        (tmp_path / "results").rename(tmp_path / "results-workers")
        in_process = rebound_units.measure(units, "in process", workers=1)
    finally:
        torch.set_num_threads(threads)
    assert json.dumps(in_workers) == json.dumps(in_process)  # NaN (a KL not measured) equal to NaN


@pytest.mark.slow
def test_a_lora_curve_reverses_by_dpo_against_its_merged_positive_model(tmp_path, monkeypatch):
    """LoRA runs (the SmolLM2 settings) reach DPO: its reference is the positive model with the adapters merged,
    so DPO starts with zero margin and the curve is read at every negative size."""
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    cfg = rebound.config(positive_sizes=(8,), preference_positive_sizes=(8,), algorithms=("dpo",), seeds=(0,),
                         tasks=("sentiment",), kl_task="sentiment", control=False, lora=True,
                         reversed_direction=False)
    dpo = rebound.units(cfg)[-1]
    assert dpo.reverse == "dpo" and dpo.lora
    rows = rebound_units._compute_unit(dpo)["rows"]
    assert [r["negative_examples"] for r in rows] == [0, *cfg.negative_sizes]
    assert all(np.isfinite([r["bits_positive"], r["bits_negative"]]).all() for r in rows)
