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
    """Curves s(n) = end + (start - end) * exp(-n / scale) with a start and speed growing with positive size.

    The same numbers stand for every readout (the mean score and the paper's share judged positive)."""
    rng = rng or np.random.default_rng(0)
    rows, base_rows = [], []
    for seed in seeds:
        base_rows.append({"task": task, "model": "m", "family": "tiny", "size": None, "budget_tokens": None,
                          "seed": seed, "score": base_level, "share_positive": base_level})
        for p in positive_sizes:
            start = base_level + 0.3 + 0.1 * math.log10(p)
            end = {"below": base_level - 0.2, "near": base_level, "flat": start}[shape]
            scale = 30.0 / math.log10(p)
            for n in (0, *NEG):
                score = end + (start - end) * math.exp(-n / scale) + rng.normal(0, 1e-3)
                speed = math.log10(p) if kl_speed_grows else 4 / math.log10(p)
                kl = 0.1 * math.log10(p) * math.exp(-n * speed / 40) + 0.001
                rows.append({"task": task, "model": "m", "family": "tiny", "size": None, "budget_tokens": None,
                             "direction": "forward", "reverse": reverse, "positive_size": p, "seed": seed,
                             "negative_examples": n, "score": score, "share_positive": score, "score_sd": 0.1,
                             "kl_to_base_nats": kl})
    return pd.DataFrame(rows), pd.DataFrame(base_rows)


def test_summarize_slopes_by_hand():
    curves, base = _synthetic("sentiment", "below", seeds=(0,), positive_sizes=(100,))
    s = rebound_judge.summarize(curves, base, 20).iloc[0]
    g = curves.set_index("negative_examples")["score"]
    assert s["initial_slope"] == pytest.approx((g[0] - g[20]) / 20)
    assert s["later_slope"] == pytest.approx((g[20] - g[200]) / 180)
    assert s["end_minus_base"] == pytest.approx(g[200])
    assert s["slope_gap"] > 0


def _by_task(found):
    return {(v.task, v.measure.split(" on ")[0]): v.outcome for v in found}


def test_verdicts_on_curves_with_the_papers_shape():
    c1, b1 = _synthetic("sentiment", "below")
    c2, b2 = _synthetic("safety", "near")
    curves, base = pd.concat([c1, c2]), pd.concat([b1, b2])
    summary = rebound_judge.summarize(curves, base, 20)
    found = rebound_judge.judge_two_phase(summary, "rebound") + rebound_judge.judge_positive_size(summary, "rebound")
    found += rebound_judge.judge_end_shape(summary, "rebound")
    assert [v.outcome for v in found] == ["reproduced"] * 8
    assert [v.task for v in found] == ["sentiment", "safety"] + ["sentiment"] * 2 + ["safety"] * 2 + [
        "sentiment", "safety"]
    assert all(v.family == "tiny" and v.seeds == 3 and v.low > 0 for v in found[:-1])
    assert found[-1].measure == "end - base (share judged positive), within ±0.25 x the lift"
    assert "lies within +-" in found[-1].reason
    table = rebound_judge.kl_table(curves, "safety", 0.01)
    assert list(table["positive_size"]) == [100, 1000]
    assert (table["kl_to_base_nats"].diff().dropna() > 0).all()
    assert list(table["negative_to_epsilon"]) == [100, 50]
    assert list(rebound_judge.kl_table_text(table)["negative_to_epsilon"]) == ["100", "50"]
    per = rebound_judge.kl_per_seed(curves, "safety", 0.01)
    per["kl_to_base"] += per["seed"].map({0: 0.001, 1: -0.002, 2: 0.0})  # the synthetic KL has no noise
    rises, falls = rebound_judge.judge_kl_table(per, "rebound", 0.01, "tiny")
    assert rises.outcome == "reproduced"  # larger KL ...
    assert falls.outcome == "not testable here"  # ... fewer examples to return, identical in every seed: no spread
    assert "no spread" in falls.reason


def test_kl_table_needing_more_examples_after_more_data_is_contradicted():
    curves, _ = _synthetic("safety", "near", kl_speed_grows=False)
    table = rebound_judge.kl_table(curves, "safety", 0.01)
    assert list(table["negative_to_epsilon"]) == [100, 200]
    per = rebound_judge.kl_per_seed(curves, "safety", 0.01)
    per.loc[per["positive_size"] == 1000, "negative_to_epsilon"] += [0, 10, 25]  # grid counts that vary by seed
    _, falls = rebound_judge.judge_kl_table(per, "rebound", 0.01, "tiny")
    assert falls.outcome == "contradicted" and falls.high < 0


def test_verdicts_fail_on_flat_curves_and_wrong_ends():
    c1, b1 = _synthetic("sentiment", "flat")
    c2, b2 = _synthetic("safety", "below")
    summary = rebound_judge.summarize(pd.concat([c1, c2]), pd.concat([b1, b2]), 20)
    two_phase = {v.task: v.outcome for v in rebound_judge.judge_two_phase(summary, "rebound")}
    assert two_phase == {"sentiment": "inconclusive", "safety": "reproduced"}
    ends = {v.task: v for v in rebound_judge.judge_end_shape(summary, "rebound")}
    assert ends["sentiment"].outcome == "contradicted"  # ends above the base, not below
    assert ends["safety"].outcome == "contradicted"  # 0.2 below the base: outside ±0.25 x the lift
    assert "lies outside" in ends["safety"].reason


def test_one_seed_is_not_testable():
    curves, base = _synthetic("sentiment", "below", seeds=(0,))
    summary = rebound_judge.summarize(curves, base, 20)
    [v] = rebound_judge.judge_two_phase(summary, "rebound")
    assert v.outcome == "not testable here" and v.seeds == 1 and "lift" in v.reason
    [end] = rebound_judge.judge_end_shape(summary, "rebound")
    assert end.outcome == "not testable here"


def test_kl_never_below_epsilon_is_censored():
    curves, _ = _synthetic("safety", "near")
    table = rebound_judge.kl_table(curves, "safety", 1e-9)
    assert table["reached"].sum() == 0 and table["negative_to_epsilon"].isna().all()
    assert set(rebound_judge.kl_table_text(table)["negative_to_epsilon"]) == {f"> {NEG[-1]} (not reached)"}
    rises, falls = rebound_judge.judge_kl_table(rebound_judge.kl_per_seed(curves, "safety", 1e-9), "rebound", 1e-9,
                                                "tiny")
    assert rises.measure.startswith("slope of the KL")  # judged whatever the censoring of the counts
    assert falls.outcome == "not testable here" and "censored" in falls.reason and "in 0 of 6 runs" in falls.reason
    assert "reached in 0 of 6 runs" in falls.ours  # counted, never a number in place of the censored count


def test_kl_growth_inside_the_seed_spread_is_inconclusive():
    per = pd.DataFrame({"positive_size": [50, 500] * 3, "seed": [0, 0, 1, 1, 2, 2],
                        "kl_to_base": [0.45, 0.50, 0.50, 0.46, 0.44, 0.51], "negative_to_epsilon": float("nan"),
                        "negative_max": 100, "kl_min": 0.4})
    rises, _ = rebound_judge.judge_kl_table(per, "rebound", 0.01, "tiny")
    assert rises.outcome == "inconclusive" and rises.low < 0 < rises.high
    assert "the design detects" in rises.reason


def test_partly_reached_epsilon_shows_the_seeds():
    table = pd.DataFrame({"positive_size": [50], "negative_to_epsilon": [40.0], "reached": [2], "seeds": [3],
                          "negative_max": [100]})
    text = rebound_judge.kl_table_text(table)["negative_to_epsilon"].iloc[0]
    assert text == "40 in 2 of 3 seeds, > 100 in the others"


def test_no_lift_means_nothing_to_rebound_from():
    c1, b1 = _synthetic("sentiment", "below")
    c1.loc[c1["negative_examples"] == 0, "share_positive"] = 0.0  # the positive SFT left it at the base level
    c2, b2 = _synthetic("safety", "near")
    summary = rebound_judge.summarize(pd.concat([c1, c2]), pd.concat([b1, b2]), 20)
    lift, reason = rebound_judge.lift_check(summary[summary["task"] == "sentiment"])
    assert lift.mean == pytest.approx(0.0) and reason.startswith("precondition failed: the positive SFT lift")
    assert rebound_judge.lift_check(summary[summary["task"] == "safety"])[1] is None
    two_phase = {v.task: v for v in rebound_judge.judge_two_phase(summary, "rebound")}
    assert two_phase["sentiment"].outcome == "not testable here" and "lift" in two_phase["sentiment"].reason
    assert two_phase["safety"].outcome == "reproduced"
    ends = {v.task: v.outcome for v in rebound_judge.judge_end_shape(summary, "rebound")}
    assert ends == {"sentiment": "not testable here", "safety": "reproduced"}


def test_positive_size_judges_the_start_and_the_drop_apart():
    curves, base = _synthetic("sentiment", "below")
    # every positive size starts near 0.5 (well above the base): the start does not grow with positive data
    # beyond the seed spread, while the initial drop still does
    start = curves["negative_examples"] == 0
    spread = curves["seed"].map({0: 0.02, 1: -0.02, 2: 0.01}) * (curves["positive_size"] == 1000)
    curves.loc[start, "score"] = 0.5 + spread[start]
    summary = rebound_judge.summarize(curves, base, 20, "score")
    start_v, drop_v = rebound_judge.judge_positive_size(summary, "rebound")
    assert "slope of the start" in start_v.measure and start_v.outcome == "inconclusive"
    assert "slope of the initial drop" in drop_v.measure and drop_v.outcome == "reproduced"


def test_one_positive_size_is_not_testable():
    curves, base = _synthetic("sentiment", "below", positive_sizes=(100,))
    summary = rebound_judge.summarize(curves, base, 20)
    found = rebound_judge.judge_positive_size(summary, "rebound")
    assert {v.outcome for v in found} == {"not testable here"} and "1 positive size" in found[0].reason


def test_near_base_is_an_equivalence_test():
    c2, b2 = _synthetic("safety", "near")
    noisy = c2.assign(score=c2["score"] + np.where(c2["negative_examples"] == 200,
                                                   c2["seed"].map({0: 0.3, 1: -0.3, 2: 0.05}), 0.0))
    [end] = rebound_judge.judge_end_shape(rebound_judge.summarize(noisy, b2, 20, "score"), "rebound")
    assert end.outcome == "inconclusive"  # a wide spread no longer passes as "near"
    [end] = rebound_judge.judge_end_shape(rebound_judge.summarize(c2, b2, 20, "score"), "rebound")
    assert end.outcome == "reproduced"


def test_model_trend_and_increase():
    frames = []
    for i, size in enumerate(("s", "m", "l")):
        c, b = _synthetic("sentiment", "below", positive_sizes=(100,), rng=np.random.default_rng(i))
        c["score"] = c["score"] * (1 + i)  # bigger model: steeper
        frames.append((c.assign(size=size, model=size), b.assign(size=size, model=size)))
    summary = rebound_judge.summarize(pd.concat([f[0] for f in frames]), pd.concat([f[1] for f in frames]), 20, "score")
    trend = rebound_judge.model_trend(summary, "size", ["s", "m", "l"])
    assert list(trend["size"]) == ["s", "m", "l"]
    assert trend["vs_first_mean"].iloc[0] == 0.0
    up = rebound_judge.judge_increase(summary, trend, "size", "initial_slope", "model_size", "model_size", "paper")
    assert up.outcome == "reproduced" and up.measure.startswith("initial_slope at l - at s")
    assert rebound_judge.lift_by_model(summary, "size", ["s", "m", "l"]) is None
    flat = summary.assign(lift=lambda f: np.where(f["size"] == "m", f["lift"] * f["seed"].map({0: 1, 1: -1, 2: 0}),
                                                  f["lift"]))
    reason = rebound_judge.lift_by_model(flat, "size", ["s", "m", "l"])
    assert reason.startswith("precondition failed: the positive SFT lift (start - base) is not above zero at m:")
    gated = rebound_judge.judge_increase(flat, trend, "size", "initial_slope", "model_size", "model_size", "paper")
    assert gated.outcome == "not testable here" and gated.reason == reason
    down = rebound_judge.judge_increase(summary, trend.iloc[::-1].reset_index(drop=True), "size", "initial_slope",
                                        "model_size", "model_size", "paper")
    assert down.outcome == "contradicted"


def test_paper_table3_text_comes_from_the_paper_module():
    from elasticity import paper

    text = rebound_judge._paper_table3_text()
    table = paper.table3_kl_to_base()
    for model in table["model"].unique():
        assert model in text
    assert f"{table['negative_to_epsilon'].iloc[0]}" in text
    sizes = f"(positive sizes {table['positive_size'].min():,} -> {table['positive_size'].max():,})"
    assert text.endswith(sizes)  # the sentence is whole, not cut after "(positive sizes"


def _control(curves, shape_of):
    """A control arm (positive size 0) per task and seed: the base model's curve, `shape_of(n)` above the base."""
    rows = []
    for _, g in curves[curves["positive_size"] > 0].groupby(["task", "seed"]):
        for n in (0, *NEG):
            value = shape_of(n)
            rows.append({**g.iloc[0].to_dict(), "positive_size": 0, "negative_examples": n, "score": value,
                         "share_positive": value, "kl_to_base_nats": 0.0 if n == 0 else 0.01})
    return pd.concat([curves, pd.DataFrame(rows)], ignore_index=True)


def test_the_control_arm_takes_away_a_saturation_that_needs_no_positive_step():
    """A control curve of the same two-phase shape (fast, then slow, fall) leaves no effect to the positive step;
    a flat control leaves the whole gap. The control never enters the lift, the positive-size slopes or the KL
    table."""
    curves, base = _synthetic("sentiment", "below")
    alone = rebound_judge.judge_two_phase(rebound_judge.summarize(curves, base, 20), "rebound")[0]
    summary = rebound_judge.summarize(curves, base, 20)
    gap = rebound_judge.per_seed(summary, "slope_gap", ["task"])["slope_gap"].mean()
    flat = _control(curves, lambda n: 0.0)
    with_flat = rebound_judge.judge_two_phase(rebound_judge.summarize(flat, base, 20), "rebound")[0]
    assert with_flat.outcome == alone.outcome == "reproduced" and with_flat.effect == pytest.approx(alone.effect)
    assert "control arm" in with_flat.measure and "control arm" not in alone.measure
    same = rebound_judge.summarize(_control(curves, lambda n: -0.75 * (1 - math.exp(-n * math.log10(300) / 30))),
                                   base, 20)
    weaker = rebound_judge.judge_two_phase(same, "rebound")[0]
    assert abs(weaker.effect) < gap / 4 and weaker.outcome != "reproduced"
    assert rebound_judge.lift_check(same)[0].mean == pytest.approx(rebound_judge.lift_check(summary)[0].mean)
    sizes = rebound_judge.judge_positive_size(same, "rebound")
    assert [v.effect for v in sizes] == pytest.approx([v.effect for v in rebound_judge.judge_positive_size(summary,
                                                                                                           "rebound")])
    assert 0 not in set(rebound_judge.kl_per_seed(_control(curves, lambda n: 0.0), "sentiment", 0.01)["positive_size"])


def test_readouts_are_judged_apart_and_named():
    curves, base = _synthetic("sentiment", "below")
    curves["bits_gap"], base["bits_gap"] = curves["score"] * 2, base["score"] * 2
    summary = pd.concat([rebound_judge.summarize(curves, base, 20, r) for r in ("share_positive", "bits_gap")])
    primary = rebound_judge.judge_two_phase(summary[summary["readout"] == "share_positive"], "rebound")[0]
    bits = rebound_judge.judge_two_phase(summary[summary["readout"] == "bits_gap"], "rebound")[0]
    assert primary.task == "sentiment" and bits.task == "sentiment, compression"
    assert "share judged positive" in primary.measure and "bits/token" in bits.measure
    assert bits.effect == pytest.approx(2 * primary.effect)
