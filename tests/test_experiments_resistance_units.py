"""Tests of resistance's units module: the checkpoint pairs and the config's validation."""

import pytest

from elasticity import paper
from elasticity.config import UserError
from elasticity.experiments import resistance_units


def test_default_pairs_are_the_papers_columns():
    assert resistance_units.default_pairs(3) == ((1, 2), (2, 3), (1, 3))
    assert resistance_units.default_pairs(2) == ((1, 2),)
    assert len(resistance_units.default_pairs(7)) == paper.TABLE2_PAIRS
    assert resistance_units.pair_label((1, 3)) == "θ3→θ1 vs θ1→θ3"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pairs": ((1, 4),)}, "out of range"),
        ({"pairs": ((2, 1),)}, "out of range"),
        ({"pairs": ((0, 2),)}, "out of range"),
        ({"pairs": ((1, 2), (1, 2))}, "repeats"),
        ({"num_samples": 0}, "num_samples"),
        ({"steps": 0}, "steps"),
        ({"datasets": ("no-such-data",)}, "unknown dataset"),
        ({"datasets": ()}, "datasets is empty"),
        ({"family": "no-such-family"}, "unknown family"),
        ({"size": "xxl"}, "unknown size"),
        ({"num_checkpoints": 1}, "num_checkpoints"),
        ({"seeds": ()}, "seeds"),
        ({"seeds": (0, 0)}, "seeds"),
        ({"seeds": (0.5,)}, "wrong type"),
        ({"num_samples": "8"}, "wrong type"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"device": "gpu"}, "device"),
    ],
)
def test_bad_config_is_a_one_line_user_error(overrides, message):
    with pytest.raises(UserError, match=message) as error:
        resistance_units.Config(**overrides)
    assert "\n" not in str(error.value)


