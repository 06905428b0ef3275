"""Open the built book in headless Chromium: screenshot pages, check that math was typeset and figures exist.

Usage: python scripts/check_html.py [_build/html] [--pages book/intro notebooks/rebound] [--out screenshots/]

Needs Debian's `chromium` (apt-get install chromium). Prints one JSON line per page and exits 1 if a page
has math that MathJax did not typeset, an image whose file is missing, or (with --expect-figures) no image.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

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


def check_page(html_dir: Path, page: str, out_dir: Path) -> dict:
    """Screenshot one page and inspect its DOM after scripts ran."""
    path = html_dir / f"{page}.html"
    if not path.is_file():
        return {"page": page, "ok": False, "problem": "missing page"}
    url = path.resolve().as_uri()
    profile = out_dir / ".profile"
    shot = out_dir / f"{page.replace('/', '_')}.png"
    chromium(f"--screenshot={shot}", "--window-size=1280,1600", url, profile=profile)
    dom = chromium("--dump-dom", url, profile=profile)
    raw = path.read_text()
    math_in_source = len(re.findall(r'class="math', raw))
    typeset = len(re.findall(r"<mjx-container", dom))
    images = re.findall(r'<img[^>]+src="([^"]+)"', raw)
    missing = [src for src in images if not src.startswith("data:") and not (path.parent / src).is_file()]
    figures = len(re.findall(r'<figure|class="cell_output[^"]*".*?<img', raw, flags=re.S))
    problems = []
    if math_in_source and not typeset:
        problems.append("math was not typeset")
    if missing:
        problems.append(f"missing images: {missing}")
    return {"page": page, "ok": not problems, "math_elements": math_in_source, "typeset": typeset,
            "images": len(images), "figures": figures, "screenshot": str(shot), "problems": problems,
            "screenshot_bytes": shot.stat().st_size if shot.is_file() else 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html_dir", nargs="?", default="_build/html")
    parser.add_argument("--pages", nargs="+",
                        default=["book/intro", "notebooks/theory_elasticity", "notebooks/rebound"])
    parser.add_argument("--out", default="_build/screenshots")
    parser.add_argument("--expect-figures", nargs="*", default=["notebooks/theory_elasticity", "notebooks/rebound"],
                        help="pages that must show at least one image")
    args = parser.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    ok = True
    for page in args.pages:
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
