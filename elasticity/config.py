"""Frozen, self-validating configs and the one error type for bad user input."""

import dataclasses
import os
import re
import types
import typing
from typing import Any

SCALES = ("default", "smoke")
DEVICES = "cpu, cuda, cuda:N, mps"  # the torch devices a command or config accepts (`is_device`)
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


class UserError(ValueError):
    """Bad input from a user (unknown name, wrong type, missing file): shown as one line, exit code 2."""


def unknown(what: str, value: Any, accepted) -> UserError:
    """The error for a name that is not in a registry, listing the accepted names."""
    return UserError(f"unknown {what} {value!r}; accepted: {', '.join(map(str, accepted))}")


def choice(what: str, value: Any, accepted) -> Any:
    """Return `value` if it is one of `accepted`, else raise a `UserError` listing them."""
    if value not in accepted:
        raise unknown(what, value, accepted)
    return value


def is_device(value: Any) -> bool:
    """Whether `value` names a torch device that commands and configs accept (`DEVICES`)."""
    return isinstance(value, str) and _DEVICE.match(value) is not None


def scale() -> str:
    """The scale every chapter runs at: `ELASTICITY_SCALE` (default | smoke), `default` if unset."""
    return choice("scale (ELASTICITY_SCALE)", os.environ.get("ELASTICITY_SCALE", "default"), SCALES)


def _matches(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(annotation))
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if dataclasses.is_dataclass(annotation):
        return isinstance(value, annotation)
    return isinstance(value, origin or annotation)


def check_types(config: Any) -> None:
    """Raise a `UserError` naming the first field of a dataclass whose value has the wrong type.

    Call it from `__post_init__`. Lists are accepted where tuples are annotated and are converted,
    so that papermill and YAML values (which arrive as lists) work.
    """
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        annotation = hints[field.name]
        if isinstance(value, list):
            value = tuple(value)
            object.__setattr__(config, field.name, value)
        if not _matches(value, annotation):
            shown = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
            raise UserError(
                f"{type(config).__name__}.{field.name} = {value!r} has the wrong type; expected {shown}"
            )


def replace(config: Any, **overrides: Any) -> Any:
    """`dataclasses.replace` that ignores overrides equal to None (unset chapter parameters)."""
    names = {f.name for f in dataclasses.fields(config)}
    for name in overrides:
        if name not in names:
            raise unknown(f"parameter of {type(config).__name__}", name, sorted(names))
    return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
