"""Check the built book page by page: what a reader sees in the HTML, and, in headless Chromium, screenshots and
typeset math.

Usage: python scripts/check_html.py [_build/html] [--pages book/intro notebooks/rebound] [--out screenshots/]

Every page (default: all of them) is read for shown code lines longer than 88 characters, shown code cells that
call `glue`, images without alt text (or with a file name for it), and, on a chapter page, the link to its
executed notebook (`page_problems`). With Debian's `chromium` (apt-get install chromium), each page is also
screenshot, its math must have been typeset by MathJax, and, laid out 1280 pixels wide, nothing may stick out of
the text column unless it scrolls inside its own box (`layout_problems`: wide tables, code, figures, outputs);
without chromium those checks are skipped, and said so.
Prints one JSON line per page and exits 1 if a page has a problem, an image whose file is missing, or (with
--expect-figures) no image.
"""

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from elasticity.pages import WIDTH  # the longest code line a page shows without scrolling

CELL_INPUT = re.compile(r'<div class="cell_input[^"]*">(.*?)</pre>', re.S)
IMAGE = re.compile(r"\.(png|jpe?g|svg|gif)$")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--virtual-time-budget=15000"]


def chromium(*args: str, profile: Path) -> str:
    """Run headless Chromium with a fresh profile and return its stdout."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        sys.exit("check_html: Debian's chromium is not installed (apt-get install chromium)")
    completed = subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *args],
                               capture_output=True, text=True, timeout=120)
    return completed.stdout


def shown_code(raw: str) -> list[str]:
    """The code of each code cell shown on a page (its input, folded or not), as text."""
    return [html.unescape(re.sub(r"<[^>]+>", "", block.split("<pre>", 1)[-1])) for block in CELL_INPUT.findall(raw)]


def page_problems(path: Path) -> list[str]:
    """What a reader of one built page would trip on (see the module's docstring); [] when nothing."""
    raw = path.read_text()
    problems = []
    code = shown_code(raw)
    long = [line for cell in code for line in cell.splitlines() if len(line) > WIDTH]
    if long:
        problems.append(f"{len(long)} shown code lines over {WIDTH} characters, e.g. {long[0][:60]!r}")
    glued = [cell for cell in code if "glue(" in cell]
    if glued:
        problems.append(f"{len(glued)} shown code cells call glue")
    alts = re.findall(r'<img\b[^>]*?\balt="([^"]*)"', raw)
    bad = [alt for alt in alts if len(alt.strip()) < 8 or IMAGE.search(alt)]
    if bad or len(alts) < raw.count("<img"):
        problems.append(f"images without alt text: {bad or 'no alt attribute'}")
    if path.parent.name == "notebooks":  # a chapter: its executed notebook is linked beside it
        notebook = f"{path.stem}.ipynb"
        if f'href="{notebook}"' not in raw or not (path.parent / notebook).is_file():
            problems.append(f"no link to its executed notebook {notebook}")
    return problems


def all_pages(html_dir: Path) -> list[str]:
    """Every page of the book (not Sphinx's index and search pages, nor the redirect to the first page)."""
    return sorted(str(p.relative_to(html_dir).with_suffix("")) for p in html_dir.rglob("*.html")
                  if not p.relative_to(html_dir).parts[0].startswith("_") and p.stem not in ("genindex", "search")
                  and 'http-equiv="Refresh"' not in p.read_text()[:200])


# Run in the page after it loaded, its report written into the DOM for --dump-dom to return: what sticks out
# past the article's right edge without a scrolling box around it (cut, or pushing the page sideways), the
# code blocks that need sideways scrolling, and how many tables and outputs scroll inside their own box.
LAYOUT_SCRIPT = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const article = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
  const edge = article.getBoundingClientRect().right + 1;
  const scrolls = (box) => ["auto", "scroll"].includes(getComputedStyle(box).overflowX);
  const held = (el) => {
    for (let box = el; box && box !== article; box = box.parentElement) {
      if (scrolls(box) && box.getBoundingClientRect().right <= edge) return true;
    }
    return false;
  };
  const cut = [];
  for (const el of article.querySelectorAll("table, pre, img, figure, div.output, mjx-container")) {
    const right = el.getBoundingClientRect().right;
    if (right > edge && !held(el)) {
      cut.push(`${el.tagName.toLowerCase()} ${Math.round(right - edge)} px past the text`);
    }
  }
  const wide = (el) => el.scrollWidth > el.clientWidth + 1;
  const code = [...article.querySelectorAll("div.highlight pre")].filter(wide)
    .map((el) => el.textContent.trim().split("\\n")[0].slice(0, 40));
  const scrolling = [...article.querySelectorAll("div.cell_output table, div.cell_output div.output")].filter(wide);
  const report = document.createElement("pre");
  report.id = "elasticity-layout";
  report.textContent = JSON.stringify({cut: cut, code: code, scrolling: scrolling.length,
                                       sideways: document.documentElement.scrollWidth - window.innerWidth});
  document.body.appendChild(report);
}, 500));
</script>"""


def layout(path: Path, profile: Path) -> dict:
    """Lay the page out in Chromium, 1280 pixels wide, and return what `LAYOUT_SCRIPT` measured."""
    probe = path.with_name(f".layout-{path.name}")  # beside the page, so that its styles and scripts load
    probe.write_text(path.read_text().replace("</body>", LAYOUT_SCRIPT + "</body>"))
    try:
        dom = chromium("--dump-dom", "--window-size=1280,1600", probe.resolve().as_uri(), profile=profile)
    finally:
        probe.unlink()
    found = re.search(r'<pre id="elasticity-layout">(.*?)</pre>', dom, flags=re.S)
    return json.loads(html.unescape(found.group(1))) if found else {}


def layout_problems(report: dict) -> list[str]:
    """What a reader 1280 pixels wide would trip on: anything sticking out of the text column (unless it scrolls
    inside its own box), a code block that needs sideways scrolling, a page that scrolls sideways. [] when none;
    tables and outputs too wide for the column scrolling inside their cell are not a problem."""
    if not report:
        return ["the layout was not measured (the page's scripts did not finish)"]
    problems = []
    if report["cut"]:
        problems.append(f"{len(report['cut'])} sticking out of the text column: {report['cut'][:3]}")
    if report["code"]:
        problems.append(f"{len(report['code'])} code blocks scroll sideways: {report['code'][:3]}")
    if report["sideways"] > 0:
        problems.append(f"the page scrolls sideways by {report['sideways']} px")
    return problems


def check_page(html_dir: Path, page: str, out_dir: Path) -> dict:
    """Screenshot one page and inspect its DOM after scripts ran."""
    path = html_dir / f"{page}.html"
    if not path.is_file():
        return {"page": page, "ok": False, "problem": "missing page"}
    url = path.resolve().as_uri()
    profile = out_dir / ".profile"
    shot = out_dir / f"{page.replace('/', '_')}.png"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser:
        chromium(f"--screenshot={shot}", "--window-size=1280,1600", url, profile=profile)
    dom = chromium("--dump-dom", url, profile=profile) if browser else ""
    raw = path.read_text()
    math_in_source = len(re.findall(r'class="math', raw))
    typeset = len(re.findall(r"<mjx-container", dom))
    images = re.findall(r'<img[^>]+src="([^"]+)"', raw)
    missing = [src for src in images if not src.startswith("data:") and not (path.parent / src).is_file()]
    figures = len(re.findall(r'<figure|class="cell_output[^"]*".*?<img', raw, flags=re.S))
    problems = page_problems(path)
    if browser and math_in_source and not typeset:
        problems.append("math was not typeset")
    measured = layout(path, profile) if browser else {}
    problems += layout_problems(measured) if browser else []
    if missing:
        problems.append(f"missing images: {missing}")
    return {"page": page, "ok": not problems, "browser": bool(browser), "math_elements": math_in_source,
            "typeset": typeset,
            "images": len(images), "figures": figures, "scrolling_tables": measured.get("scrolling"),
            "screenshot": str(shot), "problems": problems,
            "screenshot_bytes": shot.stat().st_size if shot.is_file() else 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html_dir", nargs="?", default="_build/html")
    parser.add_argument("--pages", nargs="+", help="pages to check (default: every page of the book)")
    parser.add_argument("--out", default="_build/screenshots")
    parser.add_argument("--expect-figures", nargs="*", default=["notebooks/theory_elasticity", "notebooks/rebound"],
                        help="pages that must show at least one image")
    args = parser.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    ok = True
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        print("check_html: Debian's chromium is not installed (apt-get install chromium): no screenshots, and "
              "neither typeset math nor layout is checked", file=sys.stderr)
    for page in args.pages or all_pages(Path(args.html_dir)):
        report = check_page(Path(args.html_dir), page, out_dir)
        if page in args.expect_figures and report.get("images", 0) == 0:
            report["ok"] = False
            report.setdefault("problems", []).append("no figure")
        ok &= report["ok"]
        print(json.dumps(report))
    shutil.rmtree(out_dir / ".profile", ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
