"""Tests of rebound's figures: one panel per task, one curve per positive size, the base line and epsilon."""

import pandas as pd

from elasticity.experiments import rebound_figures


def _curves() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, base = [], []
    for task in ("sentiment", "safety"):
        for seed in (0, 1):
            base.append({"task": task, "seed": seed, "score": 0.1, "share_positive": 0.2, "bits_gap": -0.1})
            for size in (0, 50, 500):
                for n in (0, 5, 10, 50):
                    rows.append({"task": task, "direction": "forward", "reverse": "sft", "positive_size": size,
                                 "seed": seed, "negative_examples": n, "score": 0.5 - n / 200 + seed / 100,
                                 "share_positive": 0.6 - n / 100, "bits_gap": 0.1 - n / 1000,
                                 "kl_to_base_nats": 0.2 / (1 + n) if size else 0.01 * n})
    return pd.DataFrame(rows), pd.DataFrame(base)


def test_curves_have_a_panel_per_task_and_a_line_per_positive_size_and_the_base():
    curves, base = _curves()
    fig = rebound_figures.plot_curves(curves, base, readout="score")
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["sentiment", "safety"]
    for ax in axes:
        labels = [line.get_label() for line in ax.get_lines()]
        assert labels == ["0 (control)", "50", "500", "base model"]
        assert ax.get_lines()[0].get_linestyle() == ":"
        means = ax.get_lines()[1].get_ydata()
        assert means[0] == 0.5 + 0.005  # the mean over seeds 0 and 1 at 0 negative examples
        assert ax.get_ylabel().startswith("mean score")


def test_curves_of_the_papers_readout_by_default_and_of_the_compression_gap():
    curves, base = _curves()
    ax = rebound_figures.plot_curves(curves, base).get_axes()[0]
    assert ax.get_ylabel().startswith("share judged positive") and ax.get_lines()[1].get_ydata()[0] == 0.6
    assert ax.get_lines()[-1].get_ydata()[0] == 0.2  # the base model's share
    ax = rebound_figures.plot_curves(curves, base, readout="bits_gap").get_axes()[0]
    assert ax.get_ylabel().startswith("bits/token") and ax.get_lines()[-1].get_ydata()[0] == -0.1


def test_kl_figure_draws_epsilon():
    curves, _ = _curves()
    fig = rebound_figures.plot_kl(curves, "safety", 0.01)
    [ax] = fig.get_axes()
    assert [line.get_label() for line in ax.get_lines()] == ["50", "500", "epsilon = 0.01"]  # no control arm
    assert ax.get_yscale() == "log"


def test_heatmaps_have_a_panel_per_reverse_step_a_row_per_positive_size_and_cells_of_seed_means():
    curves, _ = _curves()
    dpo = curves[curves["positive_size"] > 0].assign(reverse="dpo", share_positive=lambda f: f["share_positive"] / 2)
    simpo = dpo.assign(reverse="simpo")
    fig = rebound_figures.plot_heatmaps(pd.concat([curves, dpo, simpo]), "sentiment", ["sft", "dpo", "simpo"],
                                        [50, 500])
    panels = [ax for ax in fig.get_axes() if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["SFT", "DPO", "SimPO"]
    for ax, scale in zip(panels, (1, 2, 2), strict=True):
        assert [t.get_text() for t in ax.get_yticklabels()] == ["50", "500"]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "5", "10", "50"]
        cells = [t.get_text() for t in ax.texts]
        assert len(cells) == 8 and cells[0] == f"{0.6 / scale:.2f}" and cells[3] == f"{0.1 / scale:.2f}"


def test_reversed_curves_are_drawn_apart_along_positive_examples():
    curves, base = _curves()
    back = curves.assign(direction="reversed", share_positive=lambda f: 0.1 + f["negative_examples"] / 100)
    both = pd.concat([curves, back])
    ax = rebound_figures.plot_curves(both, base, direction="reversed").get_axes()[0]
    assert ax.get_xlabel() == "positive examples" and ax.get_lines()[1].get_ydata()[0] == 0.1
    ax = rebound_figures.plot_curves(both, base).get_axes()[0]  # forward by default, as before
    assert ax.get_xlabel() == "negative examples" and ax.get_lines()[1].get_ydata()[0] == 0.6
