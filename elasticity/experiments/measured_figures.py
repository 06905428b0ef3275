"""Theorem 4.2 measured, the figures: the ratio against k, and the rate changes against l."""

from __future__ import annotations

import numpy as np

from elasticity import plotting, stats


def plot_ratio_vs_k(result: dict):
    """|measured ratio| against k on log axes, one panel per protocol, with the theorem's |ratio| = k line and
    the band of the test."""
    protocols = list(dict.fromkeys(result["ratios"].protocol))
    fig, axes = plotting.new_figure(ncols=len(protocols), width=4.2 * len(protocols), height=4.2, squeeze=False)
    for ax, protocol in zip(axes[0], protocols, strict=True):
        _ratio_panel(ax, result["ratios"][result["ratios"].protocol == protocol],
                     result["secants"][result["secants"].protocol == protocol])
        ax.set_title(f"{protocol} protocol")
    axes[0][0].set_ylabel("|(d gamma_a/dl) / (d gamma_p/dl)|")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="outside lower center", ncols=3)  # below the panels, off the data
    return fig


def _ratio_panel(ax, table, secant_table) -> None:
    ks = np.array(sorted(table.k))
    grid = np.geomspace(ks.min() / 1.5, ks.max() * 1.5, 50)
    ax.plot(grid, grid, color=plotting.COLORS["theory"], label="|ratio| = k (Theorem 4.2: Theta(k))")
    targets = sorted(secant_table.l_target.unique())
    for color, target in zip(plotting.series_colors(len(targets)), targets, strict=True):
        rows = secant_table[secant_table.l_target == target]
        right = rows.ratio < 0
        ax.scatter(rows.k[right], rows.ratio[right].abs(), color=color, marker="o", s=18, alpha=0.7,
                   label=f"secant at l = {target:g}")
        ax.scatter(rows.k[~right], rows.ratio[~right].abs(), facecolors="none", edgecolors=color, marker="o", s=18,
                   alpha=0.7)
    right = table.ratio < 0
    lo = np.maximum(table.abs_ratio_lo.to_numpy(), 1e-12)
    hi = np.where(np.isfinite(table.abs_ratio_hi), table.abs_ratio_hi, np.nan)
    mid = table.ratio.abs().to_numpy()
    yerr = np.vstack([mid - np.minimum(lo, mid), np.nan_to_num(hi - mid, nan=0.0)])
    ax.errorbar(table.k, mid, yerr=yerr, fmt="none", ecolor=plotting.COLORS["forward"], capsize=3)
    ax.scatter(table.k[right], mid[right], color=plotting.COLORS["forward"], marker="s", s=40, zorder=3,
               label="d gamma/dl ratio at l -> 0 (negative, as predicted)")
    ax.scatter(table.k[~right], mid[~right], facecolors="white", edgecolors=plotting.COLORS["forward"], marker="s",
               s=40, zorder=3, label="... positive (wrong sign)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    # The axis spans the points and the line; an interval that reaches |ratio| = 0 runs off the bottom.
    shown = np.concatenate([mid, secant_table.ratio.abs().to_numpy(), grid])
    shown = shown[np.isfinite(shown) & (shown > 0)]
    ax.set_ylim(shown.min() / 3, shown.max() * 3)
    ax.set_xlabel("k = |D_p| / |D_a|")


def _se(values) -> float:
    return stats.mean_se(values)[1]


def plot_rate_changes(result: dict):
    """Delta gamma of D_a and D_p against l, one curve per k (mean over seeds, +- se), a row per protocol."""
    protocols = list(dict.fromkeys(result["rates"].protocol))
    fig, grid = plotting.new_figure(ncols=2, nrows=len(protocols), width=8.0, height=3.2 * len(protocols),
                                    squeeze=False)
    for axes, protocol in zip(grid, protocols, strict=True):
        _rate_change_row(axes, result["rates"][result["rates"].protocol == protocol], protocol)
    grid[0][0].legend(fontsize=7)
    return fig


def _rate_change_row(axes, rates, protocol: str) -> None:
    import matplotlib.ticker

    ks = sorted(rates.k.unique())
    targets = sorted(float(v) for v in rates.l_target.unique() if v > 0)
    for ax, name in zip(axes, ("D_a", "D_p"), strict=True):
        for color, k in zip(plotting.series_colors(len(ks)), ks, strict=True):
            rows = rates[(rates.dataset == name) & (rates.k == k)]
            summary = rows.groupby("num_perturbation").agg(l=("l", "mean"), mean=("delta_gamma_bits", "mean"),
                                                           se=("delta_gamma_bits", _se)).reset_index()
            se = summary["se"].fillna(0.0)
            ax.errorbar(summary.l, summary["mean"], yerr=se, color=color, marker="o", ms=3, capsize=2,
                        label=f"k = {k:.3g}")
        ax.axhline(0.0, color=plotting.COLORS["base"], lw=0.8)
        # symlog puts l = 0 (the aligned model) on the axis; ticks only at 0 and the l targets, so that the
        # default decade ticks (10^-2 next to 0) do not overlap.
        ax.set_xscale("symlog", linthresh=min(targets))
        ax.set_xticks([0.0, *targets], ["0", *(f"{v:g}" for v in targets)])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("l = |D_t| / |D_a|")
        ax.set_title(f"held-out {name}, {protocol} protocol")
    axes[0].set_ylabel("change of normalized rate (bits/token)")
