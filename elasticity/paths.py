"""Where the project reads and writes: repository root, cache directory, runs directory."""

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path | None:
    """The repository root when the package is used from a checkout (editable install), else None."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "_toc.yml").is_file() else None


def cache_dir() -> Path:
    """Directory for cached results, tokenizers and checkpoints.

    `ELASTICITY_CACHE` wins; otherwise `<repo>/.cache` in a checkout, else `~/.cache/elasticity`.
    """
    if env := os.environ.get("ELASTICITY_CACHE"):
        path = Path(env)
    elif (root := project_root()) is not None:
        path = root / ".cache"
    else:
        path = Path.home() / ".cache" / "elasticity"
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """Directory for executed notebooks written by `elasticity run` (git-ignored)."""
    root = project_root()
    return Path(os.environ.get("ELASTICITY_RUNS", (root or Path.cwd()) / "runs"))


def notebooks_dir() -> Path:
    """Directory holding the chapters as jupytext MyST markdown."""
    root = project_root()
    if root is None:
        raise FileNotFoundError("the chapters live in a checkout of the repository; none was found")
    return root / "notebooks"
