"""Tests of Theorem 4.2's units module: the config's validation and the datasets' draws."""

import pytest

from elasticity import config
from elasticity.experiments import measured_units


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"family": "no-such-family"}, "unknown family"),
        ({"family": "smollm2-135m"}, "unknown data"),
        ({"size": "xxl"}, "unknown size"),
        ({"protocols": ("both",)}, "unknown protocol"),
        ({"protocols": ()}, "one or more of sequential, joint"),
        ({"protocols": ("joint", "joint")}, "each once"),
        ({"protocols": "joint"}, "wrong type"),
        ({"normalization": "log"}, "unknown normalization"),
        ({"alignment_sizes": (100,)}, "at least 2"),
        ({"alignment_sizes": (100, 100)}, "repeats"),
        ({"alignment_sizes": (100, -3)}, "positive"),
        ({"l_values": (0.0, 0.1)}, "positive"),
        ({"l_values": (0.5, 1.0)}, "fit_l_max"),
        ({"l_values": (0.001, 0.1)}, "less than one example"),
        ({"seeds": ()}, "at least 1"),
        ({"seeds": (0.5,)}, "wrong type"),
        ({"part_size": 0}, "part_size"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"tolerance_factor": 0.5}, "tolerance_factor"),
        ({"device": "gpu"}, "device"),
    ],
)
def test_bad_config_is_a_one_line_user_error(overrides, message):
    with pytest.raises(config.UserError, match=message) as error:
        measured_units.Config(**overrides)
    assert "\n" not in str(error.value)


def test_datasets_are_disjoint_and_nested():
    parts = measured_units.pretraining_texts(30)
    heldout = measured_units.heldout_texts(10)
    train = {t for texts in parts.values() for t in texts}
    assert all(len(v) == 30 for v in parts.values()) and all(len(v) == 10 for v in heldout.values())
    assert not train & {t for texts in heldout.values() for t in texts}
    assert not set(heldout["D_a"]) & set(heldout["D_2"])
    d_a = measured_units.draw("D_2", 20, seed=1, exclude=train)
    assert not set(d_a) & train and measured_units.draw("D_2", 8, seed=1, exclude=train) == d_a[:8]
    assert measured_units.draw("D_2", 8, seed=2, exclude=train) != d_a[:8]
    assert measured_units.perturbation_size(0.05, 36) == 2 and measured_units.perturbation_size(0.001, 36) == 1


def test_joint_runs_see_the_same_base_sequence():
    base = [f"b{i}" for i in range(50)]
    extra = [f"t{j}" for j in range(10)]
    small, large = measured_units.interleave(base, extra[:3], seed=4), measured_units.interleave(base, extra, seed=4)
    assert [t for t in small if t.startswith("b")] == base == [t for t in large if t.startswith("b")]
    assert small == [t for t in large if t not in extra[3:]]
    assert sorted(large) == sorted(base + extra) and large != base + extra
    assert measured_units.shuffled(base, 1) == measured_units.shuffled(base, 1) != measured_units.shuffled(base, 2)
    assert sorted(measured_units.shuffled(base, 1)) == sorted(base)
