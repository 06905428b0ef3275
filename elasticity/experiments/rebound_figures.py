"""Rebound's figures: a readout (share judged positive, mean score, compression gap) and KL to the base model
along the negative run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from elasticity import data, plotting
from elasticity.experiments import rebound_judge, rebound_units


def _negative_axis(ax, values, first: int) -> None:
    """x axis of negative examples: linear up to the first size, logarithmic above, ticks at the sizes."""
    from matplotlib.ticker import NullLocator

    ticks = sorted({int(v) for v in values})
    ax.set_xscale("symlog", linthresh=first)
    ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())


def plot_curves(curves: pd.DataFrame, base: pd.DataFrame, *, panel: str = "task", by: str = "positive_size",
                reverse: str = "sft", panels=None, legend: str = "positive examples", readout: str = "share_positive",
                direction: str = "forward"):
    """A readout (a column of `rebound_units.READOUTS`) against negative examples: one panel per value of
    `panel`, one curve per value of `by` (positive size 0: the control arm, the base model fine-tuned on the
    negative data alone). In the reversed `direction` the steps swap their data: the curves are read along the
    positive fine-tuning, one per negative size of the first step (give `legend` to say so).

    Curves are the mean over seeds with a ± one standard deviation band; the dashed line is the base
    model's mean over seeds in that panel. The x axis is linear up to the first negative size and
    logarithmic above it (the paper's sizes are spaced roughly geometrically).
    """
    sub = curves[(curves["reverse"] == reverse) & (curves["direction"] == direction)]
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
        ax.set_xlabel(f"{rebound_units.STEPS[direction].second} examples")
        scorer = data.task(t["task"].iloc[0]).scorer
        ax.set_ylabel(rebound_judge.READOUTS[readout].axis.format(scorer=scorer))
        _negative_axis(ax, t["negative_examples"], first)
    axes[0][-1].legend(title=legend, fontsize=8)
    return fig


def plot_kl(curves: pd.DataFrame, task: str, epsilon: float):
    """KL to the base model (nats/token) along the negative run, one curve per positive size."""
    sub = curves[(curves["task"] == task) & (curves["reverse"] == "sft") & (curves["positive_size"] > 0)
                 & (curves["direction"] == "forward")]
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


#


def plot_heatmaps(curves: pd.DataFrame, task: str, reverses, positive_sizes, readout: str = "share_positive"):
    """The paper's Figure 7: one heat map per reverse step (SFT, DPO, KTO, SimPO), a row per positive size and a
    column per number of negative examples, each cell the readout's mean over seeds (written in it)."""
    sub = curves[(curves["task"] == task) & (curves["direction"] == "forward")
                 & curves["positive_size"].isin(positive_sizes)]
    tables = [sub[sub["reverse"] == r].pivot_table(index="positive_size", columns="negative_examples",
                                                   values=readout, aggfunc="mean") for r in reverses]
    low = min(float(t.min().min()) for t in tables)
    high = max(float(t.max().max()) for t in tables)
    if high - low < 1e-9:  # one value everywhere: a colour scale around it
        low, high = low - 0.5, high + 0.5
    fig, axes = plotting.new_figure(len(tables), width=2.9 * len(tables) + 1.2, height=2.6, squeeze=False)
    image = None
    for ax, reverse, table in zip(axes[0], reverses, tables, strict=True):
        image = ax.imshow(table.values, cmap=plotting.SEQUENTIAL, vmin=low, vmax=high, aspect="auto",
                          origin="lower")
        for (i, j), value in np.ndenumerate(table.values):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if value < (low + high) / 2 else "black")
        ax.set_xticks(range(table.shape[1]), [f"{int(c):,}" for c in table.columns], fontsize=7)
        ax.set_yticks(range(table.shape[0]), [f"{int(r):,}" for r in table.index], fontsize=8)
        ax.set_title(rebound_units.REVERSE_NAMES[reverse])
        ax.set_xlabel("negative examples")
        ax.grid(False)
    axes[0][0].set_ylabel("positive examples")
    scorer = data.task(task).scorer
    fig.colorbar(image, ax=axes[0].tolist(), label=rebound_judge.READOUTS[readout].axis.format(scorer=scorer))
    return fig
