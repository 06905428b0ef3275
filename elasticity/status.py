"""What the next build computes: each chapter's training units present, stale (and why) or missing in the cache.

A unit is present when its entry (config key and code key) is cached; stale when an entry with the same config
but other code is (the provenance of that entry names the modules whose source changed since); missing when
no entry with its config exists. The time to recompute is read from the wall times recorded in provenance:
a stale unit's own, a missing unit the median of its kind's. Reading the cache computes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

import pandas as pd

import elasticity.config
from elasticity import book, paths, results

PRESENT, STALE, MISSING = "present", "stale", "missing"
# The fields that tell the units of a chapter apart, in the order they are shown.
_SHOWN = ("task", "dataset", "family", "size", "budget_tokens", "reverse", "positive_size", "alignment_size",
          "protocol", "pair", "direction", "seed")


def _read_provenance(entry: Path) -> dict:
    try:
        return json.loads((entry / "provenance.json").read_text())
    except (OSError, ValueError):
        return {}


def changed_modules(before: dict[str, str] | None, now: dict[str, str]) -> list[str]:
    """The modules whose digest differs between two `results.module_digests`, added and removed ones included."""
    if not before:
        return []
    return sorted(name for name in before.keys() | now.keys() if before.get(name) != now.get(name))


def unit_state(unit: results.Unit, cache: Path | None = None) -> dict:
    """`state` (present | stale | missing), `reason`, and `recorded_s`: the wall time recorded for this unit's
    stale entry (None when there is none)."""
    entry = unit.entry(cache)
    if results.is_complete(entry):
        return {"state": PRESENT, "reason": "", "recorded_s": None}
    same_config = [d for d in entry.parent.glob(f"{results.config_key(unit.config)}-*") if results.is_complete(d)]
    if not same_config:
        return {"state": MISSING, "reason": "not computed with this config", "recorded_s": None}
    record = _read_provenance(max(same_config, key=lambda d: d.stat().st_mtime))
    changed = changed_modules(record.get("code"), results.module_digests(unit.compute))
    reason = f"code changed: {', '.join(changed)}" if changed else "code changed"
    return {"state": STALE, "reason": reason, "recorded_s": record.get("wall_time_s")}


def median_seconds(name: str, cache: Path | None = None) -> float | None:
    """The median wall time recorded for the cached entries of one kind (any config and code), None if none."""
    times = [_read_provenance(d).get("wall_time_s") for d in ((cache or paths.cache_dir()) / "results" / name).glob("*")
             if results.is_complete(d)]
    times = [t for t in times if isinstance(t, int | float)]
    return statistics.median(times) if times else None


def describe(unit_config) -> str:
    """A unit in a few words: the fields of `_SHOWN` it has, nested configs flattened."""
    flat: dict = {}

    def walk(value) -> None:
        for key, item in value.items():
            if isinstance(item, dict):
                walk(item)
            elif key in _SHOWN and item is not None:
                flat[key] = item

    walk(dataclasses.asdict(unit_config) if dataclasses.is_dataclass(unit_config) else {})
    return " ".join(f"{key}={flat[key]}" for key in _SHOWN if key in flat)


def chapter_units(chapter: str) -> list[results.Unit]:
    """The training units the chapter reads at the current scale with its default parameters: the units a run of
    it computes where they are missing (`book.chapter_units`, which `elasticity run` watches too)."""
    return book.chapter_units(book.chapter_path(chapter), {})  # an unknown chapter is a UserError listing them


def units(chapter: str | None = None) -> list[results.Unit]:
    """The training units of one chapter (`chapter_units`), or of every chapter of the book."""
    return [u for c in ([chapter] if chapter else list(book.chapters())) for u in chapter_units(c)]


def table(chapters: list[str] | None = None, cache: Path | None = None) -> pd.DataFrame:
    """One row per training unit of each chapter (default: every chapter of the book): chapter, kind, unit,
    state, reason, and `seconds`, the estimated time to recompute it (0 when present, None when unknown)."""
    rows, medians = [], {}
    for chapter in chapters or list(book.chapters()):
        for unit in chapter_units(chapter):
            state = unit_state(unit, cache)
            seconds = 0.0 if state["state"] == PRESENT else state["recorded_s"]
            if seconds is None:
                if unit.name not in medians:
                    medians[unit.name] = median_seconds(unit.name, cache)
                seconds = medians[unit.name]
            rows.append({"chapter": chapter, "kind": unit.name, "unit": describe(unit.config),
                         "state": state["state"], "reason": state["reason"], "seconds": seconds})
    return pd.DataFrame(rows, columns=["chapter", "kind", "unit", "state", "reason", "seconds"])


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {round(seconds % 60):02d} s"
    return f"{seconds / 3600:.1f} h"


def summary(frame: pd.DataFrame, chapters: list[str]) -> list[str]:
    """One line per chapter: its units present, stale (with why) and missing, and the time to recompute."""
    lines = []
    for chapter in chapters:
        rows = frame[frame["chapter"] == chapter]
        if rows.empty:
            lines.append(f"{chapter}: no training units")
            continue
        counts = rows["state"].value_counts()
        stale = rows[rows["state"] == STALE]
        why = "; ".join(sorted(set(stale["reason"])))
        text = (f"{chapter}: {len(rows)} training units: {counts.get(PRESENT, 0)} present, "
                f"{counts.get(STALE, 0)} stale{f' ({why})' if why else ''}, {counts.get(MISSING, 0)} missing")
        todo = rows[rows["state"] != PRESENT]
        if len(todo):
            known = todo["seconds"].dropna()
            if known.empty:
                text += "; no recorded time to estimate their cost from"
            else:
                text += f"; about {_duration(known.sum())} to recompute in one process"
                if len(known) < len(todo):
                    text += f" (no recorded time for {len(todo) - len(known)} of them)"
        lines.append(text)
    return lines


def report(chapter: str | None = None, cache: Path | None = None) -> str:
    """The text `elasticity status [CHAPTER]` prints: a line per chapter, and for one chapter each unit that is
    not present, with why."""
    chapters = [chapter] if chapter else list(book.chapters())
    frame = table(chapters, cache)
    lines = [f"training units at scale {elasticity.config.scale()} in {cache or paths.cache_dir()}:",
             *summary(frame, chapters)]
    if chapter:
        for row in frame[frame["state"] != PRESENT].itertuples():
            seconds = "" if row.seconds is None or pd.isna(row.seconds) else f", about {_duration(row.seconds)}"
            lines.append(f"  {row.kind} {row.unit}: {row.state} ({row.reason}{seconds})")
    return "\n".join(lines)
