"""Tests of the rebound experiment: config validation, the curve summaries and verdicts, a smoke run."""

import math

import numpy as np
import pandas as pd
import pytest

from elasticity.config import UserError
from elasticity.experiments import rebound

OUTCOMES = {"reproduced", "not reproduced", "not comparable"}


# ---------------------------------------------------------------------------------------------------------
# Config validation: bad input fails before any work, with one line.
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides, match", [
    ({"family": "gpt-17"}, "unknown family"),
    ({"tasks": ("sentiment", "poetry")}, "unknown task"),
    ({"tasks": ()}, "empty"),
    ({"positive_sizes": (200, 100)}, "increasing"),
    ({"negative_sizes": (10, 20)}, "at least 3"),
    ({"negative_sizes": (10, 13, 20), "initial_negative": 10}, "multiple of batch_size"),
    ({"initial_negative": 200}, "initial_negative"),
    ({"seeds": (0, 0)}, "repeats"),
    ({"learning_rate": 2.0}, "learning_rate"),
    ({"positive_epochs": 0.0}, "positive_epochs"),
    ({"device": "tpu"}, "device"),
    ({"kl_task": "sentiment-imdb"}, "kl_task"),
    ({"kl_epsilon": 0.0}, "kl_epsilon"),
    ({"dpo_task": "nope"}, "dpo_task"),
    ({"num_prompts": 0}, "num_prompts"),
    ({"positive_sizes": "100"}, "wrong type"),
])
def test_bad_config_raises_user_error(overrides, match):
    with pytest.raises(UserError, match=match):
        rebound.Config(**overrides)


def test_lists_are_accepted_for_tuples_and_presets_validate():
    cfg = rebound.Config(positive_sizes=[100, 200], seeds=[0, 1])
    assert cfg.positive_sizes == (100, 200) and cfg.seeds == (0, 1)
    for preset in rebound.PRESETS.values():
        assert preset.initial_negative in preset.negative_sizes


def test_config_overrides_and_scale(monkeypatch):
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    assert rebound.config() == rebound.PRESETS["smoke"]
    assert rebound.config(seeds=None, device="cpu").seeds == rebound.PRESETS["smoke"].seeds
    with pytest.raises(UserError, match="unknown parameter"):
        rebound.config(colour="red")


def test_default_preset_keeps_the_paper_ratios():
    from elasticity import paper

    cfg = rebound.PRESETS["default"]
    ratio_pos = np.array(paper.REBOUND_POSITIVE_SIZES) / np.array(cfg.positive_sizes)
    ratio_neg = np.array(paper.REBOUND_NEGATIVE_SIZES) / np.array(cfg.negative_sizes)
    assert np.allclose(ratio_pos, ratio_pos[0]) and np.allclose(ratio_neg, ratio_pos[0])
    assert len(cfg.seeds) >= 3


# ---------------------------------------------------------------------------------------------------------
# Summaries and verdicts on synthetic curves whose shape is known.
# ---------------------------------------------------------------------------------------------------------

NEG = (10, 20, 50, 100, 200)


def _synthetic(task, shape, seeds=(0, 1, 2), positive_sizes=(100, 1000), base_level=0.0, rng=None,
               reverse="sft", kl_speed_grows=True):
    """Curves s(n) = end + (start - end) * exp(-n / scale) with a start and speed growing with positive size."""
    rng = rng or np.random.default_rng(0)
    rows, base_rows = [], []
    for seed in seeds:
        base_rows.append({"task": task, "model": "m", "family": "tiny", "size": None, "budget_tokens": None,
                          "seed": seed, "score": base_level})
        for p in positive_sizes:
            start = base_level + 0.3 + 0.1 * math.log10(p)
            end = {"below": base_level - 0.2, "near": base_level, "flat": start}[shape]
            scale = 30.0 / math.log10(p)
            for n in (0, *NEG):
                score = end + (start - end) * math.exp(-n / scale) + rng.normal(0, 1e-3)
                speed = math.log10(p) if kl_speed_grows else 4 / math.log10(p)
                kl = 0.1 * math.log10(p) * math.exp(-n * speed / 40) + 0.001
                rows.append({"task": task, "model": "m", "family": "tiny", "size": None, "budget_tokens": None,
                             "reverse": reverse, "positive_size": p, "seed": seed, "negative_examples": n,
                             "score": score, "score_sd": 0.1, "kl_to_base_nats": kl})
    return pd.DataFrame(rows), pd.DataFrame(base_rows)


def test_summarize_slopes_by_hand():
    curves, base = _synthetic("sentiment", "below", seeds=(0,), positive_sizes=(100,))
    s = rebound.summarize(curves, base, 20).iloc[0]
    g = curves.set_index("negative_examples")["score"]
    assert s["initial_slope"] == pytest.approx((g[0] - g[20]) / 20)
    assert s["later_slope"] == pytest.approx((g[20] - g[200]) / 180)
    assert s["end_minus_base"] == pytest.approx(g[200])
    assert s["slope_gap"] > 0


def test_verdicts_on_curves_with_the_papers_shape():
    c1, b1 = _synthetic("sentiment", "below")
    c2, b2 = _synthetic("safety", "near")
    curves, base = pd.concat([c1, c2]), pd.concat([b1, b2])
    summary = rebound.summarize(curves, base, 20)
    found = rebound.judge_two_phase(summary, "rebound") + rebound.judge_positive_size(summary, "rebound")
    found += rebound.judge_end_shape(summary, "rebound")
    assert [v.outcome for v in found] == ["reproduced"] * 5
    table = rebound.kl_table(curves, "safety", 0.01)
    assert list(table["positive_size"]) == [100, 1000]
    assert (table["kl_to_base_nats"].diff().dropna() > 0).all()
    assert list(table["negative_to_epsilon"]) == [100, 50]
    assert list(rebound.kl_table_text(table)["negative_to_epsilon"]) == ["100", "50"]
    [kl] = rebound.judge_kl_table(rebound.kl_per_seed(curves, "safety", 0.01), "rebound", 0.01)
    assert kl.outcome == "reproduced"  # larger KL, yet fewer examples to return: the paper's pattern


def test_kl_table_needing_more_examples_after_more_data_is_not_reproduced():
    curves, _ = _synthetic("safety", "near", kl_speed_grows=False)
    table = rebound.kl_table(curves, "safety", 0.01)
    assert list(table["negative_to_epsilon"]) == [100, 200]
    [kl] = rebound.judge_kl_table(rebound.kl_per_seed(curves, "safety", 0.01), "rebound", 0.01)
    assert kl.outcome == "not reproduced"


def test_verdicts_fail_on_flat_curves_and_wrong_ends():
    c1, b1 = _synthetic("sentiment", "flat")
    c2, b2 = _synthetic("safety", "below")
    summary = rebound.summarize(pd.concat([c1, c2]), pd.concat([b1, b2]), 20)
    two_phase = {v.ours.split(":")[0]: v.outcome for v in rebound.judge_two_phase(summary, "rebound")}
    assert two_phase == {"sentiment": "not reproduced", "safety": "reproduced"}
    [end] = rebound.judge_end_shape(summary, "rebound")
    assert end.outcome == "not reproduced"  # sentiment does not end below the base


def test_one_task_or_one_seed_is_not_comparable():
    curves, base = _synthetic("sentiment", "below", seeds=(0,))
    summary = rebound.summarize(curves, base, 20)
    assert {v.outcome for v in rebound.judge_two_phase(summary, "rebound")} == {"not comparable"}
    [end] = rebound.judge_end_shape(summary, "rebound")
    assert end.outcome == "not comparable"


def test_kl_never_below_epsilon_is_censored():
    curves, _ = _synthetic("safety", "near")
    table = rebound.kl_table(curves, "safety", 1e-9)
    assert table["reached"].sum() == 0 and table["negative_to_epsilon"].isna().all()
    assert set(rebound.kl_table_text(table)["negative_to_epsilon"]) == {f"> {NEG[-1]} (not reached)"}
    [kl] = rebound.judge_kl_table(rebound.kl_per_seed(curves, "safety", 1e-9), "rebound", 1e-9)
    assert kl.outcome == "not comparable"
    assert "KL slope per 10x positive data" in kl.ours and ", resolved by" in kl.ours  # KL grows, no noise


def test_kl_growth_inside_the_seed_spread_is_not_resolved():
    per = pd.DataFrame({"positive_size": [50, 500] * 3, "seed": [0, 0, 1, 1, 2, 2],
                        "kl_to_base": [0.45, 0.50, 0.50, 0.46, 0.44, 0.51], "negative_to_epsilon": float("nan"),
                        "negative_max": 100, "kl_min": 0.4})
    [kl] = rebound.judge_kl_table(per, "rebound", 0.01)
    assert "not resolved" in kl.ours and "± is 1 SE over 3 seeds" in kl.reason


def test_partly_reached_epsilon_shows_the_seeds():
    table = pd.DataFrame({"positive_size": [50], "negative_to_epsilon": [40.0], "reached": [2], "seeds": [3],
                          "negative_max": [100]})
    assert rebound.kl_table_text(table)["negative_to_epsilon"].iloc[0] == "40 in 2 of 3 seeds, > 100 in the others"


def test_no_lift_means_nothing_to_rebound_from():
    c1, b1 = _synthetic("sentiment", "below")
    c1.loc[c1["negative_examples"] == 0, "score"] = 0.0  # the positive SFT left the score at the base level
    c2, b2 = _synthetic("safety", "near")
    summary = rebound.summarize(pd.concat([c1, c2]), pd.concat([b1, b2]), 20)
    text, reason = rebound.lift_check(summary[summary["task"] == "sentiment"])
    assert text.startswith("lift (start - base) 0.0000") and reason.startswith("nothing to rebound from")
    assert rebound.lift_check(summary[summary["task"] == "safety"])[1] is None
    two_phase = {v.ours.split(":")[0]: v for v in rebound.judge_two_phase(summary, "rebound")}
    assert two_phase["sentiment"].outcome == "not comparable" and "lift" in two_phase["sentiment"].reason
    assert two_phase["safety"].outcome == "reproduced"
    [end] = rebound.judge_end_shape(summary, "rebound")
    assert end.outcome == "not comparable" and "in sentiment" in end.reason


def test_a_part_that_fails_with_its_lift_resolved_decides_the_end_shape():
    c1, b1 = _synthetic("sentiment", "near")  # lifted, but ends at the base instead of below it
    c2, b2 = _synthetic("safety", "near")
    c2.loc[c2["negative_examples"] == 0, "score"] = 0.0  # safety: no lift, so its part cannot be tested
    [end] = rebound.judge_end_shape(rebound.summarize(pd.concat([c1, c2]), pd.concat([b1, b2]), 20), "rebound")
    assert end.outcome == "not reproduced"
    assert "the sentiment part fails" in end.reason and "safety not testable" in end.reason


def test_positive_size_needs_a_higher_start_too():
    curves, base = _synthetic("sentiment", "below")
    # every positive size starts near 0.5 (well above the base): the start does not grow with positive data
    # beyond the seed spread, while the initial drop still does
    start = curves["negative_examples"] == 0
    spread = curves["seed"].map({0: 0.02, 1: -0.02, 2: 0.01}) * (curves["positive_size"] == 1000)
    curves.loc[start, "score"] = 0.5 + spread[start]
    summary = rebound.summarize(curves, base, 20)
    [v] = rebound.judge_positive_size(summary, "rebound")
    assert v.outcome == "not reproduced"
    assert "start not resolved, initial drop resolved" in v.reason


def test_near_base_is_judged_against_the_noise():
    c1, b1 = _synthetic("sentiment", "below")
    c2, b2 = _synthetic("safety", "near")
    c2 = c2.assign(score=c2["score"] + np.where(c2["negative_examples"] == 200, 0.05, 0.0))  # ends 0.05 above
    [end] = rebound.judge_end_shape(rebound.summarize(pd.concat([c1, c2]), pd.concat([b1, b2]), 20), "rebound")
    assert end.outcome == "not reproduced" and "|end - base| <=" in end.reason


def test_model_trend_and_increase():
    frames = []
    for i, size in enumerate(("s", "m", "l")):
        c, b = _synthetic("sentiment", "below", positive_sizes=(100,), rng=np.random.default_rng(i))
        c["score"] = c["score"] * (1 + i)  # bigger model: steeper
        frames.append((c.assign(size=size, model=size), b.assign(size=size, model=size)))
    summary = rebound.summarize(pd.concat([f[0] for f in frames]), pd.concat([f[1] for f in frames]), 20)
    trend = rebound.model_trend(summary, "size", ["s", "m", "l"])
    assert list(trend["size"]) == ["s", "m", "l"]
    assert trend["vs_first_mean"].iloc[0] == 0.0
    up = rebound.judge_increase(trend, "size", "initial_slope", "model_size", "model_size", "paper")
    assert up.outcome == "reproduced"
    lift = rebound.model_trend(summary, "size", ["s", "m", "l"], "lift")
    assert rebound.lift_by_model(lift, "size") is None
    flat = lift.assign(lift_mean=lambda f: np.where(f["size"] == "m", 0.0, f["lift_mean"]))
    reason = rebound.lift_by_model(flat, "size")
    assert reason.startswith("nothing to rebound from at m:")
    gated = rebound.judge_increase(trend, "size", "initial_slope", "model_size", "model_size", "paper",
                                   no_lift=reason)
    assert gated.outcome == "not comparable" and gated.reason == reason
    down = rebound.judge_increase(trend.iloc[::-1].reset_index(drop=True).assign(
        vs_first_mean=lambda f: -f["vs_first_mean"][::-1].to_numpy()), "size", "initial_slope",
        "model_size", "model_size", "paper")
    assert down.outcome == "not reproduced"


# ---------------------------------------------------------------------------------------------------------
# The smoke preset end to end on the tiny family.
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    cfg = rebound.config()
    result = rebound.run(cfg)
    curves, base, verdict_frame = result["curves"], result["base"], result["verdicts"]
    per_curve = len(cfg.negative_sizes) + 1
    n_sft = len(cfg.tasks) * len(cfg.positive_sizes) * len(cfg.seeds)
    n_dpo = len(cfg.dpo_positive_sizes) * len(cfg.seeds)
    assert len(curves) == (n_sft + n_dpo) * per_curve
    assert len(base) == len(cfg.tasks) * len(cfg.seeds)
    assert np.isfinite(curves[["score", "kl_to_base_nats"]].to_numpy()).all()
    assert (curves["kl_to_base_nats"] >= -1e-6).all()
    assert set(curves["reverse"]) == {"sft", "dpo"}
    # after positive SFT the model has moved away from the base
    assert (curves.loc[curves["negative_examples"] == 0, "kl_to_base_nats"] > 0).all()
    assert set(verdict_frame["outcome"]) <= OUTCOMES
    assert set(verdict_frame["claim"]) == {"rebound_two_phase", "rebound_positive_size", "rebound_below_base",
                                           "kl_table", "preference_ablation"}
    # outcomes agree with the numbers: recompute the two-phase test from the summary
    summary = result["summary"]
    for task, g in summary[summary["reverse"] == "sft"].groupby("task"):
        gaps = rebound.per_seed(g, "slope_gap", ["task"])["slope_gap"]
        mean, se = rebound.mean_se(gaps)
        row = verdict_frame[(verdict_frame["claim"] == "rebound_two_phase")
                            & verdict_frame["ours"].str.startswith(task)].iloc[0]
        t = {2: 6.314, 3: 2.920}[len(gaps)]  # one-sided 95% Student t, 1 and 2 degrees of freedom
        lift, lift_se = rebound.mean_se(rebound.per_seed(g, "lift", ["task"])["lift"])
        expected = "reproduced" if mean - t * se > 0 else "not reproduced"
        assert row["outcome"] == (expected if lift - t * lift_se > 0 else "not comparable")
    # cached units: a second run computes nothing and gives the same numbers
    again = rebound.run(cfg)
    pd.testing.assert_frame_equal(again["curves"], curves)


def test_pretrained_families_get_a_fine_tuning_learning_rate(monkeypatch):
    from elasticity.experiments import model_size, pretraining_volume

    monkeypatch.setenv("ELASTICITY_SCALE", "default")
    assert rebound.config().learning_rate == rebound.PRESETS["default"].learning_rate  # tiny: the preset's
    smol = rebound.config(family="smollm2-135m")
    assert smol.learning_rate == rebound.PRETRAINED_LEARNING_RATE
    assert smol.dpo_learning_rate == rebound.PRETRAINED_DPO_LEARNING_RATE
    assert rebound.config(family="smollm2-135m", learning_rate=1e-4).learning_rate == 1e-4
    assert model_size.config(family="smollm2-135m").learning_rate == rebound.PRETRAINED_LEARNING_RATE
    assert pretraining_volume.config(family="smollm2-135m").learning_rate == rebound.PRETRAINED_LEARNING_RATE


def test_positive_epochs_reach_the_positive_sft_only(tmp_path, monkeypatch):
    """A unit's positive SFT makes `positive_epochs` passes; its negative run stays one pass, read along it."""
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    cfg = rebound.config(positive_sizes=(8,), positive_epochs=2.0, seeds=(0,), tasks=("sentiment",),
                         kl_task="sentiment", dpo_task=None)
    u = rebound.unit(cfg, "sentiment", None, None, 8, 0)
    assert u.positive_epochs == 2.0
    runs = []
    real = rebound.finetune.finetune

    def recording(model, tokenizer, examples, ft, **kwargs):
        out = real(model, tokenizer, examples, ft, **kwargs)
        runs.append((len(examples), ft.epochs, len(out.losses)))
        return out

    monkeypatch.setattr(rebound.finetune, "finetune", recording)
    rows = rebound._compute_unit(u)["rows"]
    steps = -(-8 // cfg.batch_size)  # optimizer steps per pass over 8 examples
    assert runs == [(8, 2.0, 2 * steps), (cfg.negative_sizes[-1], 1.0, cfg.negative_sizes[-1] // cfg.batch_size)]
    assert [r["negative_examples"] for r in rows] == [0, *cfg.negative_sizes]


def test_the_default_preset_passes_over_positive_data_more_than_once(monkeypatch):
    monkeypatch.setenv("ELASTICITY_SCALE", "default")
    assert rebound.config().positive_epochs > 1 and rebound.PRESETS["smoke"].positive_epochs == 1
    smol = rebound.config(family="smollm2-135m")
    assert smol.positive_epochs == rebound.PRETRAINED_POSITIVE_EPOCHS
    assert rebound.config(family="smollm2-135m", positive_epochs=3.0).positive_epochs == 3.0


def test_paper_table3_text_comes_from_the_paper_module():
    from elasticity import paper

    text = rebound._paper_table3_text()
    table = paper.table3_kl_to_base()
    for model in table["model"].unique():
        assert model in text
    assert f"{table['negative_to_epsilon'].iloc[0]}" in text
    sizes = f"(positive sizes {table['positive_size'].min():,} -> {table['positive_size'].max():,})"
    assert text.endswith(sizes)  # the sentence is whole, not cut after "(positive sizes"


@pytest.mark.slow
def test_units_in_worker_processes_equal_units_in_process(tmp_path, monkeypatch):
    """Two workers compute the same numbers as this process (same seeds, one torch thread each), and a unit
    already cached is not computed again."""
    import torch

    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    cfg = rebound.config(positive_sizes=(8,), dpo_positive_sizes=(8,), seeds=(0,), tasks=("sentiment",),
                         kl_task="sentiment")
    units = rebound.units(cfg)
    assert [type(u).__name__ for u in units] == ["BaseUnit", "Unit", "Unit"] and units[2].reverse == "dpo"
    assert rebound.pending(units) == [units[2], units[1], units[0]]  # the longest (DPO) first
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rebound.measure(units[:1], "in process", workers=1)
        assert rebound.pending(units) == [units[2], units[1]]
        in_workers = rebound.measure(units, "workers", workers=2)
        assert rebound.pending(units) == []
        (tmp_path / "results").rename(tmp_path / "results-workers")
        in_process = rebound.measure(units, "in process", workers=1)
    finally:
        torch.set_num_threads(threads)
    assert in_workers == in_process
