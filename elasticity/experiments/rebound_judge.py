"""Rebound's judging: summaries of the curves, the paper's claims tested on them, and the KL-to-base table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from elasticity import paper, stats, verdicts

# What the paper reports for the end of the negative curves (Figure 4, per CY-F and KO): the IMDb curves
# fall below the base model's level, the BeaverTails curves converge near it. Each task is matched to
# the paper's task it stands in for.
END_SHAPE = {"sentiment": "below", "sentiment-imdb": "below", "safety": "near", "safety-beavertails": "near"}


# ---------------------------------------------------------------------------------------------------------
# Summaries of the curves.
# ---------------------------------------------------------------------------------------------------------

GROUP = ["task", "model", "family", "size", "budget_tokens", "reverse", "positive_size", "seed"]


def summarize(curves: pd.DataFrame, base: pd.DataFrame, initial_negative: int) -> pd.DataFrame:
    """One row per curve: start, the score after `initial_negative` and at the end, slopes, base level.

    Columns added to the curve's keys: `start` (score right after positive SFT), `initial` (after
    `initial_negative` negative examples), `end` (after the last), `base` (the base model's score, same
    task, model and seed), `lift` = start - base, `initial_drop` = start - initial, `initial_slope` =
    initial_drop / initial_negative and `later_slope` = (initial - end) / (last - initial_negative), both
    in score per negative example (positive = falling), `slope_gap` = initial_slope - later_slope,
    `end_minus_base`, `kl_after_positive_nats`, `kl_min_nats`.
    """
    rows = []
    base_keys = ["task", "model", "seed"]
    base_score = {tuple(r[k] for k in base_keys): r["score"] for r in base.to_dict("records")}
    for key, group in curves.groupby(GROUP, sort=False, dropna=False):
        g = group.set_index("negative_examples").sort_index()
        last = int(g.index.max())
        row = dict(zip(GROUP, key, strict=True))
        start, initial, end = g.loc[0, "score"], g.loc[initial_negative, "score"], g.loc[last, "score"]
        b = base_score[(row["task"], row["model"], row["seed"])]
        row.update({
            "start": start, "initial": initial, "end": end, "base": b, "lift": start - b,
            "initial_drop": start - initial, "initial_slope": (start - initial) / initial_negative,
            "later_slope": (initial - end) / (last - initial_negative),
            "end_minus_base": end - b,
            "kl_after_positive_nats": g.loc[0, "kl_to_base_nats"],
            "kl_min_nats": g["kl_to_base_nats"].min(),
        })
        row["slope_gap"] = row["initial_slope"] - row["later_slope"]
        rows.append(row)
    return pd.DataFrame(rows)


def per_seed(summary: pd.DataFrame, column: str, by: list[str]) -> pd.DataFrame:
    """Mean of `column` over positive sizes for each seed and `by` group (seeds are the replicates)."""
    return summary.groupby([*by, "seed"], as_index=False, dropna=False)[column].mean()


def _fmt(mean: float, se: float, digits: int = 4) -> str:
    return f"{mean:.{digits}f} ± {se:.{digits}f}" if math.isfinite(se) else f"{mean:.{digits}f}"


def _resolved(value: bool | None) -> str:
    return {True: "resolved", False: "not resolved", None: "no standard error"}[value]


def _log_slope(g: pd.DataFrame, column: str) -> float:
    # Change of `column` per 10x positive data.
    return stats.log_slope(g["positive_size"], g[column])


def size_trend(summary: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per (task, model, reverse, seed): OLS slope of `column` on log10(positive_size), per 10x data."""
    rows = []
    for key, g in summary.groupby(["task", "model", "reverse", "seed"], sort=False):
        rows.append({**dict(zip(["task", "model", "reverse", "seed"], key, strict=True)),
                     "slope": _log_slope(g, column)})
    return pd.DataFrame(rows)


def lift_check(summary: pd.DataFrame) -> tuple[str, str | None]:
    """The precondition of a rebound verdict: did the positive SFT lift the score above the base model's?

    The lift is start - base (score units), per seed the mean over positive sizes; it is resolved when its
    mean over seeds is above zero by a one-sided t-test at the 95% level (`stats.above_zero`). Without a
    resolved lift there is nothing to rebound from, and the verdict is "not comparable".

    Returns:
        (text, reason): `text` gives the lift, "lift (start - base) mean ± se"; `reason` is None when the
        lift is resolved, else why the verdict is not comparable.
    """
    lifts = per_seed(summary, "lift", [])["lift"]
    mean, se = stats.mean_se(lifts)
    n = len(lifts)
    resolved = stats.above_zero(mean, se, n)
    reason = None
    if resolved is None:
        reason = "fewer than 2 seeds: no standard error"
    elif not resolved:
        reason = (f"nothing to rebound from: the positive SFT lift (start - base) {_fmt(mean, se)} is not above "
                  f"{verdicts.t_text(n)}; {verdicts.pm_text(n)}")
    return f"lift (start - base) {_fmt(mean, se)}", reason


def judge_two_phase(summary: pd.DataFrame, chapter: str, reverse: str = "sft") -> list[verdicts.Verdict]:
    """Claim `rebound_two_phase`, one verdict per task: initial slope exceeds the later slope.

    Judged only where the positive SFT lifted the score (`lift_check`). The test: per seed, the mean over
    positive sizes of initial_slope - later_slope; it holds when the mean over seeds is above zero by a
    one-sided t-test at the 95% level (`stats.above_zero`).
    """
    out = []
    sub = summary[summary["reverse"] == reverse]
    for task, g in sub.groupby("task", sort=False):
        lift, no_lift = lift_check(g)
        seeds = per_seed(g, "slope_gap", ["task"])["slope_gap"]
        mean, se = stats.mean_se(seeds)
        init, init_se = stats.mean_se(per_seed(g, "initial_slope", ["task"])["initial_slope"])
        later, later_se = stats.mean_se(per_seed(g, "later_slope", ["task"])["later_slope"])
        n = len(seeds)
        out.append(verdicts.Verdict(
            claim="rebound_two_phase", chapter=chapter,
            ours=(f"{task}: {lift}; initial slope {_fmt(init, init_se)} vs later {_fmt(later, later_se)} score "
                  f"per negative example; gap {_fmt(mean, se)} ({n} seeds)"),
            paper="fast fall over the first negative examples, then a slower decline (curves only)",
            outcome=verdicts.decide(stats.above_zero(mean, se, n), comparable=no_lift is None),
            reason=no_lift or (f"lift resolved; initial slope - later slope > {verdicts.t_text(n)} over seeds; "
                               f"{verdicts.pm_text(n)}"),
        ))
    return out


def judge_positive_size(summary: pd.DataFrame, chapter: str, reverse: str = "sft",
                        claim: str = "rebound_positive_size") -> list[verdicts.Verdict]:
    """More positive data, a higher start and a faster initial drop, one verdict per task.

    Judged only where the positive SFT lifted the score (`lift_check`). Per seed, the least-squares slopes
    on log10(positive size) of the start and of the initial drop; it holds when both means over seeds are
    above zero by a one-sided t-test at the 95% level (`stats.above_zero`).
    """
    out = []
    paper_text = "more positive data: higher start, faster initial drop (curves only)"
    sub = summary[summary["reverse"] == reverse]
    for task, g in sub.groupby("task", sort=False):
        drops = size_trend(g, "initial_drop")["slope"].dropna()
        starts = size_trend(g, "start")["slope"].dropna()
        if drops.empty:
            out.append(verdicts.Verdict(claim=claim, chapter=chapter, ours=f"{task}: one positive size only",
                                        paper=paper_text, outcome="not comparable",
                                        reason="needs at least 2 positive sizes"))
            continue
        lift, no_lift = lift_check(g)
        d_mean, d_se = stats.mean_se(drops)
        s_mean, s_se = stats.mean_se(starts)
        n = len(drops)
        higher = stats.above_zero(s_mean, s_se, n)
        faster = stats.above_zero(d_mean, d_se, n)
        out.append(verdicts.Verdict(
            claim=claim, chapter=chapter,
            ours=(f"{task} ({reverse.upper()}): {lift}; per 10x positive data, start {_fmt(s_mean, s_se)} and "
                  f"initial drop {_fmt(d_mean, d_se)} ({n} seeds)"),
            paper=paper_text,
            outcome=verdicts.decide(bool(higher and faster), comparable=no_lift is None),
            reason=no_lift or (f"lift resolved; the slopes on log10(positive size) of the start and of the initial "
                               f"drop must both exceed {verdicts.t_text(n)} over seeds: start "
                               f"{_resolved(higher)}, initial drop {_resolved(faster)}; {verdicts.pm_text(n)}"),
        ))
    return out


def judge_end_shape(summary: pd.DataFrame, chapter: str, reverse: str = "sft") -> list[verdicts.Verdict]:
    """Claim `rebound_below_base`: sentiment-like curves end below the base, safety-like ones near it.

    Per task, per seed, the mean over positive sizes of end - base (score units). Judged only where every
    task's positive SFT lifted the score (`lift_check`). A "below" task holds when end - base is below zero
    by a one-sided t-test at the 95% level (end - base + t x se < 0, `stats.above_zero`); a "near"
    task holds when end - base is within the noise of zero, |end - base| <= t x se
    (`stats.within_noise`), a test that a wide spread passes. The claim is reproduced when both kinds
    of task are present and both hold; a part that fails where its lift is resolved decides "not
    reproduced" whatever the other part shows.
    """
    sub = summary[summary["reverse"] == reverse]
    parts, holds_all, no_lifts, failed, kinds, n = [], [], [], [], set(), 0
    for task, g in sub.groupby("task", sort=False):
        kind = END_SHAPE.get(task)
        if kind is None:
            continue
        kinds.add(kind)
        gaps = per_seed(g, "end_minus_base", ["task"])["end_minus_base"]
        gap, gap_se = stats.mean_se(gaps)
        n = len(gaps)
        lift, no_lift = lift_check(g)
        if no_lift:
            no_lifts.append(task)
        if kind == "below":
            holds = stats.above_zero(-gap, gap_se, n)
            parts.append(f"{task}: {lift}; end - base {_fmt(gap, gap_se)} (expected < 0)")
        else:
            holds = stats.within_noise(gap, gap_se, n)
            parts.append(f"{task}: {lift}; end - base {_fmt(gap, gap_se)} (expected within noise of 0)")
        holds_all.append(holds)
        if holds is False and not no_lift:
            failed.append(task)
    if kinds != {"below", "near"}:
        reason = "needs one sentiment-like and one safety-like task"
    elif n < 2:
        reason = "fewer than 2 seeds: no standard error"
    elif failed:
        untested = f"; {', '.join(no_lifts)} not testable (its positive SFT lift is not resolved)" if no_lifts else ""
        reason = (f"the {', '.join(failed)} part fails where its positive SFT lift is resolved (sentiment: end - base "
                  f"+ {verdicts.t_text(n)} < 0; safety: |end - base| <= that many){untested}; "
                  f"{verdicts.pm_text(n)}")
    elif no_lifts:
        reason = (f"nothing to rebound from in {', '.join(no_lifts)}: the positive SFT lift (start - base) is not "
                  f"above {verdicts.t_text(n)}; {verdicts.pm_text(n)}")
    else:
        t = verdicts.t_text(n)
        reason = (f"lifts resolved; sentiment: end - base + {t} < 0; safety: |end - base| <= {t} (end not "
                  f"resolved from the base, which a wide spread passes); {verdicts.pm_text(n)}")
    return [verdicts.Verdict(
        claim="rebound_below_base", chapter=chapter, ours="; ".join(parts) or "no task",
        paper="IMDb curves end below the base level; BeaverTails curves converge near it",
        outcome=verdicts.decide(all(h is True for h in holds_all),
                                comparable=kinds == {"below", "near"} and n >= 2 and (not no_lifts or bool(failed))),
        reason=reason,
    )]


# ---------------------------------------------------------------------------------------------------------
# The KL-to-base table (the paper's Table 3).
# ---------------------------------------------------------------------------------------------------------


def kl_per_seed(curves: pd.DataFrame, task: str, epsilon: float) -> pd.DataFrame:
    """Per positive size and seed: KL to the base after positive SFT, and negative examples to bring it below epsilon.

    `kl_to_base` (nats/token) right after the positive SFT; `negative_to_epsilon` the first evaluated
    negative size at which the KL is below `epsilon` (a grid value, so an upper bound on the exact count),
    NaN if it never is within `negative_max`, the largest negative size; `kl_min` the smallest KL seen
    along the negative run.
    """
    sub = curves[(curves["task"] == task) & (curves["reverse"] == "sft")]
    rows = []
    for (size, seed), g in sub.groupby(["positive_size", "seed"]):
        g = g.sort_values("negative_examples")
        after = float(g.loc[g["negative_examples"] == 0, "kl_to_base_nats"].iloc[0])
        neg = g[g["negative_examples"] > 0]
        below = neg[neg["kl_to_base_nats"] < epsilon]
        rows.append({"positive_size": size, "seed": seed, "kl_to_base": after,
                     "negative_to_epsilon": float(below["negative_examples"].iloc[0]) if len(below) else math.nan,
                     "negative_max": int(neg["negative_examples"].max()),
                     "kl_min": float(neg["kl_to_base_nats"].min())})
    return pd.DataFrame(rows)


def kl_summary(per: pd.DataFrame) -> pd.DataFrame:
    """Per positive size, means over seeds of `kl_per_seed`'s table (see `kl_table`)."""
    rows = []
    for size, g in per.groupby("positive_size"):
        rows.append({"positive_size": int(size), "kl_to_base_nats": g["kl_to_base"].mean(),
                     "kl_to_base_sd": stats.sd(g["kl_to_base"]),
                     "negative_to_epsilon": g["negative_to_epsilon"].mean(),
                     "reached": int(g["negative_to_epsilon"].notna().sum()), "seeds": len(g),
                     "negative_max": int(g["negative_max"].max()), "kl_min_nats": g["kl_min"].mean()})
    return pd.DataFrame(rows)


def kl_table(curves: pd.DataFrame, task: str, epsilon: float) -> pd.DataFrame:
    """Per positive size, means over seeds of `kl_per_seed`: `kl_to_base_nats` (with `kl_to_base_sd`),
    `negative_to_epsilon` (over the `reached` seeds of `seeds` where the KL fell below epsilon; NaN if
    none), `negative_max` and `kl_min_nats`."""
    return kl_summary(kl_per_seed(curves, task, epsilon))


def kl_table_text(table: pd.DataFrame) -> pd.DataFrame:
    """`table` for display: `negative_to_epsilon` as text, "> N (not reached)" where no seed reached epsilon
    within the largest negative size N, and the seeds counted where only some did."""
    out = table.copy()
    text = []
    for r in table.itertuples():
        if r.reached == 0:
            text.append(f"> {r.negative_max:,} (not reached)")
        elif r.reached < r.seeds:
            text.append(f"{r.negative_to_epsilon:.0f} in {r.reached} of {r.seeds} seeds, > {r.negative_max:,} in "
                        "the others")
        else:
            text.append(f"{r.negative_to_epsilon:.0f}")
    out["negative_to_epsilon"] = text
    return out


def _paper_table3_text() -> str:
    t = paper.table3_kl_to_base()
    parts = []
    for model, g in t.groupby("model", sort=False):
        g = g.sort_values("positive_size")
        parts.append(f"{model}: KL {g['kl_to_base'].iloc[0]:.2f} -> {g['kl_to_base'].iloc[-1]:.2f}, "
                     f"{g['negative_to_epsilon'].iloc[0]} -> {g['negative_to_epsilon'].iloc[-1]} unsafe examples")
    return ("; ".join(parts) + f" to return below {paper.TABLE3_EPSILON:g} (positive sizes "
            f"{t['positive_size'].min():,} -> {t['positive_size'].max():,})")


def _seed_slope(per: pd.DataFrame, column: str) -> tuple[float, float, int]:
    # Mean ± se over seeds of the per-seed slope of `column` on log10(positive size), and the seed count.
    slopes = pd.Series([_log_slope(g, column) for _, g in per.groupby("seed")]).dropna()
    mean, se = stats.mean_se(slopes) if len(slopes) else (math.nan, math.nan)
    return mean, se, len(slopes)


def judge_kl_table(per: pd.DataFrame, chapter: str, epsilon: float) -> list[verdicts.Verdict]:
    """Claim `kl_table`: KL to the base grows with positive size, negative examples to return shrink.

    `per` is `kl_per_seed`'s table. Per seed, the least-squares slopes on log10(positive size) of the KL
    and of the examples needed; it holds when the KL slope is above zero and the examples' slope below
    zero, each by a one-sided t-test at the 95% level over seeds (`stats.above_zero`). Not comparable
    when some run never brought the KL below epsilon (the count is censored).
    """
    table = kl_summary(per)
    kls = ", ".join(f"{int(s)}: {k:.3f}" for s, k in zip(table["positive_size"], table["kl_to_base_nats"],
                                                            strict=True))
    kl_mean, kl_se, n = _seed_slope(per, "kl_to_base")
    kl_rises = stats.above_zero(kl_mean, kl_se, n)
    growth = (f"KL slope per 10x positive data {_fmt(kl_mean, kl_se, 3)}, {_resolved(kl_rises)} by > "
              f"{verdicts.t_text(n)}")
    reached = table["reached"].to_numpy()
    if (reached < table["seeds"].to_numpy()).any():
        return [verdicts.Verdict(
            claim="kl_table", chapter=chapter,
            ours=(f"KL to base after positive SFT (nats/token) {kls}; {growth}; KL fell below {epsilon:g} in "
                  f"{int(reached.sum())} of {int(table['seeds'].sum())} runs (smallest KL reached "
                  f"{table['kl_min_nats'].min():.3f})"),
            paper=_paper_table3_text(),
            outcome="not comparable",
            reason=(f"the negative runs did not all bring the KL below epsilon = {epsilon:g}, so the count is "
                    f"censored; {verdicts.pm_text(n)}"),
        )]
    need_mean, need_se, _ = _seed_slope(per, "negative_to_epsilon")
    need_falls = stats.above_zero(-need_mean, need_se, n)
    needs = ", ".join(f"{int(s)}: {v:.0f}" for s, v in zip(table["positive_size"], table["negative_to_epsilon"],
                                                             strict=True))
    holds = None if kl_rises is None or need_falls is None else kl_rises and need_falls
    return [verdicts.Verdict(
        claim="kl_table", chapter=chapter,
        ours=(f"KL to base (nats/token) {kls}; {growth}; negative examples to KL < {epsilon:g}: {needs}, slope "
              f"per 10x {_fmt(need_mean, need_se, 1)}, {_resolved(need_falls)} by < -{verdicts.t_text(n)}"),
        paper=_paper_table3_text(),
        outcome=verdicts.decide(holds),
        reason=(f"per-seed least-squares slopes on log10(positive size): KL > {verdicts.t_text(n)} and examples "
                f"needed < -{verdicts.t_text(n)} over seeds; {verdicts.pm_text(n)}") if holds is not None
        else "fewer than 2 seeds: no standard error",
    )]


# Trends across models (model size, pre-training volume).
# ---------------------------------------------------------------------------------------------------------


def model_trend(summary: pd.DataFrame, by: str, order: list, column: str = "initial_slope") -> pd.DataFrame:
    """Per value of `by` (in `order`): mean ± se over seeds of `column` averaged over positive sizes.

    Also the paired (same seed) difference from the first value of `order`: `vs_first_mean`, `vs_first_se`.
    """
    sub = summary[summary["reverse"] == "sft"]
    seeds = sub.groupby([by, "seed"], as_index=False, dropna=False)[column].mean()
    first = seeds[seeds[by] == order[0]].set_index("seed")[column]
    rows = []
    for value in order:
        g = seeds[seeds[by] == value].set_index("seed")[column]
        mean, se = stats.mean_se(g)
        diff_mean, diff_se = stats.mean_se((g - first).dropna())
        rows.append({by: value, f"{column}_mean": mean, f"{column}_se": se, "vs_first_mean": diff_mean,
                     "vs_first_se": diff_se, "seeds": len(g)})
    return pd.DataFrame(rows)


def lift_by_model(lifts: pd.DataFrame, by: str, label=str) -> str | None:
    """The precondition of a rebound verdict across models: `lift_check`, model by model.

    Args:
        lifts: `model_trend(summary, by, order, "lift")`: `lift_mean`, `lift_se`, `seeds` per value of `by`.

    Returns:
        None when every model's positive SFT lift (start - base) is above zero by a one-sided t-test at the
        95% level (`stats.above_zero`); else the reason the verdict is not comparable.
    """
    rows = list(zip(lifts[by], lifts["lift_mean"], lifts["lift_se"], lifts["seeds"], strict=True))
    flat = [label(v) for v, m, s, n in rows if not stats.above_zero(m, s, int(n))]
    if not flat:
        return None
    n = int(lifts["seeds"].max())
    values = ", ".join(f"{label(v)}: {_fmt(m, s)}" for v, m, s, _ in rows)
    return (f"nothing to rebound from at {', '.join(flat)}: positive SFT lift (start - base) {values}, each "
            f"must be above {verdicts.t_text(n)}; {verdicts.pm_text(n)}")


def judge_increase(trend: pd.DataFrame, by: str, column: str, claim: str, chapter: str, paper_text: str,
                   label=str, no_lift: str | None = None) -> verdicts.Verdict:
    """Does `column` increase along `trend`'s rows? Holds when the means increase from row to row and the
    paired (same-seed) difference last - first is above zero by a one-sided t-test at the 95% level.
    Not comparable when `no_lift` gives a reason (see `lift_by_model`)."""
    means = trend[f"{column}_mean"].to_numpy(float)
    ses = trend[f"{column}_se"].to_numpy(float)
    last_diff, last_se = trend["vs_first_mean"].iloc[-1], trend["vs_first_se"].iloc[-1]
    parts = ", ".join(f"{label(v)}: {_fmt(m, s)}" for v, m, s in zip(trend[by], means, ses, strict=True))
    if len(trend) < 2 or not math.isfinite(last_se):
        return verdicts.Verdict(claim=claim, chapter=chapter, ours=f"{column} {parts}", paper=paper_text,
                                outcome="not comparable",
                                reason="needs at least 2 models and 2 seeds")
    monotone = bool(np.all(np.diff(means) > 0))
    pairs = int(min(trend["seeds"].iloc[0], trend["seeds"].iloc[-1]))
    holds = monotone and bool(stats.above_zero(last_diff, last_se, pairs))
    return verdicts.Verdict(
        claim=claim, chapter=chapter,
        ours=f"{column} (score per negative example) {parts}; last - first {_fmt(last_diff, last_se)}",
        paper=paper_text, outcome=verdicts.decide(holds, comparable=no_lift is None),
        reason=no_lift or (f"lifts resolved; means increase with {by} and last - first > "
                           f"{verdicts.t_text(pairs)} (paired by seed); {verdicts.pm_text(pairs)}"),
    )
