"""Every chapter parameter a user can set with `elasticity run -p`: its type and accepted values, declared once.

`elasticity run` checks the values given against `PARAMETERS` before a kernel starts, and
`elasticity run CHAPTER --help` lists them; each chapter's parameters cell holds the defaults and says in its
comments what each one means (`book.parameter_help` shows both). Relations between parameters (a checkpoint
pair within `num_checkpoints`, a budget the family has) are the experiment configs' own checks, run next.
Nothing here imports torch, so that a bad value is refused in well under two seconds.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from elasticity import config, families
from elasticity.config import UserError


class Refused(Exception):
    """A value a parameter does not accept (turned into a `UserError` naming the parameter by `check`)."""


def family_sizes(name: str) -> tuple[str, ...]:
    """The sizes of a family, smallest first (`models.sizes`; an unknown family is refused first)."""
    families.family(name)
    from elasticity import models

    return models.sizes(name)


def check_family_size(family: str, size: str | None) -> None:
    """Refuse (`UserError`) an unknown family, or a size it does not have (None: its default size)."""
    if size is not None:
        config.choice(f"size of family {family!r}", size, family_sizes(family))
    else:
        families.family(family)


@dataclass(frozen=True)
class Number:
    """An int or a float of at least `minimum` (above it, with `above`)."""

    kind: type  # int or float
    minimum: float = 1
    above: bool = False  # whether `minimum` itself is refused (a float that must be positive)

    def describe(self, values: dict[str, Any], plural: bool = False) -> str:
        return f"{self.kind.__name__}{'s' if plural else ''} {'>' if self.above else '>='} {self.minimum:g}"

    def check(self, value: Any, values: dict[str, Any]) -> Any:
        number = int | float if self.kind is float else int
        if isinstance(value, bool) or not isinstance(value, number):
            raise Refused
        if value < self.minimum or (self.above and value == self.minimum):
            raise Refused
        return self.kind(value)


@dataclass(frozen=True)
class Flag:
    """True or False."""

    def describe(self, values: dict[str, Any]) -> str:
        return "True or False"

    def check(self, value: Any, values: dict[str, Any]) -> Any:
        if not isinstance(value, bool):
            raise Refused
        return value


@dataclass(frozen=True)
class Name:
    """One of the names a registry holds; `accepted` lists them, given the chapter's other values (the sizes of
    the family chosen)."""

    accepted: Callable[[dict[str, Any]], Iterable[str]]

    def describe(self, values: dict[str, Any], plural: bool = False) -> str:
        return f"{'names from' if plural else 'one of'} {', '.join(map(str, self.accepted(values)))}"

    def check(self, value: Any, values: dict[str, Any]) -> Any:
        if not isinstance(value, str) or value not in tuple(self.accepted(values)):
            raise Refused
        return value


@dataclass(frozen=True)
class Device:
    """A torch device."""

    def describe(self, values: dict[str, Any]) -> str:
        return f"a device: {config.DEVICES}"

    def check(self, value: Any, values: dict[str, Any]) -> Any:
        if not config.is_device(value):
            raise Refused
        return value


@dataclass(frozen=True)
class Many:
    """A tuple (a list is taken too) of distinct `item`s, at least `at_least` of them, increasing with
    `increasing`."""

    item: Number | Name
    increasing: bool = False
    at_least: int = 1

    def describe(self, values: dict[str, Any]) -> str:
        count = f"{self.at_least} or more " if self.at_least > 1 else ""
        order = "distinct, increasing" if self.increasing else "distinct"
        return f"a tuple of {count}{self.item.describe(values, plural=True)} ({order})"

    def check(self, value: Any, values: dict[str, Any]) -> Any:
        if not isinstance(value, tuple | list) or len(value) < self.at_least:
            raise Refused
        items = tuple(self.item.check(v, values) for v in value)
        if len(set(items)) != len(items) or (self.increasing and list(items) != sorted(items)):
            raise Refused
        return items


@dataclass(frozen=True)
class Pairs:
    """Distinct pairs (k, l) of ints, 1 <= k < l."""

    def describe(self, values: dict[str, Any]) -> str:
        return "a tuple of distinct pairs (k, l) of ints, 1 <= k < l"

    def check(self, value: Any, values: dict[str, Any]) -> Any:
        if not isinstance(value, tuple | list) or not value:
            raise Refused
        pairs = tuple(tuple(Many(Number(int)).check(p, values)) for p in value)
        if any(len(p) != 2 or p[0] >= p[1] for p in pairs) or len(set(pairs)) != len(pairs):
            raise Refused
        return pairs


@dataclass(frozen=True)
class Parameter:
    """What a parameter accepts: a value of `kind`, or None (the scale's preset) where `optional`; `why`, where
    the chapter accepts fewer values than elsewhere."""

    kind: Number | Flag | Name | Device | Many | Pairs
    optional: bool = True
    why: str = ""

    def describe(self, values: dict[str, Any]) -> str:
        text = self.kind.describe(values) + (", or None (the preset's)" if self.optional else "")
        return f"{text} ({self.why})" if self.why else text

    def check(self, value: Any, values: dict[str, Any]) -> Any:
        if value is None and self.optional:
            return None
        return self.kind.check(value, values)


def _keys_of(module: str, registry: str) -> Callable[[dict[str, Any]], Iterable[str]]:
    """The names in `module.registry`, read when a value is checked (the module is imported then, not here)."""
    return lambda values: tuple(getattr(importlib.import_module(module), registry))


def _sizes(values: dict[str, Any]) -> Iterable[str]:
    return family_sizes(values["family"]) if values.get("family") in families.FAMILIES else ()


def _constant(names: Iterable[str]) -> Callable[[dict[str, Any]], Iterable[str]]:
    names = tuple(names)
    return lambda values: names


COUNT = Parameter(Number(int))  # a number of texts, examples, bytes, steps... (None: the preset's)
SEEDS = Parameter(Many(Number(int, 0)))
POSITIVE = Parameter(Number(float, 0, above=True))
EXAMPLE_SIZES = Parameter(Many(Number(int), increasing=True))
# The families a chapter pre-trains from scratch (|D_p| known) and those with checkpoints at several budgets.
PRETRAINED_HERE = tuple(n for n, f in families.FAMILIES.items() if f.kind == "tiny")
WITH_BUDGETS = tuple(n for n, f in families.FAMILIES.items() if f.kind == "tiny" or f.budgets)

# Name -> what it accepts in every chapter that has it; "chapter.name" where one chapter's parameter of that name
# means something else (`declared`).
PARAMETERS: dict[str, Parameter] = {
    "family": Parameter(Name(_constant(families.FAMILIES)), optional=False),
    "size": Parameter(Name(_sizes)),
    "sizes": Parameter(Many(Name(_sizes))),
    "device": Parameter(Device(), optional=False),
    "seeds": SEEDS,
    "task": Parameter(Name(_keys_of("elasticity.data", "TASKS"))),
    "dataset": Parameter(Name(_keys_of("elasticity.data", "DATASETS"))),
    "datasets": Parameter(Many(Name(_keys_of("elasticity.data", "DATASETS")))),
    "positive_sizes": EXAMPLE_SIZES,
    "negative_sizes": EXAMPLE_SIZES,
    "positive_epochs": POSITIVE,
    "control": Parameter(Flag()),
    # rebound
    "algorithms": Parameter(Many(Name(_keys_of("elasticity.preference", "ALGORITHMS")))),
    "reversed_direction": Parameter(Flag()),
    # compression_protocol
    "split": Parameter(Name(_keys_of("elasticity.data", "SPLITS")), optional=False),
    "num_texts": COUNT,
    "binary_depths": Parameter(Many(Number(int), increasing=True)),
    "byte_depths": Parameter(Many(Number(int), increasing=True)),
    # compression_with_models
    "num_bytes": COUNT,
    "ideal_bytes": COUNT,
    "smollm2": Parameter(Flag()),
    "round_trip": Parameter(Flag()),
    "smollm2_round_trip": Parameter(Flag()),
    "rates_size": Parameter(Name(_sizes)),
    "rates_texts": COUNT,
    # elasticity_measured
    "elasticity_measured.family": Parameter(Name(_constant(PRETRAINED_HERE)), optional=False,
                                            why="pre-trained here, so that k = |D_p|/|D_a| is known"),
    "alignment_sizes": Parameter(Many(Number(int), increasing=True)),
    "l_values": Parameter(Many(Number(float, 0, above=True), increasing=True)),
    "protocol": Parameter(Name(_keys_of("elasticity.experiments.measured_units", "PROTOCOLS"))),
    # models
    "include_smollm2": Parameter(Flag()),
    # pretraining_volume
    "pretraining_volume.family": Parameter(Name(_constant(WITH_BUDGETS)), optional=False,
                                           why="the families with checkpoints at several token budgets"),
    "budgets": Parameter(Many(Number(int), increasing=True, at_least=2)),
    # resistance
    "num_checkpoints": Parameter(Number(int, 2)),
    "pairs": Parameter(Pairs()),
    "num_sft": COUNT,
    "num_samples": COUNT,
    "num_eval": COUNT,
    "max_new_tokens": COUNT,
    "steps": COUNT,
    "sft_learning_rate": POSITIVE,
    "learning_rate": POSITIVE,
    "batch_size": COUNT,
    "max_length": COUNT,
    "lora": Parameter(Flag()),
    # theory_elasticity, theory_token_tree
    "k": Parameter(Number(float, 0, above=True), optional=False),
    "l": Parameter(Number(float, 0, above=True), optional=False),
    "pareto_shape": Parameter(Number(float, 0, above=True), optional=False),
    "pareto_scale": Parameter(Number(float, 0, above=True), optional=False),
    "depth": Parameter(Number(int), optional=False),
    "normalization": Parameter(Name(_keys_of("elasticity.theory", "NORMALIZATIONS")), optional=False),
    "num_trees": COUNT,
    "seed": Parameter(Number(int, 0), optional=False),
    "num_responses": Parameter(Number(int), optional=False),
    "theory_token_tree.max_length": Parameter(Number(int), optional=False),
    "theory_token_tree.num_samples": Parameter(Number(int), optional=False),
    # verdicts
    "scale": Parameter(Name(_constant(config.SCALES))),
}


def declared(chapter: str, name: str) -> Parameter:
    """What parameter `name` of `chapter` accepts, or a `UserError` if it is not declared here."""
    found = PARAMETERS.get(f"{chapter}.{name}") or PARAMETERS.get(name)
    if found is None:
        raise UserError(f"parameter {name!r} of chapter {chapter!r} is not declared in elasticity.parameters")
    return found


def check(chapter: str, values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """`values` (given with -p) checked against `PARAMETERS`, with lists as tuples and ints as floats where a float
    is declared; a bad one is a `UserError` naming the parameter, the value and what is accepted.

    `defaults` (the chapter's parameters cell) fills in the other parameters a value's accepted set depends on
    (the sizes of the family given or of the default one)."""
    merged = {**defaults, **values}
    checked = {}
    for name in sorted(values, key=lambda n: n != "family"):  # the family first: sizes depend on it
        if name not in defaults:
            raise UserError(f"unknown parameter {name!r} of chapter {chapter!r}; accepted: {', '.join(defaults)}")
        parameter = declared(chapter, name)
        try:
            checked[name] = parameter.check(values[name], merged)
        except Refused:
            raise UserError(f"parameter {name!r} = {values[name]!r} of chapter {chapter!r}; accepted: "
                            f"{parameter.describe(merged)}") from None
    return {name: checked[name] for name in values}
