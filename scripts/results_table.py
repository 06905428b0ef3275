"""Print the book's verdicts, read from cached results, as a Markdown table; optionally write it into README.md.

Usage: python scripts/results_table.py [--write-readme]

Nothing is computed here: a verdict whose experiment has no cached result (for the current code and scale)
is printed as "not computed yet". Run `make book` first.
"""

import argparse
import math
import re
import subprocess
import sys

from elasticity import config, paths, stats
from elasticity.experiments import registry

START, END = "<!-- results-table:start -->", "<!-- results-table:end -->"


def markdown_table() -> str:
    """The verdicts as Markdown, with the commit and scale they were computed at."""
    frame = registry.collect_verdicts()
    families = registry.family_columns(frame, registry.collect_archived())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=paths.project_root()).stdout.strip()
    lines = [f"Computed at commit `{commit}`, scale `{config.scale()}`, family `tiny` (CPU). Each row is one effect "
             "per seed in the paper's direction (positive: as the paper says), with its 95% interval and the "
             "smallest effect the design detects with 80% power."
             + (" Each archived family's column gives its outcome and effect, judged now from its archive "
                "(`results/<family>/`)." if families else ""), "",
             "| claim (paper source) | part | effect (paper's direction) | effect | 95% interval | seeds | "
             "detectable | paper | outcome |" + "".join(f" {f} (archived) |" for f in families),
             "|---|---|---|---|---|---|---|---|---|" + "---|" * len(families)]

    def cell(text) -> str:
        missing = text is None or text == "" or (isinstance(text, float) and math.isnan(text))
        return "-" if missing else str(text).replace("|", "\\|")  # a bare | would end the cell

    def number(x) -> str:
        return "-" if x is None or not math.isfinite(x) else f"{x:.3g}"

    for i, row in enumerate(frame.to_dict("records")):
        computed = row["status"] == registry.STATUS_COMPUTED
        outcome = row["outcome"] if computed else row["status"]
        if computed and outcome == stats.NOT_TESTABLE:
            outcome += f": {row['reason'].removeprefix('precondition failed: ')}"
        interval, seeds = "-", "-"
        if computed:
            exact = stats.is_exact(int(row["seeds"]), row["low"])
            seeds = "exact" if exact else str(int(row["seeds"]))
            if math.isfinite(row["low"]) and not exact:
                interval = f"{row['low']:.3g} to {row['high']:.3g}"
        lines.append(f"| {row['claim']} ({row['source']}) | {cell(row['task'])} | {cell(row['measure'])} | "
                     f"{number(row['effect']) if computed else '-'} | {interval} | {seeds} | "
                     f"{number(row['detectable']) if computed else '-'} | {cell(row['paper'])} | {outcome} |"
                     + "".join(f" {cell(cells[i])} |" for cells in families.values()))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write-readme", action="store_true", help="replace the table between the README markers")
    args = parser.parse_args()
    table = markdown_table()
    print(table)
    if args.write_readme:
        readme = paths.project_root() / "README.md"
        text = readme.read_text()
        pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), flags=re.S)
        readme.write_text(pattern.sub(lambda _: f"{START}\n{table}\n{END}", text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
