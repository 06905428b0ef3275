"""Tests of the measured-elasticity experiment (analysis on synthetic data, config, smoke run) and of the registry."""


import numpy as np
import pandas as pd
import pytest

from elasticity import stats, verdicts
from elasticity.experiments import measured, measured_figures, measured_units, registry


def test_presets_span_k_tenfold_and_accept_papermill_lists(monkeypatch):
    for preset in measured.PRESETS.values():
        assert max(preset.k_values) / min(preset.k_values) >= 3
    default = measured.PRESETS["default"]
    assert max(default.k_values) / min(default.k_values) >= 10 and min(default.l_values) < 0.1
    cfg = measured_units.Config(alignment_sizes=[360, 36], l_values=[0.1, 0.5], seeds=[1])
    assert cfg.alignment_sizes == (360, 36) and cfg.k_values == (10.0, 100.0)
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    assert measured.config(seeds=None) == measured.PRESETS["smoke"]
    assert measured.config(seeds=(5,)).seeds == (5,)



# ---------------------------------------------------------------------------------------------------------
# The smoke preset end to end.
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    cfg = measured.config()
    result = measured.load_or_run(cfg)
    rates = result["rates"]
    expected_rows = (len(cfg.protocols) * len(cfg.alignment_sizes) * len(cfg.seeds) * (len(cfg.l_values) + 1)
                     * len(measured_units.DATASETS))
    assert len(rates) == expected_rows and tuple(dict.fromkeys(rates.protocol)) == cfg.protocols
    assert np.isfinite(rates.gamma_bits).all() and (rates[rates.l == 0].delta_gamma_bits == 0).all()
    assert (rates[rates.l > 0].kl_nats > 0).all()
    assert set(result["ratios"].k) == set(cfg.k_values)
    assert list(result["ratios"].protocol) == [p for p in cfg.protocols for _ in cfg.k_values]
    sizes = result["sizes"].set_index("dataset")
    assert sizes.loc["D_p", "tokens"] == sum(sizes.loc[p, "tokens"] for p in measured_units.PARTS) > 0
    found = verdicts.from_frame(result["verdicts"])
    assert [v.task for v in found] == [f"k = {k:.3g}" for k in sorted(cfg.k_values)]
    assert {v.outcome for v in found} <= set(stats.OUTCOMES)
    assert "joint" in cfg.protocols and all("joint protocol" in v.ours for v in found)
    verdict = found[0]
    # Cached: the second call reads the same numbers.
    again = measured.load_or_run(cfg)
    pd.testing.assert_frame_equal(again["ratios"], result["ratios"])
    # The per-text aggregation of `measure` agrees with the compression module's own rate.
    model, tokenizer = measured_units._load_pretrained(measured_units._pretrain_unit(cfg))
    heldout = measured_units.heldout_texts(cfg.eval_size)
    mine = measured_units.measure(model, tokenizer, heldout, normalization="log-leaves", depth=cfg.depth)
    joint = [t for texts in heldout.values() for t in texts]
    from elasticity import compression

    theirs = compression.normalized_compression_rate(model, tokenizer, heldout["D_a"], joint, depth=cfg.depth)
    assert mine["D_a"] == pytest.approx(theirs, rel=1e-9)
    assert measured_figures.plot_ratio_vs_k(result) is not None
    assert measured_figures.plot_rate_changes(result) is not None
    # The registry reads this cached result into the book's verdict table.
    table = registry.collect_verdicts()
    row = table[table.experiment == "measured"].iloc[0]
    assert row.status == registry.STATUS_COMPUTED and row.outcome == verdict.outcome
