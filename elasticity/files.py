"""The files a command reads and writes, checked before any work: a bad path is one line, and nothing is written."""

import tempfile
from pathlib import Path

from elasticity.config import UserError


def _writable(folder: Path, what: str) -> None:
    if not folder.is_dir():
        raise UserError(f"{what}: its folder '{folder}' does not exist")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UserError(f"{what}: cannot write in '{folder}' ({error.strerror})") from None


def check_input_output(src: str | Path, dst: str | Path) -> tuple[Path, Path]:
    """`src` and `dst` as paths, once `src` is a readable file and `dst` a new or replaceable file (not `src`,
    not a folder) in a folder this process can write in; else a `UserError`."""
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise UserError(f"input file {str(src)!r} does not exist or is not a file")
    try:
        with open(src, "rb"):
            pass
    except OSError as error:
        raise UserError(f"input file {str(src)!r} cannot be read ({error.strerror})") from None
    if dst.exists() and dst.resolve() == src.resolve():
        raise UserError(f"output {str(dst)!r} is the input file; choose another name")
    return src, check_output_file(dst)


def check_output_file(dst: str | Path) -> Path:
    """`dst` as a path, once it is a new or replaceable file (not a folder) in a folder this process can write
    in; else a `UserError`."""
    dst = Path(dst)
    if dst.is_dir():
        raise UserError(f"output {str(dst)!r} is a directory; give a file name")
    _writable(dst.parent, f"output '{dst}'")
    return dst


def check_output_folder(folder: str | Path) -> Path:
    """`folder` as a path, once it is a folder, or can be made (with its missing parents) inside one this process
    can write in; else a `UserError`."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"output folder '{folder}' is a file")
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"output folder '{folder}': '{existing}' is a file")
    _writable(existing, f"output folder '{folder}'")
    return folder
