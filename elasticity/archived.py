"""Archived results of heavier runs: `results/<family>/<experiment>.json`, written by the package, read by the book.

A real model on 2 CPU cores (SmolLM2-135M) or a run on a GPU cannot train while the book builds. Its measured
tables are archived instead, as small text with full provenance, written only by `write` (behind `elasticity run
CHAPTER -p family F --archive`) from units the results cache already holds. The book judges an archive with
today's judging code (`rejudge`: the experiment's `judged(tables, config)`), and calls it stale when the
measuring code has changed since it was archived (its code key no longer matches the units' code).

An archivable experiment module has `NAME` (the archive's file stem: the chapter's own experiment is named as the
chapter), `CHAPTER`, `Config`, `TABLES` (the names of its measured tables), `cached_units(cfg)`, `measure(cfg)`
(those tables, read from the cache once computed) and `judged(tables, cfg)`; optionally `wanted(cfg)`, whether a
chapter's run of that config archives it, and `upgrade_config(fields)`, an older archive's config fields in today's
names.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from elasticity import config as elasticity_config
from elasticity import paths, results
from elasticity.config import UserError

FORMAT = 1
MAX_BYTES = 1_000_000  # an archive is small text: tables, not checkpoints
ENV = "ELASTICITY_ARCHIVES"  # another directory for the archives than the checkout's results/ (tests)
FIELDS = ("format", "chapter", "experiment", "family", "scale", "config", "tables", "provenance")
PROVENANCE = ("commit", "dirty", "code_key", "code", "config", "scale", "device", "num_parameters", "numerics",
              "versions", "machine", "units", "wall_time_s", "created_utc", "command")


class ArchiveError(UserError):
    """An archive that cannot be used: its one-line message names the file and what is wrong."""


def archive_dir() -> Path:
    """Where archives live: `ELASTICITY_ARCHIVES`, else `results/` in the checkout."""
    if env := os.environ.get(ENV):
        return Path(env)
    root = paths.project_root()
    if root is None:
        raise UserError(f"archives live under results/ in a checkout of the repository; none was found (set {ENV})")
    return root / "results"


def path_of(family: str, experiment: str) -> Path:
    """The archive of one experiment's run for one family."""
    return archive_dir() / family / f"{experiment}.json"


def code_key(units: list[results.Unit]) -> str:
    """One hash of the code that computes the units (each unit's code fingerprint, by entry name)."""
    keys = sorted({f"{name}:{results.code_fingerprint(compute)}" for name, compute in {(u.name, u.compute)
                                                                                       for u in units}})
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]


def _git(*args: str) -> str:
    root = paths.project_root()
    if root is None:
        return ""
    done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=root)
    return done.stdout.strip() if done.returncode == 0 else ""


def _dirty() -> bool:
    """Whether tracked files differ from the commit, archives aside: a chapter that writes two archives (the
    experiment and its pilot) has changed the first when it writes the second."""
    return bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"))


@dataclass(frozen=True)
class Archived:
    """One archive, read and checked: its config rebuilt, its tables as DataFrames."""

    path: Path
    chapter: str
    experiment: str
    family: str
    scale: str
    config: Any
    tables: dict[str, pd.DataFrame]
    provenance: dict

    def is_stale(self, module: ModuleType) -> bool:
        """Whether the measuring code changed since the archive was written (its code key differs)."""
        return self.provenance["code_key"] != code_key(module.cached_units(self.config))

    def provenance_line(self, stale: bool) -> str:
        """One line: what ran where, at which commit, in how long, and whether the code still matches (`stale`,
        from `is_stale`)."""
        p = self.provenance
        commit = p["commit"][:10] or "an unknown commit"
        numerics = p["numerics"] or {}
        where = f"{p['device']} ({numerics.get('cpu') or p['machine'].get('processor')}"
        if numerics.get("cpu_capability"):
            where += f", {numerics['cpu_capability']} kernels, {numerics.get('torch_threads')} threads"
        dirty = " with uncommitted changes" if p["dirty"] else ""
        line = (f"Archived {p['created_utc'][:10]} at commit `{commit}`{dirty}, scale `{self.scale}`, on {where}), "
                f"{len(p['units'])} units in {p['wall_time_s'] / 60:.1f} min of compute, torch "
                f"{p['versions'].get('torch')}; command `{p['command']}`.")
        if stale:
            line += f" Archived at commit `{commit}`; the measuring code has changed since (stale)."
        return line


def _unit_provenance(units: list[results.Unit]) -> dict[str, dict]:
    """Each unit's cached provenance record, by `<name>/<entry>`."""
    return {f"{u.name}/{results.entry_dir(u.name, u.config, u.compute).name}":
            results.load_provenance(u.name, u.config, u.compute) for u in units}


def compute_time(records) -> float:
    """Seconds during which at least one unit computed: the union of the units' intervals (each ends at its
    `created_utc`, `wall_time_s` long). A unit computed inside another (samples inside the first fine-tune that
    needs them) counts once, and the time between an interrupted run and its resumption not at all."""
    intervals = sorted((end - r["wall_time_s"], end) for r in records
                       for end in [datetime.datetime.fromisoformat(r["created_utc"]).timestamp()])
    total, reach = 0.0, -math.inf
    for start, end in intervals:
        total += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    return total


def _num_parameters(cfg: Any) -> int | None:
    """The parameter count of the config's model (family and size), or None where the family does not say."""
    from elasticity import models

    size = getattr(cfg, "size", None) or models.default_size(cfg.family)
    rows = [r for r in models.info(cfg.family) if r.get("size") in (size, "default")]
    return int(rows[0]["num_parameters"]) if rows and rows[0].get("num_parameters") else None


def write(module: ModuleType, cfg: Any, *, command: str) -> Path:
    """Archive the measured tables of `module` at `cfg`, every unit of which must be cached already.

    Nothing is computed: a unit that is missing is refused (run the chapter first). Written atomically.
    """
    units = module.cached_units(cfg)
    missing = [u for u in units if not results.is_cached(u.name, u.config, u.compute)]
    if missing:
        raise UserError(f"{len(missing)} of {len(units)} units of {module.NAME} for family {cfg.family!r} are not "
                        f"cached with this code (first: {missing[0].name}); run the chapter to the end, then archive")
    tables = module.measure(cfg)
    unit_provenance = _unit_provenance(units)
    unit_records = {key: {"wall_time_s": r["wall_time_s"], "created_utc": r["created_utc"],
                          "numerics": r.get("numerics")} for key, r in unit_provenance.items()}
    first = next(iter(unit_provenance.values()))
    scale = elasticity_config.scale()
    provenance = {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": _dirty(),
        "code_key": code_key(units),
        "code": dict(sorted({k: v for compute in {u.compute for u in units}
                             for k, v in results.module_digests(compute).items()}.items())),
        "config": dataclasses.asdict(cfg),
        "scale": scale,
        "device": cfg.device,
        "num_parameters": _num_parameters(cfg),
        "numerics": first.get("numerics"),
        "versions": first["versions"],
        "machine": first["machine"],
        "units": unit_records,
        "wall_time_s": round(compute_time(unit_records.values()), 1),
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command,
    }
    record = {"format": FORMAT, "chapter": module.CHAPTER, "experiment": module.NAME, "family": cfg.family,
              "scale": scale, "config": dataclasses.asdict(cfg), "tables": results._encode(tables),
              "provenance": provenance}
    text = json.dumps(record, indent=1, default=str)
    if len(text) > MAX_BYTES:
        raise UserError(f"the archive of {module.NAME} for {cfg.family} would be {len(text):,} bytes; at most "
                        f"{MAX_BYTES:,} are kept (archive tables, not raw samples)")
    target = path_of(cfg.family, module.NAME)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    os.chmod(tmp, 0o644)  # a file of the repository, readable like the others (mkstemp makes it private)
    os.replace(tmp, target)
    return target


def read(path: Path, module: ModuleType) -> Archived:
    """An archive of `module`'s chapter, checked; an `ArchiveError` naming the file and the fault otherwise."""
    path = Path(path)

    def refuse(what: str) -> ArchiveError:
        return ArchiveError(f"archive {path}: {what}; write it again with `elasticity run {module.CHAPTER} "
                            f"-p family F --archive`")

    try:
        record = json.loads(path.read_text())
    except OSError as error:
        raise refuse(f"cannot be read ({error.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise refuse(f"is not valid JSON (truncated or malformed: {error})") from None
    if not isinstance(record, dict) or (missing := [f for f in FIELDS if f not in record]):
        raise refuse(f"lacks {', '.join(missing) if isinstance(record, dict) else 'every field'}")
    if record["format"] != FORMAT:
        raise refuse(f"has format {record['format']!r}; this package reads format {FORMAT}")
    if record["chapter"] != module.CHAPTER or record["experiment"] != module.NAME:
        raise refuse(f"is an archive of {record['experiment']!r} in chapter {record['chapter']!r}, not of "
                     f"{module.NAME!r} in chapter {module.CHAPTER!r}")
    provenance = record["provenance"]
    if not isinstance(provenance, dict) or (missing := [f for f in PROVENANCE if f not in provenance]):
        raise refuse(f"its provenance lacks {', '.join(missing) if isinstance(provenance, dict) else 'every field'}")
    try:
        cfg = module.Config(**getattr(module, "upgrade_config", dict)(record["config"]))
        tables = results._decode(record["tables"])
    except (TypeError, ValueError, KeyError) as error:
        raise refuse(f"its config or tables cannot be read ({error})") from None
    if not isinstance(tables, dict) or not all(isinstance(tables.get(name), pd.DataFrame) for name in module.TABLES):
        raise refuse(f"lacks a table of {', '.join(module.TABLES)}")
    return Archived(path, record["chapter"], record["experiment"], record["family"], record["scale"], cfg, tables,
                    provenance)


@dataclass(frozen=True)
class Rejudged:
    """An archive with today's judging of its tables (`result`, as the experiment's `run` returns it)."""

    archived: Archived
    result: dict
    stale: bool
    provenance_line: str


def rejudge(module: ModuleType) -> tuple[list[Rejudged], list[str]]:
    """Every archive of `module`, judged now, by family; and one line for each archive refused.

    A refused archive never stops the page: its line says what is wrong, the others still render.
    """
    root = archive_dir()
    found, refused = [], []
    for path in sorted(root.glob(f"*/{module.NAME}.json")) if root.is_dir() else []:
        try:
            archived = read(path, module)
        except UserError as error:
            refused.append(str(error))
            continue
        try:
            result = module.judged(archived.tables, archived.config)
        except (KeyError, ValueError) as error:  # a table without the columns today's judging reads
            refused.append(f"archive {path}: its tables cannot be judged by today's code ({error!r})")
            continue
        stale = archived.is_stale(module)
        found.append(Rejudged(archived, result, stale, archived.provenance_line(stale)))
    return found, refused


def notices(found: list[Rejudged], refused: list[str]) -> str:
    """What a chapter says above its archived runs: each refused archive's line, or that there is none yet."""
    lines = [f"*Not shown:* {line}" for line in refused]
    if not found:
        lines.append(f"No family has an archived run of this chapter in `{archive_dir().name}/` yet.")
    return "\n\n".join(lines)
