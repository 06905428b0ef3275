"""Cached results: keyed by a hash of the config and of the code that computes it, written atomically.

Jupyter's execution cache only sees a chapter's own cells; it cannot see a change in the package.
So every cached result here is keyed by its config *and* by a fingerprint of the source of the
module that computes it and of every `elasticity` module that module imports, transitively.
"""

import ast
import dataclasses
import datetime
import fcntl
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import pandas as pd

from elasticity import checksums, numerics, paths


class Unit(NamedTuple):
    """A cached computation as the cache sees it: the entry's name (a directory under `results/`), the config
    that keys it, the function that computes it (whose module's closure is the code key), and whether that
    function returns a result (`load_or_run`) or fills a directory, an artifact (`artifact_dir`)."""

    name: str
    config: Any
    compute: Callable
    artifact: bool = False

    def entry(self, cache: Path | None = None) -> Path:
        """Where the unit is cached (`entry_dir`)."""
        return entry_dir(self.name, self.config, self.compute, cache)

    def is_cached(self, cache: Path | None = None) -> bool:
        """Whether the unit is cached with this code (nothing is read)."""
        return is_complete(self.entry(cache))

    def ensure(self, cache: Path | None = None) -> None:
        """Compute the unit into the cache unless it is there: an artifact's directory, or a result."""
        if self.artifact:
            artifact_dir(self.name, self.config, self.compute, cache=cache)
        else:
            self.result(cache)

    def result(self, cache: Path | None = None) -> Any:
        """The unit's result, computed first unless it is cached (`load_or_run`)."""
        return load_or_run(self.name, self.config, self.compute, cache=cache)

    def load_provenance(self, cache: Path | None = None) -> dict | None:
        """The provenance record of the cached unit, or None (`load_provenance`)."""
        return load_provenance(self.name, self.config, self.compute, cache=cache)


_LIBRARIES = ("torch", "transformers", "peft", "accelerate", "datasets", "trl", "numpy", "pandas", "sympy")


def config_key(config: Any) -> str:
    """A short stable hash of a dataclass config (its type name and field values)."""
    payload = {"type": type(config).__name__, "fields": dataclasses.asdict(config)}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _package_of(module: ModuleType) -> str:
    return module.__name__ if module.__file__.endswith("__init__.py") else module.__name__.rpartition(".")[0]


@functools.cache
def _elasticity_imports(source: str, package: str) -> frozenset[str]:
    """The `elasticity` modules a module's source imports. Cached on the source text itself, so an edited
    file is parsed again: parsing every module at each cached unit took 0.12 s a unit on the build machine."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(n for n in names if n == "elasticity" or n.startswith("elasticity."))


def code_closure(module_name: str) -> dict[str, str]:
    """Module name -> source, for `module_name` and every `elasticity` module it imports, transitively (at
    module level or inside a function): the code a result computed there depends on."""
    seen: dict[str, str] = {}
    todo = [module_name]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            module = sys.modules.get(name) or __import__(name, fromlist=["_"])
        except ImportError:  # `from elasticity.x import name` where name is not a module
            continue
        if not getattr(module, "__file__", None):
            continue
        seen[name] = Path(module.__file__).read_text()
        todo.extend(_elasticity_imports(seen[name], _package_of(module)) - seen.keys())
    return seen


def module_digests(fn: Callable) -> dict[str, str]:
    """Module name -> a 12-hex digest of its source, for the closure that `code_fingerprint(fn)` hashes: what a
    provenance record keeps, so that a stale entry can tell which modules changed."""
    return {name: hashlib.sha256(source.encode()).hexdigest()[:12]
            for name, source in sorted(code_closure(fn.__module__).items())}


def code_fingerprint(fn: Callable) -> str:
    """Hash of the source of `fn`'s module and of every `elasticity` module it imports (`code_closure`)."""
    digest = hashlib.sha256()
    for name, source in sorted(code_closure(fn.__module__).items()):
        digest.update(name.encode() + b"\0" + source.encode() + b"\0")
    return digest.hexdigest()[:16]


def entry_dir(name: str, config: Any, compute: Callable, cache: Path | None = None) -> Path:
    """Where `compute(config)` is cached as `name`: `<cache>/results/<name>/<config key>-<code key>`."""
    key = f"{config_key(config)}-{code_fingerprint(compute)}"
    return (cache or paths.cache_dir()) / "results" / name / key


def _encode(value: Any) -> Any:
    if isinstance(value, pd.DataFrame):
        # Column lists through json keep every float exactly (repr round-trips); to_json would round them.
        frame = value.reset_index(drop=True)
        return {"__frame__": {"columns": [str(c) for c in frame.columns],
                              "dtypes": {str(c): str(t) for c, t in frame.dtypes.items()},
                              "data": {str(c): _encode(frame[c].tolist()) for c in frame.columns}}}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__frame__"}:
            spec = value["__frame__"]
            frame = pd.DataFrame({c: spec["data"][c] for c in spec["columns"]}, columns=spec["columns"])
            for column, dtype in spec["dtypes"].items():
                if dtype != "object" and dtype != str(frame[column].dtype):
                    frame[column] = frame[column].astype(dtype)
            return frame
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def versions() -> dict[str, str]:
    """Versions of Python, this package and the libraries whose behaviour changes results."""
    found = {"python": platform.python_version()}
    for name in ("elasticity", *_LIBRARIES):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def provenance(config: Any, wall_time_s: float, key: str, compute: Callable | None = None) -> dict[str, Any]:
    """What produced a result: config, key, the digest of each module of its code (`module_digests` of
    `compute`), versions, device, seed, wall time, command, when, where, and what its bitwise identity
    depends on (`numerics.state`: kernel level, threads, MKL, the CPU)."""
    fields = dataclasses.asdict(config)
    return {
        "config": fields,
        "config_type": type(config).__name__,
        "key": key,
        "code": None if compute is None else module_digests(compute),
        "versions": versions(),
        "device": fields.get("device", "cpu"),
        "seed": fields.get("seed", fields.get("seeds")),
        "wall_time_s": round(wall_time_s, 3),
        "command": " ".join(sys.argv),
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count()},
        "numerics": numerics.state(),
    }


def _atomic_dir(target: Path, fill: Callable[[Path], None]) -> None:
    """Fill a fresh temporary directory beside `target`, seal it (`checksums.seal`), then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        fill(tmp)
        checksums.seal(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished the same entry first: keep theirs
            if not target.exists():
                raise
            if not checksums.usable(target):  # unless what is there is unfinished or damaged
                checksums.set_aside(target, "unfinished: no checksums")
                os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def is_complete(entry: Path) -> bool:
    """Whether a cache entry was finished, a result (`load_or_run`) or an artifact (`build_once`): its checksums
    are there (nothing is read; `load` checks them)."""
    return checksums.is_sealed(entry)


def is_cached(name: str, config: Any, compute: Callable, *, cache: Path | None = None) -> bool:
    """Whether `compute(config)` has a cached result or artifact computed with this code (nothing is read)."""
    return is_complete(entry_dir(name, config, compute, cache))


def load(name: str, config: Any, compute: Callable, *, cache: Path | None = None) -> Any | None:
    """The cached result of `compute(config)`, or None if it has not been computed with this code. A damaged
    entry (a file that no longer matches its checksum) is named in one line, set aside, and counts as none."""
    entry = entry_dir(name, config, compute, cache)
    return _decode(json.loads((entry / "result.json").read_text())) if checksums.usable(entry) else None


def load_provenance(name: str, config: Any, compute: Callable, *, cache: Path | None = None) -> dict | None:
    """The provenance record of a cached result, or None (as `load`)."""
    entry = entry_dir(name, config, compute, cache)
    return json.loads((entry / "provenance.json").read_text()) if checksums.usable(entry) else None


def load_or_run(name: str, config: Any, compute: Callable[[Any], Any], *, cache: Path | None = None) -> Any:
    """Return `compute(config)`, computing it only if no result for this config and code is cached.

    Args:
        name: experiment name, a directory under `<cache>/results/`.
        config: a frozen dataclass; its fields and type name form the key.
        compute: a function of the config returning a DataFrame, or a dict (nested dicts, lists,
            numbers, strings and DataFrames). Its module's source is part of the key.
        cache: the cache directory; `paths.cache_dir()` if None.

    Returns:
        The result as `compute` returned it, through JSON: DataFrames come back with a fresh RangeIndex and
        exact floats, tuples come back as lists. The first call returns the same decoded form as later calls.
    """
    cached = load(name, config, compute, cache=cache)
    if cached is not None:
        return cached
    entry = entry_dir(name, config, compute, cache)
    numerics.check()  # nothing is cached that was computed at another kernel level than the pinned one
    start = time.perf_counter()
    with numerics.unit_threads():  # and every unit with the same thread count
        result = compute(config)
        record = provenance(config, time.perf_counter() - start, entry.name, compute)

    def fill(tmp: Path) -> None:
        (tmp / "result.json").write_text(json.dumps(_encode(result)))
        (tmp / "provenance.json").write_text(json.dumps(record, indent=2, default=str))

    _atomic_dir(entry, fill)
    return _decode(_encode(result))


def build_once(target: Path, build: Callable[[Path], None], config: Any = None,
               compute: Callable | None = None) -> Path:
    """The directory `target`, built once, atomically, by one process at a time.

    `build(directory)` fills a fresh temporary directory beside `target`, which is sealed with its checksums
    (and, given the `config` it was built from, a `provenance.json`, with the digests of the code of `compute`
    where given) and renamed into place only once `build` returns: an interrupted build leaves nothing that
    looks finished. A second process asking for the same target meanwhile waits on a file lock (a hidden
    `.<name>.lock` beside it) and then finds the result. A damaged target, or an unfinished one, is set aside
    and built again.
    """
    if checksums.usable(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not checksums.usable(target):
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
            try:
                numerics.check()
                start = time.perf_counter()
                with numerics.unit_threads():  # the kernel level and thread count of every result
                    build(tmp)
                    if config is not None:
                        record = provenance(config, time.perf_counter() - start, target.name, compute)
                        (tmp / "provenance.json").write_text(json.dumps(record, indent=2, default=str))
                checksums.seal(tmp)
                if target.exists():
                    checksums.set_aside(target, "unfinished: no checksums")
                os.rename(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def artifact_dir(kind: str, config: Any, build: Callable[[Any, Path], None], *, cache: Path | None = None) -> Path:
    """A directory of files (a checkpoint, a tokenizer) built once per config and code (`build_once`).

    `build(config, directory)` writes into an empty temporary directory.
    """
    return build_once(entry_dir(kind, config, build, cache), lambda tmp: build(config, tmp), config, build)
