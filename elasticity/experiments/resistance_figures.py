"""Resistance's figures: the paired differences forward - inverse per cell."""

from __future__ import annotations

import math

import numpy as np

from elasticity import plotting, stats


def plot_cells(result: dict, metric: str = "final_loss_nats"):
    """Paired differences forward - inverse of one metric per cell: one dot per seed, the mean with +-1 SD.

    Above zero is the paper's ordering (inverse lower loss, or forward larger KL change); a cell counts
    for the paper when its mean lies above zero by more than its SD bar.
    """
    runs = result["runs"]
    wide = runs.pivot_table(index=["dataset", "k", "l", "pair", "seed"], columns="direction", values=metric)
    diff = (wide["forward"] - wide["inverse"]).rename("difference").reset_index()
    groups = list(diff.groupby(["dataset", "k", "l", "pair"], sort=False))
    fig, ax = plotting.new_figure(width=max(6.4, 0.9 * len(groups)), height=3.4)
    rng = np.random.default_rng(0)
    for i, (_, group) in enumerate(groups):
        values = group["difference"].to_numpy()
        mean, sd = values.mean(), stats.sd(values)
        ax.errorbar(i, mean, yerr=0 if math.isnan(sd) else sd, fmt="o", color=plotting.COLORS["base"], capsize=4,
                    label="mean ± SD over seeds" if i == 0 else None)
        ax.scatter(i + 0.15 + rng.uniform(-0.04, 0.04, len(values)), values, s=12,
                   color=plotting.COLORS["inverse"], label="one seed" if i == 0 else None)
    ax.axhline(0.0, color=plotting.COLORS["theory"], linewidth=0.8)
    ax.set_xticks(range(len(groups)), [f"{d}\nθ{k}/θ{late}" for (d, k, late, _), _ in groups], fontsize=7)
    ax.set_ylabel(f"forward − inverse, {metric.removesuffix('_nats').replace('_', ' ')} (nats/token)", fontsize=8)
    ax.legend(fontsize=8)
    return fig
