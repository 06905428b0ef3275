"""Tests of elasticity.config: type checks, registry errors, scales and overrides."""

from dataclasses import dataclass
from typing import Literal

import pytest

from elasticity import config


@dataclass(frozen=True)
class Example:
    name: str = "a"
    rate: float = 0.5
    steps: int = 3
    sizes: tuple[int, ...] = (1, 2)
    mode: Literal["full", "lora"] = "full"
    label: str | None = None

    def __post_init__(self):
        config.check_types(self)


def test_valid_config_passes_and_lists_become_tuples():
    example = Example(sizes=[1, 2, 3], rate=1)
    assert example.sizes == (1, 2, 3)
    assert example.rate == 1


@pytest.mark.parametrize(
    "overrides, field",
    [({"steps": 1.5}, "steps"), ({"steps": True}, "steps"), ({"rate": "fast"}, "rate"),
     ({"sizes": (1, "2")}, "sizes"), ({"mode": "half"}, "mode"), ({"label": 3}, "label"), ({"name": None}, "name")],
)
def test_wrong_type_names_the_field(overrides, field):
    with pytest.raises(config.UserError, match=rf"Example\.{field} = .* has the wrong type"):
        Example(**overrides)


def test_unknown_lists_accepted_values():
    error = config.unknown("family", "gpt5", ["tiny", "smollm2-135m"])
    assert str(error) == "unknown family 'gpt5'; accepted: tiny, smollm2-135m"
    assert "\n" not in str(error)
    assert config.choice("family", "tiny", ["tiny"]) == "tiny"


def test_scale_reads_environment(monkeypatch):
    monkeypatch.delenv("ELASTICITY_SCALE", raising=False)
    assert config.scale() == "default"
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    assert config.scale() == "smoke"
    monkeypatch.setenv("ELASTICITY_SCALE", "huge")
    with pytest.raises(config.UserError, match="accepted: default, smoke"):
        config.scale()


def test_replace_ignores_none_and_refuses_unknown_names():
    base = Example()
    assert config.replace(base, steps=None, rate=0.1) == Example(rate=0.1)
    with pytest.raises(config.UserError, match="unknown parameter of Example 'stepz'"):
        config.replace(base, stepz=3)
    with pytest.raises(config.UserError, match="steps"):
        config.replace(base, steps="many")
