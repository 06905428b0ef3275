"""The experiments' layers: what a cached unit's key covers (its module's import closure) holds no judging code.

Editing a verdict, a statistic, a figure or the paper's numbers must never recompute a training unit, so a
unit module (`*_units`) may reach measuring code only; and editing measuring code must mark the units stale.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import elasticity
import elasticity.experiments
from elasticity import results
from elasticity.experiments import registry

UNIT_MODULES = sorted(p.stem for p in Path(elasticity.experiments.__file__).parent.glob("*_units.py"))
JUDGING = {"elasticity.verdicts", "elasticity.paper", "elasticity.plotting", "elasticity.theory"}
# The chapters' own experiment modules: each judges its units.
EXPERIMENT_MODULES = {planned.module for planned in registry.PLANNED.values()}


def judging(name: str) -> bool:
    """Whether module `name` judges (or draws) rather than measures."""
    return name in JUDGING or name in EXPERIMENT_MODULES or name.endswith(("_judge", "_figures"))


def test_the_chapters_that_train_have_unit_modules():
    assert {"rebound_units", "resistance_units", "measured_units"} <= set(UNIT_MODULES)


@pytest.mark.parametrize("name", UNIT_MODULES)
def test_a_unit_module_reaches_no_judging_code(name):
    closure = results.code_closure(f"elasticity.experiments.{name}")
    assert sorted(m for m in closure if judging(m)) == []
    # measuring code is in the key: editing it marks the units stale
    assert {"elasticity.finetune" if name != "compression_with_models_units" else "elasticity.compression"} <= set(
        closure)


KEYS = """
from elasticity import results
from elasticity.experiments import measured_units, rebound_units, resistance_units
for fn in (rebound_units._compute_unit, rebound_units._compute_base, resistance_units._compute_align,
           resistance_units._build_checkpoints, measured_units._compute_unit, measured_units._build_pretrained):
    print(results.code_fingerprint(fn))
"""


def _unit_keys(package: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(package.parent)}
    out = subprocess.run([sys.executable, "-c", KEYS], env=env, capture_output=True, text=True, check=True,
                         cwd=package.parent)
    return out.stdout.split()


@pytest.mark.slow
def test_editing_judging_code_keeps_every_unit_key_and_editing_measuring_code_changes_them(tmp_path):
    """In a copy of the package: a comment appended to each judging module leaves the training units' code
    keys as they were; one appended to `finetune.py` changes every one of them."""
    package = tmp_path / "elasticity"
    shutil.copytree(Path(elasticity.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    before = _unit_keys(package)
    assert len(set(before)) >= 3
    judging_files = [package / f"{m}.py" for m in ("verdicts", "paper", "plotting", "theory")]
    judging_files += sorted((package / "experiments").glob("*_judge.py"))
    judging_files += sorted((package / "experiments").glob("*_figures.py"))
    judging_files += [package / "experiments" / f"{m.rpartition('.')[2]}.py" for m in EXPERIMENT_MODULES]
    for path in judging_files:
        path.write_text(path.read_text() + "\n# an edit of the judging\n")
    assert _unit_keys(package) == before
    finetune = package / "finetune.py"
    finetune.write_text(finetune.read_text() + "\n# an edit of the training\n")
    after = _unit_keys(package)
    assert all(a != b for a, b in zip(after, before, strict=True))


def test_the_judging_test_would_see_a_judging_import():
    closure = results.code_closure("elasticity.experiments.rebound")  # the chapter's module judges
    assert {"elasticity.verdicts", "elasticity.experiments.rebound_judge"} <= set(closure)
    assert judging("elasticity.experiments.rebound_judge") and not judging("elasticity.finetune")
