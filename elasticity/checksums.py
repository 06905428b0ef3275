"""Checksummed cache entries: a finished entry lists every file's size and SHA-256 in `checksums.json`, written
last; an entry whose files no longer match is damaged, named in one line, and moved aside to be computed again.

A full disk, a killed copy or a bad sector leaves a file truncated or changed under a name the cache trusts.
Without checksums such an entry is read as if it were sound: a truncated `result.json` ends in a JSON traceback,
a changed checkpoint in wrong numbers. With them, `damage(entry)` says what is wrong before anything is read.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
from pathlib import Path

MANIFEST = "checksums.json"
_BLOCK = 1 << 20
_sound: dict[Path, tuple] = {}  # entry -> the (name, size, mtime) of its files when last found sound here


def digest(path: Path) -> str:
    """The SHA-256 of a file, read in blocks."""
    sha = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(_BLOCK):
            sha.update(block)
    return sha.hexdigest()


def _files(entry: Path) -> list[str]:
    return sorted(p.relative_to(entry).as_posix() for p in entry.rglob("*") if p.is_file() and p.name != MANIFEST)


def seal(entry: Path) -> None:
    """Write `checksums.json` into a filled entry: every file's size and digest. Written last, it marks the entry
    finished."""
    manifest = {name: {"bytes": (entry / name).stat().st_size, "sha256": digest(entry / name)}
                for name in _files(entry)}
    (entry / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))


def is_sealed(entry: Path) -> bool:
    """Whether an entry was finished (its manifest is there); nothing is read."""
    return (entry / MANIFEST).is_file()


def _stamp(entry: Path, names) -> tuple:
    return tuple((name, (entry / name).stat().st_size, (entry / name).stat().st_mtime_ns) for name in names)


def damage(entry: Path) -> str | None:
    """What is wrong with a finished entry (a few words), or None when every file it lists matches its checksum.

    Files are hashed once per process while their sizes and modification times stay the same: a checkpoint that
    a build reads for every unit is hashed once."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        names = sorted(manifest)
        wanted = {name: (int(manifest[name]["bytes"]), str(manifest[name]["sha256"])) for name in names}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return f"its {MANIFEST} is unreadable"
    for name in names:
        if not (entry / name).is_file():
            return f"{name} is missing"
        size = (entry / name).stat().st_size
        if size != wanted[name][0]:
            return f"{name} has {size} bytes, {wanted[name][0]} were written"
    stamp = _stamp(entry, names)
    if _sound.get(entry) == stamp:
        return None
    for name in names:
        if digest(entry / name) != wanted[name][1]:
            return f"{name} does not match its checksum"
    _sound[entry] = stamp
    return None


def set_aside(entry: Path, why: str) -> Path | None:
    """Move a damaged or unfinished entry to `.damaged/` beside it, where nothing reads it and nothing is lost,
    and say so in one line on stderr. None if another process moved it first."""
    aside = entry.parent / ".damaged" / f"{entry.name}.{datetime.datetime.now():%Y%m%dT%H%M%S%f}"
    aside.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(entry, aside)
    except FileNotFoundError:
        return None
    _sound.pop(entry, None)
    print(f"elasticity: cache entry {entry} cannot be used ({why}); moved to {aside}, to be computed again",
          file=sys.stderr, flush=True)
    return aside


def usable(entry: Path) -> bool:
    """Whether an entry can be read: finished (sealed) and sound. A damaged one is set aside (`set_aside`); one
    that was never finished is left where it is."""
    if not is_sealed(entry):
        return False
    why = damage(entry)
    if why is None:
        return True
    set_aside(entry, why)
    return False
