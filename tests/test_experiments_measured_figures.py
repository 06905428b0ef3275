"""Tests of Theorem 4.2's figures: ticks at l = 0 and the l targets, and the ratio against k on log axes."""

import pandas as pd

from elasticity.experiments import measured_figures

LS = (0.05, 0.1, 0.5)


def _rates() -> pd.DataFrame:
    rows = []
    for k in (10.0, 100.0):
        for seed in (0, 1):
            for l in (0.0, *LS):  # noqa: E741
                for name, delta in (("D_p", -0.01 * l), ("D_a", 0.01 * k * l)):
                    rows.append({"protocol": "joint", "k": k, "seed": seed, "l": l, "l_target": l,
                                 "num_perturbation": round(l * 100), "dataset": name,
                                 "delta_gamma_bits": delta * (1 + seed / 10)})
    return pd.DataFrame(rows)


def test_rate_change_ticks_are_zero_and_the_l_targets():
    fig = measured_figures.plot_rate_changes({"rates": _rates()})
    labels = [label.get_text() for label in fig.axes[0].get_xticklabels()]
    assert labels == ["0", *(f"{v:g}" for v in LS)]
    assert [ax.get_title() for ax in fig.axes] == ["held-out D_a, joint protocol", "held-out D_p, joint protocol"]
    both = pd.concat([_rates(), _rates().assign(protocol="sequential")])
    titles = [ax.get_title() for ax in measured_figures.plot_rate_changes({"rates": both}).axes]
    assert titles[2:] == ["held-out D_a, sequential protocol", "held-out D_p, sequential protocol"]


def test_ratio_figure_is_on_log_axes_with_the_theorem_line():
    ratios = pd.DataFrame({"protocol": "joint", "k": [10.0, 100.0], "ratio": [-8.0, 50.0], "abs_ratio_lo": [4.0, 20.0],
                           "abs_ratio_hi": [16.0, float("inf")]})
    secants = pd.DataFrame({"protocol": "joint", "k": [10.0, 100.0], "l_target": [0.1, 0.1], "ratio": [-9.0, -90.0]})
    fig = measured_figures.plot_ratio_vs_k({"ratios": ratios, "secants": secants})
    [ax] = fig.get_axes()
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert "|ratio| = k (Theorem 4.2: Theta(k))" in [line.get_label() for line in ax.get_lines()]
