"""Tests of the chapter parameters' declarations: every chapter's parameters are declared, their defaults
accepted, bad values refused in one line naming what is accepted."""

import subprocess
import sys

import pytest

from elasticity import book, models, parameters
from elasticity.config import UserError


def chapter_parameters():
    return [(path.stem, name, default) for path in book.chapters().values()
            for name, default in book.parameters(path).items()]


def test_every_chapter_parameter_is_declared_and_accepts_its_default():
    for chapter, name, default in chapter_parameters():
        defaults = book.parameters(book.chapter_path(chapter))
        assert parameters.declared(chapter, name).check(default, defaults) == default, (chapter, name)


def test_every_declaration_is_used_by_a_chapter():
    used = {name for _, name, _ in chapter_parameters()} | {f"{c}.{n}" for c, n, _ in chapter_parameters()}
    assert set(parameters.PARAMETERS) <= used


def test_sizes_and_protocols_are_read_from_the_model_code():
    from elasticity.experiments import measured_units

    assert parameters.family_sizes("qwen1.5") == models.sizes("qwen1.5") == ("0.5b", "4b", "7b")
    assert parameters.family_sizes("tiny") == ("s", "m", "l")
    protocol = parameters.declared("elasticity_measured", "protocol")
    assert tuple(protocol.kind.accepted({})) == measured_units.PROTOCOLS


def test_check_converts_as_declared():
    defaults = {"family": "tiny", "size": None, "seeds": None, "learning_rate": None, "pairs": None}
    got = parameters.check("resistance", {"seeds": [0, 2], "learning_rate": 1, "pairs": [[1, 3], [2, 3]]}, defaults)
    assert got == {"seeds": (0, 2), "learning_rate": 1.0, "pairs": ((1, 3), (2, 3))}
    assert isinstance(got["learning_rate"], float)


def test_sizes_are_those_of_the_family_given():
    defaults = {"family": "tiny", "size": None}
    assert parameters.check("rebound", {"family": "qwen1.5", "size": "4b"}, defaults) == {
        "family": "qwen1.5", "size": "4b"}
    with pytest.raises(UserError, match=r"parameter 'size' = '4b' of chapter 'rebound'; accepted: one of s, m, l,"):
        parameters.check("rebound", {"size": "4b"}, defaults)


@pytest.mark.parametrize("chapter, name, value, accepted", [
    ("rebound", "seeds", (0, 0), "a tuple of ints >= 0 (distinct)"),
    ("rebound", "seeds", (), "a tuple of ints >= 0 (distinct)"),
    ("rebound", "negative_sizes", (10, 5), "(distinct, increasing)"),
    ("rebound", "control", 1, "True or False"),
    ("rebound", "algorithms", "ppo2", "a tuple of names from dpo, kto, simpo (distinct)"),
    ("rebound", "algorithms", ("dpo", "ppo"), "a tuple of names from dpo, kto, simpo (distinct)"),
    ("rebound", "reversed_direction", "yes", "True or False"),
    ("rebound", "device", "cuda:x", "a device: cpu, cuda, cuda:N, mps"),
    ("rebound", "positive_epochs", 0, "float > 0"),
    ("rebound", "family", None, "one of tiny, smollm2-135m"),
    ("resistance", "pairs", ((2, 1),), "pairs (k, l) of ints, 1 <= k < l"),
    ("resistance", "pairs", ((1, 2), (1, 2)), "distinct pairs"),
    ("resistance", "num_checkpoints", 1, "int >= 2"),
    ("resistance", "datasets", ("rotten-tomatoes", "nope"), "a tuple of names from "),
    ("elasticity_measured", "family", "smollm2-135m", "one of tiny (pre-trained here"),
    ("elasticity_measured", "l_values", (0.0, 0.1), "floats > 0"),
    ("pretraining_volume", "family", "qwen1.5", "one of tiny, tinyllama-1.1b (the families with checkpoints"),
    ("pretraining_volume", "budgets", (1000,), "a tuple of 2 or more ints >= 1"),
    ("theory_elasticity", "normalization", "gamma", "one of log-leaves, log-leaves-per-block, none"),
    ("theory_token_tree", "max_length", 0, "int >= 1"),
    ("verdicts", "scale", "huge", "one of default, smoke"),
])
def test_a_bad_value_is_one_line_naming_parameter_value_and_accepted(chapter, name, value, accepted):
    defaults = book.parameters(book.chapter_path(chapter))
    with pytest.raises(UserError) as error:
        parameters.check(chapter, {name: value}, defaults)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"parameter {name!r} = {value!r} of chapter {chapter!r}; accepted: ")
    assert accepted in message


def test_an_unknown_or_undeclared_name_is_refused():
    with pytest.raises(UserError, match="unknown parameter 'stepz' of chapter 'rebound'; accepted: family, size"):
        parameters.check("rebound", {"stepz": 1}, book.parameters(book.chapter_path("rebound")))
    with pytest.raises(UserError, match="parameter 'nope' of chapter 'toy' is not declared"):
        parameters.check("toy", {"nope": 1}, {"nope": 0})


def test_checking_imports_no_model_code():
    code = ("from elasticity import book, parameters; "
            "[parameters.check(p.stem, book.parameters(p), book.parameters(p)) for p in book.chapters().values()]; "
            "[book.parameter_help(p) for p in book.chapters().values()]; import sys; print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False"]
