"""What a chapter's page shows a reader besides its results: how to run the chapter again, per model family."""

from __future__ import annotations

import html

from elasticity import book, families, parameters
from elasticity.config import UserError

WIDTH = 88  # the longest line a page shows without scrolling


def _archivable(chapter: str, family: str) -> bool:
    try:
        return bool(book.archivable_configs(book.chapter_path(chapter), {"family": family}))
    except UserError:
        return False


def run_commands(chapter: str) -> list[tuple[str, list[str]]]:
    """(what the commands need, the commands) that run `chapter` again: its default family first, trained here;
    SmolLM2-135M from its wheel on the CPU (archived, where the chapter can be); the hub families (on a GPU, where
    the chapter takes a device); then `--help`. Only the families the chapter accepts (`parameters.declared`)."""
    run = f"elasticity run {chapter}"
    defaults = book.parameters(book.chapter_path(chapter))
    if "family" not in defaults:
        return [("offline, on the CPU", [run]), ("every parameter, its default and what it accepts", [f"{run} --help"])]
    accepted = tuple(parameters.declared(chapter, "family").kind.accepted(defaults))
    kinds = {name: families.family(name).kind for name in accepted}
    gpu = "device" in defaults
    groups = [(f"the {defaults['family']} family, pre-trained here on the CPU: this page's run", [run])]
    offline = [n for n in accepted if kinds[n] == "gguf"]
    for name in offline:
        archived = _archivable(chapter, name)
        note = "SmolLM2-135M from its PyPI wheel, offline on the CPU" + ("; --archive keeps its tables"
                                                                        if archived else "")
        groups.append((note, [f"{run} -p family {name}" + (" --archive" if archived else "")]))
    hub = [f"{run} -p family {n}" + (" -p device cuda" if gpu else "") for n in accepted if kinds[n] == "hub"]
    if hub:
        groups.append(("the paper's models, from the Hugging Face Hub" + (" on a GPU" if gpu else ""), hub))
    groups.append(("every parameter, its default and what it accepts", [f"{run} --help"]))
    return groups


def run_box(chapter: str):
    """The "Run this chapter" box of a page (`run_commands`), as HTML in the theme's tip admonition, with a link to
    the executed notebook that the build puts beside the page (`book.publish_notebooks`)."""
    from IPython.display import HTML

    lines = [line for note, commands in run_commands(chapter) for line in (f"# {note}", *commands)]
    code = html.escape("\n".join(lines), quote=False)
    download = (f'<p>This chapter as the build executed it: <a href="{chapter}.ipynb" download>{chapter}.ipynb'
                "</a>.</p>")
    return HTML('<div class="admonition tip"><p class="admonition-title">Run this chapter</p>'
                f'<div class="highlight"><pre>{code}</pre></div>{download}</div>')
