"""Rebound's figures: a readout (share judged positive, mean score, compression gap) and KL to the base model
along the negative run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from elasticity import data, plotting
from elasticity.experiments import rebound_judge


def _negative_axis(ax, values, first: int) -> None:
    """x axis of negative examples: linear up to the first size, logarithmic above, ticks at the sizes."""
    from matplotlib.ticker import NullLocator

    ticks = sorted({int(v) for v in values})
    ax.set_xscale("symlog", linthresh=first)
    ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())


def plot_curves(curves: pd.DataFrame, base: pd.DataFrame, *, panel: str = "task", by: str = "positive_size",
                reverse: str = "sft", panels=None, legend: str = "positive examples", readout: str = "share_positive"):
    """A readout (a column of `rebound_units.READOUTS`) against negative examples: one panel per value of
    `panel`, one curve per value of `by` (positive size 0: the control arm, the base model fine-tuned on the
    negative data alone).

    Curves are the mean over seeds with a ± one standard deviation band; the dashed line is the base
    model's mean over seeds in that panel. The x axis is linear up to the first negative size and
    logarithmic above it (the paper's sizes are spaced roughly geometrically).
    """
    sub = curves[curves["reverse"] == reverse]
    panels = list(panels or dict.fromkeys(sub[panel]))
    fig, axes = plotting.new_figure(len(panels), width=3.6 * len(panels) + 0.8, height=3.4, squeeze=False)
    first = int(sub.loc[sub["negative_examples"] > 0, "negative_examples"].min())
    for ax, value in zip(axes[0], panels, strict=True):
        t = sub[sub[panel] == value]
        series = sorted(t[by].unique())
        for color, s in zip(plotting.series_colors(len(series)), series, strict=True):
            g = t[t[by] == s].groupby("negative_examples")[readout]
            mean, sd = g.mean(), g.std(ddof=1).fillna(0.0)
            control = by == "positive_size" and s == 0
            ax.plot(mean.index, mean.values, marker="o", ms=3, color="0.45" if control else color,
                    ls=":" if control else "-", label="0 (control)" if control else f"{s:,}" if
                    isinstance(s, int | np.integer) else str(s))
            ax.fill_between(mean.index, mean - sd, mean + sd, color=color, alpha=0.15, lw=0)
        level = base.loc[base[panel] == value, readout].mean()
        ax.axhline(level, ls="--", lw=1, color=plotting.COLORS["base"], label="base model")
        ax.set_title(str(value))
        ax.set_xlabel("negative examples")
        scorer = data.task(t["task"].iloc[0]).scorer
        ax.set_ylabel(rebound_judge.READOUTS[readout].axis.format(scorer=scorer))
        _negative_axis(ax, t["negative_examples"], first)
    axes[0][-1].legend(title=legend, fontsize=8)
    return fig


def plot_kl(curves: pd.DataFrame, task: str, epsilon: float):
    """KL to the base model (nats/token) along the negative run, one curve per positive size."""
    sub = curves[(curves["task"] == task) & (curves["reverse"] == "sft") & (curves["positive_size"] > 0)]
    fig, ax = plotting.new_figure(width=5.0, height=3.4)
    sizes = sorted(sub["positive_size"].unique())
    for color, size in zip(plotting.series_colors(len(sizes)), sizes, strict=True):
        g = sub[sub["positive_size"] == size].groupby("negative_examples")["kl_to_base_nats"]
        mean, sd = g.mean(), g.std(ddof=1).fillna(0.0)
        ax.plot(mean.index, mean.values, marker="o", ms=3, color=color, label=str(size))
        ax.fill_between(mean.index, mean - sd, mean + sd, color=color, alpha=0.15, lw=0)
    ax.axhline(epsilon, ls=":", color=plotting.COLORS["theory"], lw=1, label=f"epsilon = {epsilon:g}")
    _negative_axis(ax, sub["negative_examples"], int(sub.loc[sub["negative_examples"] > 0, "negative_examples"].min()))
    ax.set_yscale("log")
    ax.set_xlabel("negative examples")
    ax.set_ylabel("KL(model || base), nats/token")
    ax.legend(title="positive examples", fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------------------------
