"""Tests of the book: chapter anatomy, table of contents, strict builds (smoke scale and a broken cell)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest
import yaml
from conftest import alive, command_line, load_script

from elasticity import book, numerics, pages, paths

ROOT = paths.project_root()
CHAPTERS = book.chapters()


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def test_toc_lists_every_chapter_and_every_file_exists():
    files = toc_files()
    for file in files:
        assert (ROOT / f"{file}.md").is_file(), file
    assert {f"notebooks/{stem}" for stem in CHAPTERS} <= set(files)


@pytest.mark.parametrize("stem", sorted(CHAPTERS))
def test_chapter_anatomy(stem):
    path = CHAPTERS[stem]
    text = path.read_text()
    assert f"\n({stem})=\n# " in text, "a label equal to the file stem, then the title"
    assert "{cite}`" in text, "the claim of the paper is cited"
    notebook = jupytext.read(path)
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    for line in cells[0].source.strip().splitlines():
        if line.strip():  # a literal with a trailing comment, which may go on in comment lines below it
            assert re.match(r"^(\w+ = .+  |\s+)# \S", line), f"a literal with a trailing comment: {line!r}"
    book.parameters(path)  # literals only
    first = next(c for c in notebook.cells if c.cell_type == "code")
    assert first.source.endswith(f'pages.run_box("{stem}")'), "the Run this chapter box opens the chapter's cells"
    assert "remove-input" in first.metadata.get("tags", [])
    for cell in notebook.cells:  # plumbing (glue for the prose) is computed off the page, in hidden cells
        hidden = {"remove-cell", "remove-input"} & set(cell.metadata.get("tags", []))
        assert cell.cell_type != "code" or hidden or "glue(" not in cell.source, cell.source[:200]
        long = [line for line in cell.source.splitlines() if len(line) > pages.WIDTH]  # read without scrolling
        assert cell.cell_type != "code" or hidden or not long, long
    for cell in notebook.cells:  # a figure's alt text says what it shows, from its caption
        if "figure" in cell.metadata.get("mystnb", {}):
            alt = cell.metadata["mystnb"].get("image", {}).get("alt", "")
            assert len(alt) > 20 and "$" not in alt and not alt.endswith(".png"), cell.metadata
    glued = set(re.findall(r"""glue\(\s*f?["']([\w{}]+)["']""", text))
    for key in re.findall(r"\{glue:\w+\}`([\w]+)", text):
        assert key in glued or any("{" in g for g in glued), f"{key} is pasted but never glued"


def test_no_executed_notebooks_tracked():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert not [f for f in tracked if f.endswith((".ipynb", ".safetensors", ".gguf", ".pt", ".bin"))]


def _build(source: Path, output: Path, env: dict) -> subprocess.CompletedProcess:
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    return subprocess.run([str(jupyter_book), "build", str(source), "--path-output", str(output), "-W", "--keep-going"],
                          capture_output=True, text=True, env=env)


@pytest.mark.notebooks
def test_broken_cell_fails_the_build_but_writes_html(tmp_path):
    source = tmp_path / "src"
    (source / "book").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", source / "_config.yml")
    shutil.copy(ROOT / "book" / "references.bib", source / "book" / "references.bib")
    (source / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/broken\n")
    (source / "book" / "intro.md").write_text("# Intro\n\nA page {cite}`ji2025resist`.\n")
    header = (ROOT / "report" / "status.md").read_text().split("(status)=")[0]
    (source / "book" / "broken.md").write_text(header + "# Broken\n\n```{code-cell} ipython3\n1 / 0\n```\n")
    completed = _build(source, tmp_path / "out", dict(os.environ))
    assert completed.returncode != 0
    assert "ZeroDivisionError" in completed.stdout + completed.stderr


@pytest.mark.notebooks
@pytest.mark.slow
def test_whole_book_builds_strictly_at_smoke_scale(tmp_path):
    env = dict(os.environ, ELASTICITY_SCALE="smoke", ELASTICITY_CACHE=str(tmp_path / "cache"))
    completed = subprocess.run([sys.executable, "-m", "elasticity.cli", "book", "--path-output", str(tmp_path)],
                               capture_output=True, text=True, env=env, cwd=ROOT)
    log = completed.stdout + completed.stderr
    assert completed.returncode == 0, log[-6000:]
    # -W turns every Sphinx warning into an error, so exit code 0 already means zero warnings.
    assert "build succeeded" in completed.stdout and "warning" not in completed.stdout.split("build succeeded")[-1]
    assert "without encryption" not in log  # every kernel got CurveZMQ keys (elasticity.kernel)
    html = tmp_path / "_build" / "html"
    for file in toc_files():
        assert (html / f"{file}.html").is_file(), file
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file(), "math renders offline"
    check_html = load_script("scripts/check_html.py", "check_html")  # what a reader trips on, page by page
    assert any("rebound.config(" in code for code in check_html.shown_code((html / "notebooks" / "rebound.html")
                                                                           .read_text()))
    browser = shutil.which("chromium") or shutil.which("chromium-browser")  # where it is, the layout too
    for page in check_html.all_pages(html):
        assert check_html.page_problems(html / f"{page}.html") == [], page
        if browser:
            measured = check_html.layout(html / f"{page}.html", tmp_path / ".profile")
            assert check_html.layout_problems(measured) == [], page
        assert "_static/elasticity.css" in (html / f"{page}.html").read_text(), page  # wide tables scroll
    for stem in CHAPTERS:  # each chapter's page tells how to run it again
        page = next(html.rglob(f"{stem}.html")).read_text()
        assert '<p class="admonition-title">Run this chapter</p>' in page and f"elasticity run {stem}\n" in page
        assert f'<a href="{stem}.ipynb" download>' in page  # the executed notebook, beside the page
        assert (next(html.rglob(f"{stem}.html")).parent / f"{stem}.ipynb").is_file()
        for alt in re.findall(r'<img alt="([^"]*)"', page):
            assert len(alt) > 20 and not alt.endswith(".png"), (stem, alt)
    # Every result the chapters' kernels cached was computed at the pinned kernel level and thread count.
    entries = (tmp_path / "cache" / "results").glob("*/*/provenance.json")
    records = [json.loads(entry.read_text())["numerics"] for entry in entries]
    assert len(records) > 50
    for record in records:
        if record["torch"]:  # None: computed where torch was never imported
            assert record["torch_threads"] == numerics.THREADS, record
            assert record["cpu_capability"] == numerics.PINNED_CAPABILITY or not numerics.applies(), record


def test_executed_notebooks_are_published_beside_their_pages(tmp_path):
    executed = tmp_path / "_build" / "jupyter_execute" / "notebooks"
    executed.mkdir(parents=True)
    (executed / "rebound.ipynb").write_text('{"cells": []}')
    (executed / "orphan").mkdir()
    (executed / "orphan" / "x.ipynb").write_text("{}")  # no page folder for it: not copied
    (tmp_path / "_build" / "html" / "notebooks").mkdir(parents=True)
    copied = book.publish_notebooks(tmp_path / "_build")
    assert copied == [tmp_path / "_build" / "html" / "notebooks" / "rebound.ipynb"]
    assert copied[0].read_text() == '{"cells": []}'


def test_sync_execution_cache_drops_a_stale_cache(tmp_path, monkeypatch):
    cache = tmp_path / ".jupyter_cache"
    cache.mkdir()
    assert book.sync_execution_cache(tmp_path) is False  # first build: nothing to compare with
    assert book.sync_execution_cache(tmp_path) is False and cache.exists()  # same package
    monkeypatch.setattr(book, "package_fingerprint", lambda: "changed")
    assert book.sync_execution_cache(tmp_path) is True
    assert not cache.exists() and (tmp_path / ".elasticity-fingerprint").read_text() == "changed"


@pytest.mark.notebooks
@pytest.mark.slow
@pytest.mark.parametrize("phase", ["elasticity.cli compute", "ipykernel"])  # computing the units, then the pages
def test_a_killed_book_build_leaves_no_process(tmp_path, phase):
    import contextlib
    import signal
    import time

    import psutil

    env = dict(os.environ, ELASTICITY_SCALE="smoke", ELASTICITY_CACHE=str(tmp_path / "cache"))
    build = subprocess.Popen([sys.executable, "-m", "elasticity.cli", "book", "--path-output", str(tmp_path)],
                             env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tree, commands = [], []
    try:
        deadline = time.monotonic() + 900  # the units compute first: minutes on a loaded machine
        while time.monotonic() < deadline and build.poll() is None:
            tree = [psutil.Process(build.pid), *psutil.Process(build.pid).children(recursive=True)]
            commands = [command_line(process) for process in tree]
            if any(phase in c for c in commands):
                break
            time.sleep(0.1)
        assert any(phase in c for c in commands), f"no {phase} started"
        assert phase != "ipykernel" or any("jupyter-book" in c for c in commands)
        build.send_signal(signal.SIGKILL)
        build.wait()
        psutil.wait_procs(tree[1:], timeout=10)
        survivors = [command for process, command in zip(tree[1:], commands[1:], strict=True) if alive([process])]
        assert not survivors, f"alive 10 s after `elasticity book` was killed: {survivors}"
    finally:
        build.kill()
        for process in tree[1:]:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()


def test_an_archived_run_enters_the_package_fingerprint(tmp_path, monkeypatch):
    from elasticity import paths

    monkeypatch.setattr(paths, "project_root", lambda: tmp_path)
    before = book.package_fingerprint()
    archive = tmp_path / "results" / "smollm2-135m" / "resistance.json"
    archive.parent.mkdir(parents=True)
    archive.write_text("{}")
    with_archive = book.package_fingerprint()
    archive.write_text('{"format": 1}')
    assert len({before, with_archive, book.package_fingerprint()}) == 3  # a chapter reading it re-executes


def test_papermill_reads_every_parameter_of_every_chapter():
    """papermill's own reader of the parameters cell (behind `--help-notebook` and its warnings) gets every name: a
    comment holding "=" made it print "Unable to parse line" at each `elasticity run`."""
    from papermill.translators import PythonTranslator

    for path in book.chapters().values():
        found = PythonTranslator.inspect(book._parameters_cell(path))
        assert [p.name for p in found] == list(book.parameters(path)), path.stem
