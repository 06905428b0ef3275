"""Tests of scripts/check_html.py: what a reader would trip on in a built page, read from its HTML."""

import shutil

import pytest
from conftest import load_script

check_html = load_script("scripts/check_html.py", "check_html")

CELL = ('<div class="cell docutils container"><div class="cell_input docutils container">'
        '<div class="highlight-ipython3 notranslate"><div class="highlight"><pre><span></span>{code}</pre></div></div>'
        '</div></div>')


def page(tmp_path, body, name="rebound", folder="notebooks"):
    path = tmp_path / folder / f"{name}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<html><body>{body}</body></html>")
    return path


def test_a_clean_chapter_page_has_no_problem(tmp_path):
    code = '<span class="n">cfg</span> <span class="o">=</span> <span class="n">rebound</span>.config()'
    body = (CELL.format(code=code) + '<img alt="Share judged positive against negative examples" src="a.png">'
            '<a href="rebound.ipynb" download>rebound.ipynb</a>')
    path = page(tmp_path, body)
    (path.parent / "rebound.ipynb").write_text("{}")
    assert check_html.shown_code(path.read_text()) == ["cfg = rebound.config()"]
    assert check_html.page_problems(path) == []


def test_each_problem_is_named(tmp_path):
    long = "x = " + "1 + " * 30 + "1"
    body = (CELL.format(code=long) + CELL.format(code='glue(&quot;a&quot;, 1, display=False)')
            + '<img alt="../_images/0a1b.png" src="../_images/0a1b.png"><img src="b.png">')
    problems = check_html.page_problems(page(tmp_path, body))
    assert problems[0].startswith("1 shown code lines over 88 characters")
    assert problems[1] == "1 shown code cells call glue"
    assert problems[2] == "images without alt text: ['../_images/0a1b.png']"
    assert problems[3] == "no link to its executed notebook rebound.ipynb"
    assert check_html.page_problems(page(tmp_path, "<p>prose</p>", "intro", "book")) == []  # not a chapter


def test_every_page_is_listed_but_sphinx_own(tmp_path):
    for name in ("index.html", "genindex.html", "search.html", "book/intro.html", "notebooks/rebound.html",
                 "_static/x.html"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert check_html.all_pages(tmp_path) == ["book/intro", "index", "notebooks/rebound"]
    (tmp_path / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=book/intro.html" />\n')
    assert check_html.all_pages(tmp_path) == ["book/intro", "notebooks/rebound"]  # a redirect is no page


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")), reason="no chromium")
def test_layout_names_what_sticks_out_unless_it_scrolls_in_its_own_box(tmp_path):
    wide = '<table style="width:1000px"><tr><td>a</td></tr></table>'
    code = '<div class="highlight"><pre style="white-space:pre">{}</pre></div>'

    def problems(name, body):
        path = page(tmp_path, f'<article class="bd-article" style="width:600px">{body}</article>', name, "book")
        found = check_html.layout_problems(check_html.layout(path, tmp_path / ".profile"))
        assert not list(path.parent.glob(".layout-*")), "the probe copy is removed"
        return found

    assert problems("fits", "<p>prose</p>" + wide.replace("1000px", "500px") + code.format("x = 1")) == []
    assert problems("held", f'<div style="overflow-x:auto">{wide}</div>') == []
    assert problems("cut", wide) == ["1 sticking out of the text column: ['table 399 px past the text']"]
    assert problems("sideways", wide.replace("1000px", "2000px"))[1] == "the page scrolls sideways by 728 px"
    long = "x = " + "1 + " * 60 + "1"
    assert problems("code", f'<div style="overflow-x:auto">{code.format(long)}</div>') == [
        "1 code blocks scroll sideways: ['x = 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + ']"]
    assert check_html.layout_problems({}) == ["the layout was not measured (the page's scripts did not finish)"]
