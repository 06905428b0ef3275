"""Rebound's judging: summaries of the curves, the paper's claims tested on them, and the KL-to-base table."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from elasticity import paper, stats, verdicts
from elasticity.experiments import rebound_units

# What the paper reports for the end of the negative curves (Figure 4, per CY-F and KO): the IMDb curves
# fall below the base model's level, the BeaverTails curves converge near it. Each task is matched to
# the paper's task it stands in for.
END_SHAPE = {"sentiment": "below", "sentiment-imdb": "below", "safety": "near", "safety-beavertails": "near"}


# ---------------------------------------------------------------------------------------------------------
# Summaries of the curves.
# ---------------------------------------------------------------------------------------------------------

GROUP = ["task", "model", "family", "size", "budget_tokens", "direction", "reverse", "positive_size", "seed"]


def directed(curves: pd.DataFrame) -> pd.DataFrame:
    """`curves` with a `direction` column: all forward where it has none (measured before the reversed direction
    existed, as an older archive's)."""
    return curves if "direction" in curves else curves.assign(direction="forward")


# A reversed curve (`rebound_units.STEPS`: negative data first, then positive) is judged on its readouts negated
# (`oriented`), so that its first step, like the paper's, lifts them and its second step brings them down: every
# summary and verdict below then reads both directions alike.
def oriented(frame: pd.DataFrame, direction: str) -> pd.DataFrame:
    """`frame` (curves or base rows) with every readout of `READOUTS` negated in the reversed direction."""
    if direction == "forward":
        return frame
    out = frame.copy()
    for column in READOUTS:
        out[column] = -out[column]
    return out


@dataclass(frozen=True)
class Readout:
    """How one readout of a curve is named: in a verdict row, in the verdicts' units, on a figure's axis."""

    name: str  # a verdict row's part ("sentiment, compression")
    units: str  # its units in the verdicts' words
    axis: str  # a figure's axis label; {scorer} is the task's scorer


# The readouts a curve is summarized on (`rebound_units.READOUTS`). The paper counts the share of responses
# judged positive (or safe): its readout is the primary one.
READOUTS = {
    "share_positive": Readout("share judged positive", "share judged positive", "share judged positive ({scorer})"),
    "score": Readout("mean score", "mean score", "mean score ({scorer})"),
    "bits_gap": Readout("compression", "bits/token, negative - positive text", "bits/token: negative - positive text"),
}
PRIMARY = "share_positive"


def summarize(curves: pd.DataFrame, base: pd.DataFrame, initial_negative: int, readout: str = PRIMARY) -> pd.DataFrame:
    """One row per curve: the readout right after positive SFT, after `initial_negative` and at the end, slopes,
    base level.

    Columns added to the curve's keys: `readout` (its name, a key of `READOUTS`), `start` (right after
    positive SFT; for the control arm, positive size 0, the base model), `initial` (after `initial_negative`
    negative examples), `end` (after the last), `base` (the base model's, same task, model and seed), `lift` =
    start - base, `initial_drop` = start - initial, `initial_slope` = initial_drop / initial_negative and
    `later_slope` = (initial - end) / (last - initial_negative), both per negative example (positive =
    falling), `slope_gap` = initial_slope - later_slope, `end_minus_base`, `kl_after_positive_nats`,
    `kl_min_nats`.
    """
    rows = []
    base_keys = ["task", "model", "seed"]
    base_level = {tuple(r[k] for k in base_keys): r[readout] for r in base.to_dict("records")}
    for key, group in curves.groupby(GROUP, sort=False, dropna=False):
        g = group.set_index("negative_examples").sort_index()
        last = int(g.index.max())
        row = {**dict(zip(GROUP, key, strict=True)), "readout": readout}
        start, initial, end = g.loc[0, readout], g.loc[initial_negative, readout], g.loc[last, readout]
        b = base_level[(row["task"], row["model"], row["seed"])]
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


def summarize_all(curves: pd.DataFrame, base: pd.DataFrame, initial_negative: int) -> pd.DataFrame:
    """`summarize` on every readout of `READOUTS`, one after the other (the `readout` column tells them apart)."""
    return pd.concat([summarize(curves, base, initial_negative, r) for r in READOUTS], ignore_index=True)


def treated(summary: pd.DataFrame) -> pd.DataFrame:
    """The curves that started with positive SFT (the control arm, positive size 0, left out)."""
    return summary[summary["positive_size"] > 0]


def _readout(summary: pd.DataFrame) -> str:
    # The readout of a `summarize` table (the primary one where the table is empty).
    return summary["readout"].iloc[0] if len(summary) else PRIMARY


def _steps(summary: pd.DataFrame) -> rebound_units.Steps:
    # The steps of a `summarize` table's curves (forward where the table is empty).
    return rebound_units.STEPS[summary["direction"].iloc[0] if len(summary) else "forward"]


def _unit(summary: pd.DataFrame) -> str:
    # The unit of the summary's readout, for the verdicts' words ("negated" on a reversed curve, see `oriented`).
    units = READOUTS[_readout(summary)].units
    return units if _steps(summary).first == "positive" else f"negated {units}"


def _label(task: str, summary: pd.DataFrame) -> str:
    # A verdict's part: the task, named with its readout where that is not the primary one.
    readout = _readout(summary)
    return task if readout == PRIMARY else f"{task}, {READOUTS[readout].name}"


def per_seed(summary: pd.DataFrame, column: str, by: list[str]) -> pd.DataFrame:
    """Mean of `column` over positive sizes for each seed and `by` group (seeds are the replicates)."""
    return summary.groupby([*by, "seed"], as_index=False, dropna=False)[column].mean()


def _fmt(mean: float, se: float, digits: int = 4) -> str:
    return f"{mean:.{digits}f} ± {se:.{digits}f}" if math.isfinite(se) else f"{mean:.{digits}f}"


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


def lift_check(summary: pd.DataFrame) -> tuple[stats.Effect, str | None]:
    """The precondition of a rebound verdict: did the positive SFT lift the score above the base model's?

    The lift is start - base (the readout's units), per seed the mean over positive sizes, judged by the book's rule
    (`stats.effect`). Without a lift whose interval lies above zero there is nothing to rebound from, and
    the verdict is "not testable here".

    Returns:
        (lift, precondition): the lift's effect, and None when it is reproduced, else the sentence saying the
        precondition failed, with the lift's numbers.
    """
    lift = stats.effect(per_seed(treated(summary), "lift", [])["lift"])
    first = _steps(summary).first
    return lift, verdicts.precondition_of(f"the {first} SFT lift (start - base, {_unit(summary)})", lift)


TWO_PHASE_PAPER = "fast fall over the first negative examples, then a slower decline (curves only)"


def judge_two_phase(summary: pd.DataFrame, chapter: str, reverse: str = "sft", claim: str = "rebound_two_phase",
                    paper_text: str = TWO_PHASE_PAPER) -> list[verdicts.Verdict]:
    """Claim `rebound_two_phase` (or `claim`), one verdict per task: the initial slope exceeds the later slope, by
    more than in the control arm.

    The effect per seed: the mean over positive sizes of initial_slope - later_slope (per negative example),
    less the same gap of the control arm (negative fine-tuning of the base model, positive size 0) where it was
    run, so that a learning curve that saturates whatever it starts from does not pass; judged by the book's rule
    (`stats.effect`) where the positive SFT lifted the readout (`lift_check`).
    """
    out = []
    sub = summary[summary["reverse"] == reverse]
    unit, steps = _unit(sub), _steps(sub)
    for task, g in sub.groupby("task", sort=False):
        lift, no_lift = lift_check(g)
        t, control = treated(g), g[g["positive_size"] == 0]
        init, init_se = stats.mean_se(per_seed(t, "initial_slope", ["task"])["initial_slope"])
        later, later_se = stats.mean_se(per_seed(t, "later_slope", ["task"])["later_slope"])
        gaps = per_seed(t, "slope_gap", ["task"]).set_index("seed")["slope_gap"]
        measure = f"initial slope - later slope ({unit} per {steps.second} example)"
        ours = (f"lift (start - base) {lift.text()}; initial slope {_fmt(init, init_se)} vs later "
                f"{_fmt(later, later_se)} per {steps.second} example (± 1 SE)")
        if len(control):
            control_gaps = control.set_index("seed")["slope_gap"]
            gaps = (gaps - control_gaps).dropna()
            measure += f", less the control arm's (no {steps.first} SFT)"
            ours += f"; control arm's gap {_fmt(*stats.mean_se(control_gaps))}"
        out.append(verdicts.judged(
            claim, chapter, family=_family(g), task=_label(task, g), measure=measure,
            effect=stats.effect(gaps.reset_index(drop=True)), ours=ours, paper=paper_text, precondition=no_lift,
        ))
    return out


PARTS = (("start", "start"), ("initial drop", "initial_drop"))  # what more positive data raises (Figure 4)


POSITIVE_SIZE_PAPER = "more positive data: higher start, faster initial drop (curves only)"


def judge_positive_size(summary: pd.DataFrame, chapter: str, reverse: str = "sft",
                        claim: str = "rebound_positive_size", parts=PARTS,
                        paper_text: str = POSITIVE_SIZE_PAPER) -> list[verdicts.Verdict]:
    """More positive data, a higher start and a faster initial drop: per task, one verdict on each of `parts`.

    The effects per seed: the least-squares slopes on log10(positive size) of the start and of the initial
    drop (per 10x positive data), each judged by the book's rule (`stats.effect`) where the positive SFT lifted
    the readout (`lift_check`); with one positive size there is no slope ("not testable here").
    """
    out = []
    sub = treated(summary[summary["reverse"] == reverse])
    steps = _steps(sub)
    for task, g in sub.groupby("task", sort=False):
        lift, no_lift = lift_check(g)
        sizes = g["positive_size"].nunique()
        if sizes < 2:
            no_lift = f"precondition failed: {sizes} {steps.first} size, a slope on {steps.first} size needs 2"
        for part, column in parts:
            after = rebound_units.REVERSE_NAMES[reverse] if steps.second == "negative" else \
                f"SFT on {steps.second} data"
            out.append(verdicts.judged(
                claim, chapter, family=_family(g), task=_label(task, g),
                measure=(f"slope of the {part} on log10({steps.first} size) after {after} "
                         f"({_unit(g)} per 10x)"),
                effect=stats.effect(size_trend(g, column)["slope"]),
                ours=f"lift (start - base) {lift.text()}; {sizes} {steps.first} sizes",
                paper=paper_text, precondition=no_lift,
            ))
    return out


END_NEAR_FRACTION = 0.25  # "converges near the base": |end - base| within this fraction of the lift (our margin)


def judge_end_shape(summary: pd.DataFrame, chapter: str, reverse: str = "sft") -> list[verdicts.Verdict]:
    """Claim `rebound_below_base`: sentiment-like curves end below the base, safety-like ones near it.

    Per task, per seed, the mean over positive sizes of end - base (the readout's units), where the positive SFT lifted
    the score (`lift_check`). A "below" task: the effect base - end by the book's rule (`stats.effect`). A
    "near" task: an equivalence test (`stats.equivalence`) with the margin `END_NEAR_FRACTION` of the mean
    lift, so that a wide spread cannot pass (the paper states no margin; this one is ours).
    """
    out = []
    sub = treated(summary[summary["reverse"] == reverse])
    unit = _unit(sub)
    for task, g in sub.groupby("task", sort=False):
        kind = END_SHAPE.get(task)
        if kind is None:
            continue
        lift, no_lift = lift_check(g)
        gaps = per_seed(g, "end_minus_base", ["task"])["end_minus_base"]
        if kind == "below":
            measure, effect = f"base - end ({unit}; positive: the curve ends below the base)", stats.effect(-gaps)
        else:
            margin = END_NEAR_FRACTION * lift.mean
            measure = f"end - base ({unit}), within ±{END_NEAR_FRACTION:g} x the lift"
            if no_lift is None:
                effect = stats.equivalence(gaps, margin)
            else:
                effect = stats.effect(gaps)
        out.append(verdicts.judged(
            "rebound_below_base", chapter, family=_family(g), task=_label(task, g), measure=measure, effect=effect,
            ours=f"lift (start - base) {lift.text()}; expected: ends {kind} the base",
            paper="IMDb curves end below the base level; BeaverTails curves converge near it",
            precondition=no_lift,
        ))
    return out


def _family(frame: pd.DataFrame) -> str:
    return ", ".join(str(f) for f in dict.fromkeys(frame["family"]))


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
    sub = curves[(curves["task"] == task) & (curves["reverse"] == "sft") & (curves["positive_size"] > 0)]
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


def _seed_slopes(per: pd.DataFrame, column: str) -> pd.Series:
    # Per seed, the slope of `column` on log10(positive size).
    return pd.Series([_log_slope(g, column) for _, g in per.groupby("seed")], dtype=float)


def judge_kl_table(per: pd.DataFrame, chapter: str, epsilon: float, family: str) -> list[verdicts.Verdict]:
    """Claim `kl_table`: the KL to the base grows with positive size, and the negative examples needed to
    bring it back below epsilon shrink.

    `per` is `kl_per_seed`'s table. The effects per seed: the least-squares slopes on log10(positive size) of
    the KL and of minus the examples needed, each by the book's rule (`stats.effect`). A run that never brought
    the KL below epsilon leaves its count censored (known only to exceed the largest negative size): then the
    second verdict is "not testable here", with the censored runs counted, never a number put in their place.
    """
    table = kl_summary(per)
    kls = ", ".join(f"{int(s)}: {k:.3f}" for s, k in zip(table["positive_size"], table["kl_to_base_nats"],
                                                            strict=True))
    paper_text = _paper_table3_text()
    rises = verdicts.judged(
        "kl_table", chapter, family=family, task="KL after positive SFT",
        measure="slope of the KL to the base after positive SFT on log10(positive size) (nats/token per 10x)",
        effect=stats.effect(_seed_slopes(per, "kl_to_base")), ours=f"KL to base (nats/token) {kls}",
        paper=paper_text)
    reached, runs = int(table["reached"].sum()), int(table["seeds"].sum())
    needs = ", ".join(f"{int(s)}: {v:.0f}" for s, v in zip(table["positive_size"], table["negative_to_epsilon"],
                                                             strict=True))
    censored = None
    if reached < runs:
        censored = (f"precondition failed: censored counts, the KL fell below epsilon = {epsilon:g} within "
                    f"{int(table['negative_max'].max()):,} negative examples in {reached} of {runs} runs "
                    f"(smallest KL reached {table['kl_min_nats'].min():.3f} nats/token)")
        needs = f"reached in {reached} of {runs} runs"
    falls = verdicts.judged(
        "kl_table", chapter, family=family, task="negative examples to return",
        measure=f"minus the slope of the negative examples needed to bring the KL below {epsilon:g} on "
                "log10(positive size) (examples per 10x)",
        effect=stats.effect(-_seed_slopes(per, "negative_to_epsilon")),
        ours=f"negative examples to KL < {epsilon:g}: {needs}", paper=paper_text, precondition=censored)
    return [rises, falls]


# Trends across models (model size, pre-training volume).
# ---------------------------------------------------------------------------------------------------------


def by_seed(summary: pd.DataFrame, by: str, column: str) -> pd.DataFrame:
    """`column` of the SFT curves (`per_seed`: the mean over positive sizes), one row per seed and one column per
    value of `by` (a model size, a token budget)."""
    sft = treated(summary[summary["reverse"] == "sft"])
    return per_seed(sft, column, [by]).pivot(index="seed", columns=by, values=column)


def model_trend(summary: pd.DataFrame, by: str, order: list, column: str = "initial_slope") -> pd.DataFrame:
    """Per value of `by` (in `order`): mean ± se over seeds of `column` averaged over positive sizes.

    Also the paired (same seed) difference from the first value of `order`: `vs_first_mean`, `vs_first_se`.
    """
    seeds = by_seed(summary, by, column)
    rows = []
    for value in order:
        g = seeds[value].dropna()
        mean, se = stats.mean_se(g)
        diff_mean, diff_se = stats.mean_se((g - seeds[order[0]]).dropna())
        rows.append({by: value, f"{column}_mean": mean, f"{column}_se": se, "vs_first_mean": diff_mean,
                     "vs_first_se": diff_se, "seeds": len(g)})
    return pd.DataFrame(rows)


def model_trends(summary: pd.DataFrame, by: str, order: list, columns: list[str]) -> pd.DataFrame:
    """`model_trend` of the first of `columns` (with its paired difference from the first model), and the mean
    and se of each other column beside it, one row per value of `by`."""
    trend = model_trend(summary, by, order, columns[0])
    for column in columns[1:]:
        other = model_trend(summary, by, order, column)
        trend = trend.merge(other[[by, f"{column}_mean", f"{column}_se"]], on=by)
    return trend


def paired_change(summary: pd.DataFrame, by: str, order: list, column: str) -> pd.Series:
    """Per seed, `column` (mean over positive sizes) at the last value of `order` less at the first: the
    paired (same-seed) change along `by`."""
    seeds = by_seed(summary, by, column)
    return (seeds[order[-1]] - seeds[order[0]]).dropna()


def lift_by_model(summary: pd.DataFrame, by: str, order: list, label=str) -> str | None:
    """The precondition of a rebound verdict across models: `lift_check`, model by model.

    Returns:
        None when every model's positive SFT lift (start - base) is reproduced by the book's rule; else the
        sentence naming the models where it is not, with their lifts.
    """
    sub = summary[summary["reverse"] == "sft"]
    flat = []
    for value in order:
        lift, failed = lift_check(sub[sub[by] == value])
        if failed:
            flat.append(f"{label(value)}: {lift.text()}")
    if not flat:
        return None
    return f"precondition failed: the positive SFT lift (start - base) is not above zero at {'; '.join(flat)}"


def judge_increase(summary: pd.DataFrame, trend: pd.DataFrame, by: str, column: str, claim: str, chapter: str,
                   paper_text: str, label=str) -> verdicts.Verdict:
    """Does `column` increase along `by` (the rows of `trend`, in order)? The effect per seed is the paired
    change last - first (`paired_change`), judged by the book's rule (`stats.effect`) where every model's
    positive SFT lifted the score (`lift_by_model`)."""
    order = list(trend[by])
    parts = ", ".join(f"{label(v)}: {_fmt(m, s)}" for v, m, s in zip(trend[by], trend[f"{column}_mean"],
                                                                   trend[f"{column}_se"], strict=True))
    precondition = lift_by_model(summary, by, order, label)
    if len(order) < 2:
        precondition = f"precondition failed: one value of {by} only ({label(order[0])})"
    return verdicts.judged(
        claim, chapter, family=_family(summary), task="",
        measure=(f"{column} at {label(order[-1])} - at {label(order[0])} ({_unit(summary)} per negative example, "
                 "paired by seed)"),
        effect=stats.effect(paired_change(summary, by, order, column)),
        ours=f"{column} ({_unit(summary)} per negative example, ± 1 SE) {parts}", paper=paper_text,
        precondition=precondition)
