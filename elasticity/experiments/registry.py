"""The experiment modules of the book, by name, with the chapter and the paper's claims each one tests."""

import importlib
import importlib.util
import math
import re
from dataclasses import dataclass
from types import ModuleType

import pandas as pd

from elasticity import archived, paper, paths, results, stats, verdicts
from elasticity.config import unknown


@dataclass(frozen=True)
class Planned:
    """An experiment of the book.

    Attributes:
        name: the experiment's NAME (its directory under the results cache).
        module: the dotted path of its module.
        chapter: the file stem (and label) of the chapter that shows it.
        claims: keys of `paper.CLAIMS` it is planned to test; used to list the claims that have no
            computed verdict yet. A module's own `CLAIMS` tuple, where it defines one, wins.
    """

    name: str
    module: str
    chapter: str
    claims: tuple[str, ...]


PLANNED: dict[str, Planned] = {
    p.name: p
    for p in (
        Planned("compression_protocol", "elasticity.experiments.compression_protocol", "compression_protocol",
                ("theorem_3_4",)),
        Planned("compression_with_models", "elasticity.experiments.compression_with_models",
                "compression_with_models", ("log_loss_is_code_length",)),
        Planned("resistance", "elasticity.experiments.resistance", "resistance", ("resistance", "resistance_kl")),
        Planned("rebound", "elasticity.experiments.rebound", "rebound",
                ("rebound_two_phase", "rebound_positive_size", "rebound_below_base", "kl_table",
                 "preference_ablation", "reversed_direction")),
        Planned("model_size", "elasticity.experiments.model_size", "model_size", ("model_size",)),
        Planned("pretraining_volume", "elasticity.experiments.pretraining_volume", "pretraining_volume",
                ("pretraining_volume", "pretraining_threshold")),
        Planned("measured", "elasticity.experiments.measured", "elasticity_measured", ("theorem_4_2",)),
    )
}
for _planned in PLANNED.values():
    for _claim in _planned.claims:
        assert _claim in paper.CLAIMS, (_planned.name, _claim)


def _available(path: str) -> ModuleType | None:
    # Only a module that does not exist (yet) is skipped: an error inside an existing module is raised.
    if importlib.util.find_spec(path) is None:
        return None
    return importlib.import_module(path)


def _load_all() -> dict[str, ModuleType]:
    found = {}
    for planned in PLANNED.values():
        module = _available(planned.module)
        if module is not None:
            found[planned.name] = module
    return found


# name -> module, for the experiment modules present in this checkout.
EXPERIMENTS: dict[str, ModuleType] = _load_all()


def experiment(name: str) -> ModuleType:
    """The module of a registered experiment, or a `UserError` listing them."""
    if name not in EXPERIMENTS:
        raise unknown("experiment", name, EXPERIMENTS)
    return EXPERIMENTS[name]


def claims_of(name: str) -> tuple[str, ...]:
    """The claims an experiment tests: its module's `CLAIMS` if it defines them, else the planned ones."""
    module = EXPERIMENTS.get(name)
    return tuple(getattr(module, "CLAIMS", PLANNED[name].claims))


STATUS_COMPUTED = "computed"
STATUS_NOT_COMPUTED = "not computed yet"
STATUS_NO_MODULE = "not computed yet (experiment not in this checkout)"
STATUS_UNTESTED = "not tested by any chapter"


def chapter_of(name: str) -> str:
    """The chapter (file stem) that shows an experiment: its module's `CHAPTER`, else the planned one."""
    return getattr(EXPERIMENTS.get(name), "CHAPTER", PLANNED[name].chapter)


COLUMNS = ["experiment", *verdicts.COLUMNS, "status"]


def collect_verdicts(*, cache=None) -> pd.DataFrame:
    """Every verdict of the book, read from cached results only: nothing is computed here.

    For each planned experiment, the cached result of its current scale's preset with the current code
    (`results.load(module.NAME, module.config(), module.run)`); its "verdicts" rows if there is one. An
    experiment without a cached result gives one row per claim it tests with `outcome` None and `status`
    "not computed yet"; claims of the paper that no experiment tests are listed last, also without outcome.

    Returns:
        One row per verdict: experiment, the record's fields (`verdicts.COLUMNS`: claim, chapter, family, task,
        measure, ours, paper, source, effect, low, high, seeds, detectable, outcome, reason), status, and the
        claim's statement after the claim.
    """
    rows = []
    for name in PLANNED:
        module = EXPERIMENTS.get(name)
        result = None
        if module is not None:
            result = results.load(module.NAME, module.config(), module.run, cache=cache)
        if result is not None:
            checked = verdicts.to_frame(verdicts.from_frame(result["verdicts"]))  # records, validated
            rows += [{"experiment": name, **row, "status": STATUS_COMPUTED} for row in checked.to_dict("records")]
            continue
        status = STATUS_NOT_COMPUTED if module is not None else STATUS_NO_MODULE
        for claim in claims_of(name):
            rows.append({"experiment": name, "chapter": chapter_of(name), "claim": claim,
                         "source": paper.CLAIMS[claim].source, "status": status})
    covered = {row["claim"] for row in rows}
    for key, claim in paper.CLAIMS.items():
        if key not in covered:
            rows.append({"claim": key, "source": claim.source, "status": STATUS_UNTESTED})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame.insert(2, "statement", frame.claim.map(lambda c: paper.CLAIMS[c].statement))
    return frame


ARCHIVED_COLUMNS = ["experiment", *verdicts.COLUMNS, "stale", "commit"]


def collect_archived() -> pd.DataFrame:
    """The verdicts of every archived run (`results/<family>/<chapter>.json`), judged now by today's code.

    Returns:
        One row per verdict: experiment, the record's fields (`verdicts.COLUMNS`), `stale` (the measuring code
        changed since the archive was written) and the archive's `commit`. Archives that are refused are left out
        here; their chapter names them.
    """
    rows = []
    for name, module in EXPERIMENTS.items():
        if not hasattr(module, "judged"):
            continue
        for found in archived.rejudge(module)[0]:
            checked = verdicts.to_frame(verdicts.from_frame(found.result["verdicts"]))
            rows += [{"experiment": name, **row, "stale": found.stale,
                      "commit": found.archived.provenance["commit"][:10]} for row in checked.to_dict("records")]
    return pd.DataFrame(rows, columns=ARCHIVED_COLUMNS)


def family_columns(table: pd.DataFrame, archived_table: pd.DataFrame) -> dict[str, list[str]]:
    """One column per archived family, aligned with the rows of `table` (`collect_verdicts`) by claim and task:
    the outcome and effect of that family's verdict, marked stale where its measuring code changed; "" where the
    family has no verdict for the row."""
    def text(r) -> str:
        effect = stats.effect_text(r["effect"], r["low"], r["high"], int(r["seeds"]), r["detectable"])
        if not math.isfinite(r["effect"]) and r["reason"]:
            effect = r["reason"]  # no effect to show: why (censored counts, a failed precondition)
        if r["stale"]:
            return f"stale (archived at {r['commit']}; the measuring code has changed since): {r['outcome']}: {effect}"
        return f"{r['outcome']}: {effect}"

    columns = {}
    for family, rows in archived_table.groupby("family", sort=True):
        records = rows.to_dict("records")
        cells = []
        for claim, task in zip(table["claim"], table["task"], strict=True):
            if isinstance(task, str):
                cells.append("; ".join(text(r) for r in records if (r["claim"], r["task"]) == (claim, task)))
            else:  # a row of a claim not computed live: every part of the family's verdict on it
                cells.append("; ".join(f"{r['task']}: {text(r)}" for r in records if r["claim"] == claim))
        columns[family] = cells
    return columns


def effect_cell(row) -> str:
    """A verdict row's effect for a table cell: mean, 95% interval, seeds, detectable; "" when not computed."""
    if row["status"] != STATUS_COMPUTED:
        return ""
    return stats.effect_text(row["effect"], row["low"], row["high"], int(row["seeds"]), row["detectable"])


def chapters_in_toc() -> set[str]:
    """The chapter stems under notebooks/ that the book's `_toc.yml` lists (empty outside a checkout)."""
    root = paths.project_root()
    if root is None:
        return set()
    return set(re.findall(r"notebooks/([A-Za-z0-9_\-]+)", (root / "_toc.yml").read_text()))


def _cell(text) -> str:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    return str(text).replace("|", "\\|").replace("\n", " ")


def verdicts_markdown(frame: pd.DataFrame, linkable: set[str], families: dict[str, list[str]] | None = None) -> str:
    """The table of `collect_verdicts` as MyST markdown: each chapter linked with {doc} when it is in the book.

    A row without a computed outcome shows its status ("not computed yet", ...) in place of an outcome. Each
    archived family of `families` (`family_columns`) adds a column.
    """
    families = families or {}
    lines = ["| claim of the paper | paper's figure | chapter | part | effect (paper's direction) | "
             "effect, 95% interval, seeds, detectable | outcome |" + "".join(f" {f} (archived) |" for f in families),
             "|---|---|---|---|---|---|---|" + "---|" * len(families)]
    for i, row in enumerate(frame.to_dict("records")):
        if _cell(row["chapter"]) == "":
            chapter = "none"
        elif row["chapter"] in linkable:
            chapter = f"{{doc}}`/notebooks/{row['chapter']}`"
        else:
            chapter = f"`{row['chapter']}` (not in the book yet)"
        outcome = f"**{row['outcome']}**" if row["status"] == STATUS_COMPUTED else f"*{row['status']}*"
        lines.append(f"| {_cell(row['statement'])} | {_cell(row['source'])} | {chapter} | {_cell(row['task'])} | "
                     f"{_cell(row['measure'])} | {effect_cell(row)} | {outcome} |"
                     + "".join(f" {_cell(cells[i])} |" for cells in families.values()))
    return "\n".join(lines) + "\n"
