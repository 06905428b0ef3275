"""Tests of the rebound experiment: config validation, presets, a smoke run end to end."""


import numpy as np
import pandas as pd
import pytest

from elasticity import archived, stats
from elasticity.config import UserError
from elasticity.experiments import rebound, rebound_judge

# ---------------------------------------------------------------------------------------------------------
# Config validation: bad input fails before any work, with one line.
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides, match", [
    ({"family": "gpt-17"}, "unknown family"),
    ({"tasks": ("sentiment", "poetry")}, "unknown task"),
    ({"tasks": ()}, "empty"),
    ({"positive_sizes": (200, 100)}, "increasing"),
    ({"negative_sizes": (10, 20)}, "at least 3"),
    ({"negative_sizes": (10, 13, 20), "initial_negative": 10}, "multiple of batch_size"),
    ({"initial_negative": 200}, "initial_negative"),
    ({"seeds": (0, 0)}, "repeats"),
    ({"learning_rate": 2.0}, "learning_rate"),
    ({"positive_epochs": 0.0}, "positive_epochs"),
    ({"device": "tpu"}, "device"),
    ({"kl_task": "sentiment-imdb"}, "kl_task"),
    ({"kl_epsilon": 0.0}, "kl_epsilon"),
    ({"preference_task": "nope"}, "preference_task"),
    ({"reversed_task": "nope"}, "reversed_task"),
    ({"reversed_sizes": (0, 50)}, "reversed_sizes"),
    ({"algorithms": ("dpo", "ppo2")}, "accepted: dpo, kto, simpo"),
    ({"algorithms": ("ppo",)}, "reward model"),
    ({"algorithms": ("dpo", "dpo")}, "repeats"),
    ({"num_prompts": 0}, "num_prompts"),
    ({"positive_sizes": "100"}, "wrong type"),
])
def test_bad_config_raises_user_error(overrides, match):
    with pytest.raises(UserError, match=match):
        rebound.Config(**overrides)


def test_lists_are_accepted_for_tuples_and_presets_validate():
    cfg = rebound.Config(positive_sizes=[100, 200], seeds=[0, 1])
    assert cfg.positive_sizes == (100, 200) and cfg.seeds == (0, 1)
    for preset in rebound.PRESETS.values():
        assert preset.initial_negative in preset.negative_sizes


def test_config_overrides_and_scale(monkeypatch):
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    assert rebound.config() == rebound.PRESETS["smoke"]
    assert rebound.config(seeds=None, device="cpu").seeds == rebound.PRESETS["smoke"].seeds
    with pytest.raises(UserError, match="unknown parameter"):
        rebound.config(colour="red")


def test_default_preset_keeps_the_paper_ratios():
    from elasticity import paper

    cfg = rebound.PRESETS["default"]
    ratio_pos = np.array(paper.REBOUND_POSITIVE_SIZES) / np.array(cfg.positive_sizes)
    ratio_neg = np.array(paper.REBOUND_NEGATIVE_SIZES) / np.array(cfg.negative_sizes)
    assert np.allclose(ratio_pos, ratio_pos[0]) and np.allclose(ratio_neg, ratio_pos[0])
    assert len(cfg.seeds) >= 3


# ---------------------------------------------------------------------------------------------------------
# The smoke preset end to end on the tiny family.
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    cfg = rebound.config()
    result = rebound.run(cfg)
    curves, base, verdict_frame = result["curves"], result["base"], result["verdicts"]
    per_curve = len(cfg.negative_sizes) + 1
    n_sft = len(cfg.tasks) * len(cfg.positive_sizes) * len(cfg.seeds)
    n_control = len(cfg.tasks) * len(cfg.seeds)
    n_preference = len(cfg.algorithms) * len(cfg.preference_positive_sizes) * len(cfg.seeds)
    n_reversed = (len(cfg.reversed_sizes) + 1) * len(cfg.seeds)  # and its control arm
    assert cfg.control and len(curves) == (n_sft + n_control + n_preference + n_reversed) * per_curve
    assert len(base) == len(cfg.tasks) * len(cfg.seeds)
    readouts = ["score", "share_positive", "bits_positive", "bits_negative", "bits_gap"]
    assert np.isfinite(curves[readouts].to_numpy()).all() and np.isfinite(base[readouts].to_numpy()).all()
    assert curves["share_positive"].between(0, 1).all() and (curves["bits_positive"] > 0).all()
    # the KL to the base is measured on the KL table's curves only: the KL task's SFT curves from a positive model
    table = ((curves["task"] == cfg.kl_task) & (curves["reverse"] == "sft") & (curves["positive_size"] > 0)
             & (curves["direction"] == "forward"))
    kl = curves["kl_to_base_nats"]
    assert np.isfinite(kl[table]).all() and kl[~table].isna().all()
    assert (curves.loc[table, "kl_to_base_nats"] >= -1e-6).all()
    assert set(curves["reverse"]) == {"sft", "dpo", "kto", "simpo"}
    assert set(curves.loc[curves["direction"] == "reversed", "reverse"]) == {"sft"}
    # after positive SFT the model has moved away from the base; the control arm starts at the base model
    start = curves[curves["negative_examples"] == 0]
    assert (start.loc[table, "kl_to_base_nats"] > 0).all()
    control = start[start["positive_size"] == 0].merge(base, on=["task", "seed"], suffixes=("", "_base"))
    assert len(control) == n_control + len(cfg.seeds) and np.allclose(control["bits_gap"], control["bits_gap_base"])
    # the SFT and preference curves of one positive size and seed start from the same positive model
    forward = start[start["direction"] == "forward"]
    sft_start = forward[(forward["reverse"] == "sft") & (forward["task"] == cfg.preference_task)]
    pref_start = forward[forward["reverse"] != "sft"].merge(sft_start, on=["positive_size", "seed"],
                                                            suffixes=("", "_sft"))
    assert len(pref_start) == n_preference
    assert (pref_start[readouts].to_numpy() == pref_start[[f"{r}_sft" for r in readouts]].to_numpy()).all()
    # the reversed curves start from models fine-tuned on negative data: another model than the forward one
    rev_start = start[(start["direction"] == "reversed") & (start["positive_size"] > 0)].merge(
        sft_start, on=["positive_size", "seed"], suffixes=("", "_sft"))
    assert len(rev_start) == len(cfg.reversed_sizes) * len(cfg.seeds)
    assert (rev_start["bits_gap"] != rev_start["bits_gap_sft"]).all()
    assert set(verdict_frame["outcome"]) <= set(stats.OUTCOMES)
    assert set(verdict_frame["claim"]) == {"rebound_two_phase", "rebound_positive_size", "rebound_below_base",
                                           "kl_table", "preference_ablation", "reversed_direction"}
    # both readouts are judged; each preference algorithm judges the initial drop only (its start is SFT evidence)
    assert {f"{t}, compression" for t in cfg.tasks} <= set(verdict_frame["task"])
    ablation = verdict_frame[verdict_frame["claim"] == "preference_ablation"]
    assert [m.split(" after ")[1].split()[0] for m in ablation["measure"]] == ["DPO", "KTO", "SimPO"]
    # the reversed direction: two-phase and negative-size verdicts, on the share judged positive, negated
    rev = verdict_frame[verdict_frame["claim"] == "reversed_direction"]
    assert len(rev) == 3 and rev["measure"].str.contains("negated").all()
    assert rev["measure"].str.contains("per positive example|log10\\(negative size\\)").all()
    assert rev["measure"].str.contains("(negated share judged positive", regex=False).all()
    # outcomes agree with the numbers: recompute the two-phase effect (less the control arm's) from the summary
    summary = result["summary"]
    primary = summary[(summary["reverse"] == "sft") & (summary["readout"] == rebound_judge.PRIMARY)
                      & (summary["direction"] == "forward")]
    for task, g in primary.groupby("task"):
        treated = g[g["positive_size"] > 0]
        gaps = rebound_judge.per_seed(treated, "slope_gap", ["task"]).set_index("seed")["slope_gap"]
        effect = stats.effect((gaps - g[g["positive_size"] == 0].set_index("seed")["slope_gap"]).reset_index(drop=True))
        lift = stats.effect(rebound_judge.per_seed(treated, "lift", ["task"])["lift"])
        row = verdict_frame[(verdict_frame["claim"] == "rebound_two_phase") & (verdict_frame["task"] == task)].iloc[0]
        assert row["effect"] == pytest.approx(effect.mean, nan_ok=True) and row["seeds"] == effect.n
        assert row["outcome"] == (effect.outcome if lift.outcome == "reproduced" else "not testable here")
    # cached units: a second run computes nothing and gives the same numbers
    again = rebound.run(cfg)
    pd.testing.assert_frame_equal(again["curves"], curves)
    # the measured tables archive, and an archive judges back to the same verdicts (elasticity.archived)
    monkeypatch.setenv(archived.ENV, str(tmp_path / "archives"))
    archived.write(rebound, cfg, command="test")
    found, refused = archived.rejudge(rebound)
    assert refused == [] and not found[0].stale and found[0].archived.tables.keys() == set(rebound.TABLES)
    pd.testing.assert_frame_equal(found[0].result["verdicts"], verdict_frame)
    pd.testing.assert_frame_equal(found[0].result["summary"], summary)


def test_pretrained_families_get_a_fine_tuning_learning_rate(monkeypatch):
    from elasticity.experiments import model_size, pretraining_volume

    monkeypatch.setenv("ELASTICITY_SCALE", "default")
    assert rebound.config().learning_rate == rebound.PRESETS["default"].learning_rate  # tiny: the preset's
    hub = rebound.config(family="llama2-7b")  # a pretrained family without settings of its own
    assert hub.learning_rate == rebound.PRETRAINED_LEARNING_RATE
    assert hub.preference_learning_rate == rebound.PRETRAINED_PREFERENCE_LEARNING_RATE
    assert hub.preference_task == hub.reversed_task == "sentiment-imdb"
    assert rebound.config(family="llama2-7b", learning_rate=1e-4).learning_rate == 1e-4
    smol = rebound.config(family="smollm2-135m")  # its own settings (rebound_pilot)
    assert smol.learning_rate == rebound.FAMILY_SETTINGS["smollm2-135m"]["learning_rate"] and smol.lora
    assert smol.algorithms == ("dpo",) and not smol.reversed_direction  # until they are run on the CPU
    assert model_size.config(family="smollm2-135m").learning_rate == rebound.PRETRAINED_LEARNING_RATE
    assert pretraining_volume.config(family="smollm2-135m").learning_rate == rebound.PRETRAINED_LEARNING_RATE


def test_the_default_preset_passes_over_positive_data_more_than_once(monkeypatch):
    monkeypatch.setenv("ELASTICITY_SCALE", "default")
    assert rebound.config().positive_epochs > 1 and rebound.PRESETS["smoke"].positive_epochs == 1
    smol = rebound.config(family="smollm2-135m")
    assert smol.positive_epochs == rebound.PRETRAINED_POSITIVE_EPOCHS
    assert rebound.config(family="smollm2-135m", positive_epochs=3.0).positive_epochs == 3.0
