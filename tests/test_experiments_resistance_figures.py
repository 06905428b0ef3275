"""Tests of resistance's figure: one mean with its SD bar and one dot per seed for each cell."""

import pandas as pd

from elasticity.experiments import resistance_figures


def test_one_error_bar_per_cell_at_the_mean_difference():
    rows = []
    for dataset in ("d1", "d2"):
        for seed, (forward, inverse) in enumerate([(1.2, 1.0), (1.4, 1.0), (1.3, 1.0)]):
            for direction, loss in (("forward", forward), ("inverse", inverse)):
                rows.append({"dataset": dataset, "k": 1, "l": 2, "pair": "θ2→θ1 vs θ1→θ2", "seed": seed,
                             "direction": direction, "final_loss_nats": loss})
    fig = resistance_figures.plot_cells({"runs": pd.DataFrame(rows)})
    [ax] = fig.get_axes()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["d1\nθ1/θ2", "d2\nθ1/θ2"]
    means = [line.get_ydata()[0] for line in ax.get_lines() if line.get_marker() == "o"]
    assert len(means) == 2 and all(abs(m - 0.3) < 1e-12 for m in means)  # mean of 0.2, 0.4, 0.3
