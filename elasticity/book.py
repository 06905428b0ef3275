"""Building the book: chapters, their parameters cells, and an execution cache that sees package changes."""

import ast
import functools
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from elasticity import lifeline, paths
from elasticity.config import UserError, unknown


def chapters() -> dict[str, Path]:
    """The executable chapters: file stem -> path of `notebooks/<stem>.md`."""
    return {p.stem: p for p in sorted(paths.notebooks_dir().glob("*.md"))}


def chapter_path(name: str) -> Path:
    """The source of a chapter, or a `UserError` listing the chapters."""
    found = chapters()
    if name not in found:
        raise unknown("chapter", name, found)
    return found[name]


@functools.lru_cache(maxsize=16)
def _read(path: Path, modified_ns: int):
    import jupytext

    return jupytext.read(path)


def _notebook(path: Path):
    """The chapter as a notebook, read once while its file is unchanged (the checks below each look at it)."""
    return _read(path, path.stat().st_mtime_ns)


def _parameters_cell(path: Path):
    cells = [c for c in _notebook(path).cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise UserError(f"{path.name} must have exactly one cell tagged 'parameters'; it has {len(cells)}")
    return cells[0]


def parameters(path: Path) -> dict[str, Any]:
    """The names and literal default values of a chapter's `parameters` cell, in order."""
    found = {}
    for node in ast.parse(_parameters_cell(path).source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise UserError(f"{path.name}: the parameters cell may only assign literals to names")
        found[node.targets[0].id] = ast.literal_eval(node.value)
    return found


def parameter_help(path: Path) -> str:
    """The chapter's parameters as `elasticity run CHAPTER --help` lists them: name and default, then what it
    accepts (`elasticity.parameters`) and what it means (the cell's own comment: the assignment's trailing
    comment and the comment lines that continue it), for each."""
    import io
    import tokenize

    from elasticity import parameters as declared

    cell = _parameters_cell(path)
    source = cell.source.splitlines()
    comments = {tok.start[0]: tok.string.lstrip("# ").strip()
                for tok in tokenize.generate_tokens(io.StringIO(cell.source).readline)
                if tok.type == tokenize.COMMENT}
    defaults = parameters(path)
    lines = []
    for node in ast.parse(cell.source).body:
        name = node.targets[0].id
        lines += [f"  {name} = {ast.unparse(node.value)}",
                  f"      accepts: {declared.declared(path.stem, name).describe(defaults)}"]
        said, line = [], node.end_lineno
        if comments.get(line):
            said.append(comments[line])
            while line < len(source) and source[line].lstrip().startswith("#"):  # a comment line goes on
                line += 1
                said.append(comments[line])
        if said:
            lines.append(f"      {' '.join(said)}")
    return "\n".join(lines)


def parse_values(path: Path, given: list[tuple[str, str]]) -> dict[str, Any]:
    """The `-p NAME VALUE` pairs given for a chapter, each value parsed as a Python literal (strings may be bare:
    `-p family smollm2-135m`) and checked against what it accepts (`elasticity.parameters.check`): a bad name or
    value is a `UserError` in one line."""
    from elasticity import parameters as declared

    values = {}
    for name, text in given:
        try:
            values[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            values[name] = text
    return declared.check(path.stem, values, parameters(path))


def kernel_parameters(values: dict[str, Any]) -> dict[str, Any]:
    """`values` as papermill can inject them: every tuple, nested ones too (resistance's `pairs`), becomes a
    list, since papermill writes a tuple as the string of it (`seeds = "(0, 1)"`), which the kernel's config
    then refuses; the configs turn lists back into tuples (`config.check_types`)."""
    def listed(value: Any) -> Any:
        return [listed(v) for v in value] if isinstance(value, tuple | list) else value

    return {name: listed(value) for name, value in values.items()}


def _pure(node: ast.AST) -> bool:
    # An expression that calls nothing: safe and cheap to evaluate outside the kernel.
    return not any(isinstance(n, ast.Call | ast.Lambda | ast.NamedExpr | ast.Await) for n in ast.walk(node))


def config_calls(path: Path) -> list[tuple[str, str]]:
    """The chapter's calls `<experiment>.config(...)` that depend on its parameters, as code to check them.

    Each is returned with the simple assignments before it in its cell (those that call nothing, such as
    `tasks = None if task is None else (task,)`), as one source text that assigns the config's keyword
    arguments to `_kwargs`; keywords whose value calls something are left out.

    Returns:
        (module, source) per call, `module` a name under `elasticity.experiments`.
    """
    params = set(parameters(path))
    calls = []
    for cell in _notebook(path).cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        prelude = []
        for statement in tree.body:
            for node in ast.walk(statement):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "config"
                        and isinstance(node.func.value, ast.Name)):
                    used = {n.id for k in node.keywords for n in ast.walk(k.value) if isinstance(n, ast.Name)}
                    assigned = {t.id for s in prelude for t in s.targets if isinstance(t, ast.Name)}
                    if not used & (params | assigned):
                        continue
                    keywords = [k for k in node.keywords if _pure(k.value)]
                    kwargs = ast.Dict(keys=[ast.Constant(k.arg) if k.arg else None for k in keywords],
                                      values=[k.value for k in keywords])
                    body = [*prelude, ast.Assign(targets=[ast.Name("_kwargs", ast.Store())], value=kwargs)]
                    calls.append((node.func.value.id, ast.unparse(ast.fix_missing_locations(ast.Module(body, [])))))
            if isinstance(statement, ast.Assign) and _pure(statement.value):
                prelude.append(statement)
    return calls


def chapter_configs(path: Path, values: dict[str, Any]) -> list[tuple[Any, Any]]:
    """Each experiment config the chapter builds from its parameters (`config_calls`), with `values` over the
    defaults, built outside the kernel by the same checks the kernel would run: a bad value (an unknown family,
    size, device, task, a seed that is not an int...) is refused in one line (`UserError`) before a kernel starts.

    Returns:
        (module, config) per call that could be built here (a call needing earlier cells' names is left out).
    """
    import importlib

    given = {**parameters(path), **values}
    built = []
    for module_name, source in config_calls(path):
        try:
            module = importlib.import_module(f"elasticity.experiments.{module_name}")
        except ModuleNotFoundError:
            continue
        namespace = dict(given)
        try:
            exec(source, {"__builtins__": {}}, namespace)  # noqa: S102 - the chapter's own call-free assignments
        except NameError:
            continue  # the call needs names from earlier cells: only the kernel can build it
        try:
            built.append((module, module.config(**namespace["_kwargs"])))
        except (TypeError, ValueError) as error:  # a value the config cannot take at all
            raise UserError(f"chapter {path.stem!r}: {error}") from None
    return built


def chapter_units(path: Path, values: dict[str, Any]) -> list:
    """The training units (`results.Unit`) that the chapter's experiment configs (`chapter_configs`) read from
    the results cache: what a run of the chapter with `values` computes where they are missing."""
    return [unit for module, cfg in chapter_configs(path, values)
            if hasattr(module, "cached_units") and getattr(module, "wanted", lambda _: True)(cfg)
            for unit in module.cached_units(cfg)]


def check_config(path: Path, values: dict[str, Any]) -> None:
    """Refuse, in one line, a parameter value the chapter's experiment configs cannot take (`chapter_configs`)."""
    chapter_configs(path, values)


def archivable_configs(path: Path, values: dict[str, Any]) -> list[tuple[Any, Any]]:
    """The chapter's (module, config) pairs whose experiment can be archived (`elasticity.archived`), or a
    `UserError` naming the chapters that can."""
    found = [(m, c) for m, c in chapter_configs(path, values)
             if hasattr(m, "judged") and m.CHAPTER == path.stem and getattr(m, "wanted", lambda _: True)(c)]
    if not found:
        from elasticity.experiments import registry

        accepted = [n for n, m in registry.EXPERIMENTS.items() if hasattr(m, "judged")]
        raise UserError(f"chapter {path.stem!r} has no archivable experiment; --archive accepts the chapters of: "
                        f"{', '.join(registry.chapter_of(n) for n in accepted)}")
    return found


def package_fingerprint() -> str:
    """A hash of the package's sources, the recorded benchmark figures and the archived runs that pages read.

    When it changes, cached chapter outputs may be stale.
    """
    digest = hashlib.sha256()
    files = sorted(paths.PACKAGE_DIR.rglob("*.py"))
    if (root := paths.project_root()) is not None:
        files += sorted((root / "benchmarks" / "latest").glob("*.json"))
        files += sorted((root / "results").glob("*/*.json"))  # archives (`elasticity.archived`)
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def sync_execution_cache(build_dir: Path) -> bool:
    """Drop the Jupyter execution cache under `build_dir` if the package changed since it was filled.

    Jupyter's cache keys a chapter by its cells only; a chapter whose code did not change but whose
    package did would show stale outputs. Re-executing is cheap where results are cached by
    `elasticity.results`, which recomputes only what the changed code affects.

    Returns:
        True if the cache was dropped.
    """
    cache = build_dir / ".jupyter_cache"
    stamp = build_dir / ".elasticity-fingerprint"
    current = package_fingerprint()
    dropped = False
    if stamp.is_file() and stamp.read_text() != current and cache.exists():
        shutil.rmtree(cache)
        dropped = True
    build_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(current)
    return dropped


def build(path_output: Path | None = None, *, extra_args: tuple[str, ...] = ()) -> int:
    """Build the book strictly (`-W --keep-going`) and return jupyter-book's exit code."""
    root = paths.project_root()
    if root is None:
        raise UserError("building the book needs a checkout of the repository; none was found")
    build_dir = (path_output or root) / "_build"
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(root), "-W", "--keep-going"]
    if sync_execution_cache(build_dir):
        print("elasticity: the package changed since the last build; re-executing every chapter", flush=True)
        command.append("--all")  # Sphinx re-reads only changed sources unless told to read them all
    if path_output is not None:
        command += ["--path-output", str(path_output)]
    # jupyter-book ends with this process however it ends; its kernels end with it (ipykernel polls its parent).
    code = subprocess.call([*command, *extra_args], preexec_fn=lifeline.child_preexec(os.getpid()))
    publish_notebooks(build_dir)
    return code


def publish_notebooks(build_dir: Path) -> list[Path]:
    """Copy each executed chapter (`_build/jupyter_execute/<path>.ipynb`) beside its page in the HTML
    (`_build/html/<path>.ipynb`), which the page's "Run this chapter" box links for download."""
    executed = build_dir / "jupyter_execute"
    copied = []
    for notebook in sorted(executed.rglob("*.ipynb")):
        target = build_dir / "html" / notebook.relative_to(executed)
        if target.parent.is_dir():
            shutil.copyfile(notebook, target)
            copied.append(target)
    return copied
