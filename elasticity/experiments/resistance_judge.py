"""Resistance's judging: forward against inverse per cell, the verdicts on Tables 1 and 2, the paper's layout."""

from __future__ import annotations

import pandas as pd

from elasticity import paper, stats, verdicts
from elasticity.experiments.resistance_units import default_pairs, pair_label

# ---------------------------------------------------------------------------------------------------------
# Summaries, verdicts and the paper's layout.
# ---------------------------------------------------------------------------------------------------------

# The metrics compared per cell. For each, the paper's ordering reads "forward - inverse > 0":
# a lower final loss, excess loss or remaining KL for inverse alignment (Table 1), and a larger KL change
# for forward alignment (Table 2, "forward > inverse").
METRICS = {
    "final_loss_nats": "inverse < forward",  # Table 1: final training loss
    "excess_loss_nats": "inverse < forward",  # held-out target loss less its loss under its own checkpoint
    "kl_after_nats": "inverse < forward",  # KL from the target checkpoint left after training
    "kl_change_nats": "forward > inverse",  # Table 2: change of that KL, before - after
}

# The checkpoints of a pair must differ before their fits are compared. In a trial with SmolLM2-135M checkpoints
# 0.002 nats/token apart, four LoRA steps moved the KL to the target by 0.01 to 0.02 nats/token, away from it in
# both directions: closer checkpoints than this margin compare the fine-tunes' noise, not resistance.
MIN_CHECKPOINT_KL = 0.05  # nats/token, KL from the target checkpoint to the starting one before training


def checkpoints_differ(runs: pd.DataFrame) -> str | None:
    """None when every compared pair's checkpoints differ: per seed, the smallest KL before training over the
    pairs (averaged over datasets and directions) less `MIN_CHECKPOINT_KL`, resolved above zero by the rule;
    else the failed precondition with its numbers."""
    per_pair = runs.groupby(["seed", "pair"])["kl_before_nats"].mean()
    margin = per_pair.groupby(level="seed").min() - MIN_CHECKPOINT_KL
    return verdicts.precondition_of(f"the KL between the closest paired checkpoints less {MIN_CHECKPOINT_KL} "
                                    "nats/token", stats.effect(margin))


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model, pair, metric): means and SDs over seeds and the paired seed difference.

    `difference_mean` is the mean over seeds of forward - inverse (same seed, so paired); the paper's
    ordering holds "beyond the seed spread" in a cell when that mean is of the predicted sign by a one-sided
    t-test (`stats.above_zero`). These cell counts describe the paper's form of Table 1; the verdicts pool
    the cells (`judge`). With one seed there is no standard error and no cell passes or fails.
    """
    rows = []
    keys = ["dataset", "model", "k", "l", "pair"]
    for key, group in runs.groupby(keys, sort=False):
        wide = group.pivot(index="seed", columns="direction")
        for metric, prediction in METRICS.items():
            fwd, inv = wide[(metric, "forward")], wide[(metric, "inverse")]
            diff = (fwd - inv).to_numpy()
            n = len(diff)
            sd = stats.sd(diff)
            mean, se = stats.mean_se(diff)
            rows.append({
                **dict(zip(keys, key, strict=True)), "metric": metric, "prediction": prediction,
                "forward_mean": float(fwd.mean()), "forward_sd": stats.sd(fwd),
                "inverse_mean": float(inv.mean()), "inverse_sd": stats.sd(inv),
                "difference_mean": mean, "difference_sd": sd, "num_seeds": n,
                "holds_beyond_spread": stats.above_zero(mean, se, n) is True,
                "fails_beyond_spread": stats.above_zero(-mean, se, n) is True,
            })
    return pd.DataFrame(rows)


def layout(cells: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One metric's cells in the paper's layout: rows dataset x model, columns pairs, 'inverse vs forward'."""
    sub = cells[cells["metric"] == metric].copy()
    sub["cell"] = [
        f"{r.inverse_mean:.3f}±{r.inverse_sd:.3f} vs {r.forward_mean:.3f}±{r.forward_sd:.3f}"
        for r in sub.itertuples()
    ]
    order = list(dict.fromkeys(sub["pair"]))
    table = sub.pivot(index=["dataset", "model"], columns="pair", values="cell")[order]
    return table.reset_index().rename_axis(columns=None)


def paper_layout() -> pd.DataFrame:
    """The paper's Table 1 cells that were transcribed, in its layout; untranscribed cells are 'n/a'."""
    p = paper.table1_resistance()
    p["pair_label"] = [pair_label(tuple(x)) for x in p["pair"]]
    p["cell"] = [f"{r.inverse_loss:g} vs {r.forward_loss:g}" for r in p.itertuples()]
    order = [pair_label(x) for x in default_pairs(3)]
    table = p.pivot(index=["dataset", "model"], columns="pair_label", values="cell").reindex(columns=order)
    table = table.reindex(pd.MultiIndex.from_product([paper.RESISTANCE_DATASETS, paper.RESISTANCE_MODELS],
                                                     names=["dataset", "model"]))
    return table.fillna("n/a").reset_index().rename_axis(columns=None)


def paper_table2() -> pd.DataFrame:
    """The paper's Table 2 cells that were transcribed, with the pair written as in our tables."""
    table = paper.table2_kl_change()
    table["pair"] = [f"θ{k}/θ{late}" for k, late in table["pair"]]
    return table


def per_seed_difference(runs: pd.DataFrame, metric: str) -> pd.Series:
    """Per seed, forward - inverse of `metric` averaged over all cells (dataset x model x pair): the pooled
    paired difference. The cells of one seed share its checkpoints, so the seed, not the cell, is the unit."""
    wide = runs.pivot_table(index=["dataset", "model", "k", "l", "pair", "seed"], columns="direction",
                            values=metric)
    return (wide["forward"] - wide["inverse"]).groupby(level="seed").mean()


def judge(runs: pd.DataFrame, cells: pd.DataFrame, *, chapter: str, family: str) -> list[verdicts.Verdict]:
    """The verdicts on Table 1 and Table 2, each one paired test pooled over the cells (`per_seed_difference`).

    Table 1 (inverse < forward) is judged on the excess loss, the held-out target loss less the target's loss
    under its own checkpoint, so that targets of different difficulty weigh alike; the raw final training loss
    (the paper's own column) is judged beside it as a second row. Table 2 (forward > inverse) on the KL change.
    The cell-by-cell counts, the paper's form, stay in `ours`. Checkpoints too close to tell apart
    (`checkpoints_differ`) make every row "not testable here".
    """
    precondition = checkpoints_differ(runs)
    out = []
    for claim, metric, task, paper_figure in (
        ("resistance", "excess_loss_nats", "target-normalized loss",
         f"{paper.TABLE1_CELLS_INVERSE_LOWER} of {paper.TABLE1_CELLS} cells inverse < forward (no seeds reported)"),
        ("resistance", "final_loss_nats", "final training loss (the paper's column)",
         f"{paper.TABLE1_CELLS_INVERSE_LOWER} of {paper.TABLE1_CELLS} cells inverse < forward (no seeds reported)"),
        ("resistance_kl", "kl_change_nats", "KL change",
         f"{paper.TABLE2_PAIRS} of {paper.TABLE2_PAIRS} pairs forward > inverse (no seeds reported)"),
    ):
        sub = cells[cells["metric"] == metric]
        what = METRICS[metric]
        held, failed = int(sub["holds_beyond_spread"].sum()), int(sub["fails_beyond_spread"].sum())
        out.append(verdicts.judged(
            claim, chapter, family=family, task=task,
            measure=f"forward - inverse (nats/token; positive: {what}), mean over {len(sub)} cells, paired by seed",
            effect=stats.effect(per_seed_difference(runs, metric)),
            ours=(f"cell by cell: {held} of {len(sub)} cells {what} by a one-sided t test at 95%, {failed} the "
                  "reverse"),
            paper=paper_figure, precondition=precondition,
        ))
    return out
