"""Tests of rebound's judging: the curve summaries, the verdicts and the KL table, on synthetic curves."""

import math

import numpy as np
import pandas as pd
import pytest

from elasticity.experiments import rebound_judge

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
    s = rebound_judge.summarize(curves, base, 20).iloc[0]
    g = curves.set_index("negative_examples")["score"]
    assert s["initial_slope"] == pytest.approx((g[0] - g[20]) / 20)
    assert s["later_slope"] == pytest.approx((g[20] - g[200]) / 180)
    assert s["end_minus_base"] == pytest.approx(g[200])
    assert s["slope_gap"] > 0


def test_verdicts_on_curves_with_the_papers_shape():
    c1, b1 = _synthetic("sentiment", "below")
    c2, b2 = _synthetic("safety", "near")
    curves, base = pd.concat([c1, c2]), pd.concat([b1, b2])
    summary = rebound_judge.summarize(curves, base, 20)
    found = rebound_judge.judge_two_phase(summary, "rebound") + rebound_judge.judge_positive_size(summary, "rebound")
    found += rebound_judge.judge_end_shape(summary, "rebound")
    assert [v.outcome for v in found] == ["reproduced"] * 5
    table = rebound_judge.kl_table(curves, "safety", 0.01)
    assert list(table["positive_size"]) == [100, 1000]
    assert (table["kl_to_base_nats"].diff().dropna() > 0).all()
    assert list(table["negative_to_epsilon"]) == [100, 50]
    assert list(rebound_judge.kl_table_text(table)["negative_to_epsilon"]) == ["100", "50"]
    [kl] = rebound_judge.judge_kl_table(rebound_judge.kl_per_seed(curves, "safety", 0.01), "rebound", 0.01)
    assert kl.outcome == "reproduced"  # larger KL, yet fewer examples to return: the paper's pattern


def test_kl_table_needing_more_examples_after_more_data_is_not_reproduced():
    curves, _ = _synthetic("safety", "near", kl_speed_grows=False)
    table = rebound_judge.kl_table(curves, "safety", 0.01)
    assert list(table["negative_to_epsilon"]) == [100, 200]
    [kl] = rebound_judge.judge_kl_table(rebound_judge.kl_per_seed(curves, "safety", 0.01), "rebound", 0.01)
    assert kl.outcome == "not reproduced"


def test_verdicts_fail_on_flat_curves_and_wrong_ends():
    c1, b1 = _synthetic("sentiment", "flat")
    c2, b2 = _synthetic("safety", "below")
    summary = rebound_judge.summarize(pd.concat([c1, c2]), pd.concat([b1, b2]), 20)
    two_phase = {v.ours.split(":")[0]: v.outcome for v in rebound_judge.judge_two_phase(summary, "rebound")}
    assert two_phase == {"sentiment": "not reproduced", "safety": "reproduced"}
    [end] = rebound_judge.judge_end_shape(summary, "rebound")
    assert end.outcome == "not reproduced"  # sentiment does not end below the base


def test_one_task_or_one_seed_is_not_comparable():
    curves, base = _synthetic("sentiment", "below", seeds=(0,))
    summary = rebound_judge.summarize(curves, base, 20)
    assert {v.outcome for v in rebound_judge.judge_two_phase(summary, "rebound")} == {"not comparable"}
    [end] = rebound_judge.judge_end_shape(summary, "rebound")
    assert end.outcome == "not comparable"


def test_kl_never_below_epsilon_is_censored():
    curves, _ = _synthetic("safety", "near")
    table = rebound_judge.kl_table(curves, "safety", 1e-9)
    assert table["reached"].sum() == 0 and table["negative_to_epsilon"].isna().all()
    assert set(rebound_judge.kl_table_text(table)["negative_to_epsilon"]) == {f"> {NEG[-1]} (not reached)"}
    [kl] = rebound_judge.judge_kl_table(rebound_judge.kl_per_seed(curves, "safety", 1e-9), "rebound", 1e-9)
    assert kl.outcome == "not comparable"
    assert "KL slope per 10x positive data" in kl.ours and ", resolved by" in kl.ours  # KL grows, no noise


def test_kl_growth_inside_the_seed_spread_is_not_resolved():
    per = pd.DataFrame({"positive_size": [50, 500] * 3, "seed": [0, 0, 1, 1, 2, 2],
                        "kl_to_base": [0.45, 0.50, 0.50, 0.46, 0.44, 0.51], "negative_to_epsilon": float("nan"),
                        "negative_max": 100, "kl_min": 0.4})
    [kl] = rebound_judge.judge_kl_table(per, "rebound", 0.01)
    assert "not resolved" in kl.ours and "± is 1 SE over 3 seeds" in kl.reason


def test_partly_reached_epsilon_shows_the_seeds():
    table = pd.DataFrame({"positive_size": [50], "negative_to_epsilon": [40.0], "reached": [2], "seeds": [3],
                          "negative_max": [100]})
    text = rebound_judge.kl_table_text(table)["negative_to_epsilon"].iloc[0]
    assert text == "40 in 2 of 3 seeds, > 100 in the others"


def test_no_lift_means_nothing_to_rebound_from():
    c1, b1 = _synthetic("sentiment", "below")
    c1.loc[c1["negative_examples"] == 0, "score"] = 0.0  # the positive SFT left the score at the base level
    c2, b2 = _synthetic("safety", "near")
    summary = rebound_judge.summarize(pd.concat([c1, c2]), pd.concat([b1, b2]), 20)
    text, reason = rebound_judge.lift_check(summary[summary["task"] == "sentiment"])
    assert text.startswith("lift (start - base) 0.0000") and reason.startswith("nothing to rebound from")
    assert rebound_judge.lift_check(summary[summary["task"] == "safety"])[1] is None
    two_phase = {v.ours.split(":")[0]: v for v in rebound_judge.judge_two_phase(summary, "rebound")}
    assert two_phase["sentiment"].outcome == "not comparable" and "lift" in two_phase["sentiment"].reason
    assert two_phase["safety"].outcome == "reproduced"
    [end] = rebound_judge.judge_end_shape(summary, "rebound")
    assert end.outcome == "not comparable" and "in sentiment" in end.reason


def test_a_part_that_fails_with_its_lift_resolved_decides_the_end_shape():
    c1, b1 = _synthetic("sentiment", "near")  # lifted, but ends at the base instead of below it
    c2, b2 = _synthetic("safety", "near")
    c2.loc[c2["negative_examples"] == 0, "score"] = 0.0  # safety: no lift, so its part cannot be tested
    summary = rebound_judge.summarize(pd.concat([c1, c2]), pd.concat([b1, b2]), 20)
    [end] = rebound_judge.judge_end_shape(summary, "rebound")
    assert end.outcome == "not reproduced"
    assert "the sentiment part fails" in end.reason and "safety not testable" in end.reason


def test_positive_size_needs_a_higher_start_too():
    curves, base = _synthetic("sentiment", "below")
    # every positive size starts near 0.5 (well above the base): the start does not grow with positive data
    # beyond the seed spread, while the initial drop still does
    start = curves["negative_examples"] == 0
    spread = curves["seed"].map({0: 0.02, 1: -0.02, 2: 0.01}) * (curves["positive_size"] == 1000)
    curves.loc[start, "score"] = 0.5 + spread[start]
    summary = rebound_judge.summarize(curves, base, 20)
    [v] = rebound_judge.judge_positive_size(summary, "rebound")
    assert v.outcome == "not reproduced"
    assert "start not resolved, initial drop resolved" in v.reason


def test_near_base_is_judged_against_the_noise():
    c1, b1 = _synthetic("sentiment", "below")
    c2, b2 = _synthetic("safety", "near")
    c2 = c2.assign(score=c2["score"] + np.where(c2["negative_examples"] == 200, 0.05, 0.0))  # ends 0.05 above
    summary = rebound_judge.summarize(pd.concat([c1, c2]), pd.concat([b1, b2]), 20)
    [end] = rebound_judge.judge_end_shape(summary, "rebound")
    assert end.outcome == "not reproduced" and "|end - base| <=" in end.reason


def test_model_trend_and_increase():
    frames = []
    for i, size in enumerate(("s", "m", "l")):
        c, b = _synthetic("sentiment", "below", positive_sizes=(100,), rng=np.random.default_rng(i))
        c["score"] = c["score"] * (1 + i)  # bigger model: steeper
        frames.append((c.assign(size=size, model=size), b.assign(size=size, model=size)))
    summary = rebound_judge.summarize(pd.concat([f[0] for f in frames]), pd.concat([f[1] for f in frames]), 20)
    trend = rebound_judge.model_trend(summary, "size", ["s", "m", "l"])
    assert list(trend["size"]) == ["s", "m", "l"]
    assert trend["vs_first_mean"].iloc[0] == 0.0
    up = rebound_judge.judge_increase(trend, "size", "initial_slope", "model_size", "model_size", "paper")
    assert up.outcome == "reproduced"
    lift = rebound_judge.model_trend(summary, "size", ["s", "m", "l"], "lift")
    assert rebound_judge.lift_by_model(lift, "size") is None
    flat = lift.assign(lift_mean=lambda f: np.where(f["size"] == "m", 0.0, f["lift_mean"]))
    reason = rebound_judge.lift_by_model(flat, "size")
    assert reason.startswith("nothing to rebound from at m:")
    gated = rebound_judge.judge_increase(trend, "size", "initial_slope", "model_size", "model_size", "paper",
                                   no_lift=reason)
    assert gated.outcome == "not comparable" and gated.reason == reason
    down = rebound_judge.judge_increase(trend.iloc[::-1].reset_index(drop=True).assign(
        vs_first_mean=lambda f: -f["vs_first_mean"][::-1].to_numpy()), "size", "initial_slope",
        "model_size", "model_size", "paper")
    assert down.outcome == "not reproduced"


def test_paper_table3_text_comes_from_the_paper_module():
    from elasticity import paper

    text = rebound_judge._paper_table3_text()
    table = paper.table3_kl_to_base()
    for model in table["model"].unique():
        assert model in text
    assert f"{table['negative_to_epsilon'].iloc[0]}" in text
    sizes = f"(positive sizes {table['positive_size'].min():,} -> {table['positive_size'].max():,})"
    assert text.endswith(sizes)  # the sentence is whole, not cut after "(positive sizes"
