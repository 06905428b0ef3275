"""Same numbers on every machine of this kind: one CPU instruction-set level and one thread count for every unit.

PyTorch's own kernels (ATen), MKL and oneDNN each pick a code path by the CPU's instruction set when the
process starts. A wider vector unit sums in another order, the seventh digit of a loss moves, and over a
training run and sampling that changes scores and verdicts: builds of one commit agreed within a class of
machine and differed between classes. `pin` sets every library to AVX2, which every x86 machine of this
kind has, through the libraries' own switches in the environment: the process and everything it starts
(kernels, worker processes, jupyter-book) compute alike. Each library reads its switch when it first
computes, so `pin` must run before torch computes anything (importing torch is fine); importing `elasticity`
runs it.

The thread count changes numbers too: a reduction split across threads sums in another order (a tiny default
rebound unit at 1 and 2 threads differs from its first training loss on). Every unit computes with `THREADS`
intra-op threads (`unit_threads`), whatever the machine's cores, the inherited `OMP_NUM_THREADS` or the count of
worker processes. `ELASTICITY_NATIVE_KERNELS=1` opts out of both, for speed over identity.
"""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

OPT_OUT = "ELASTICITY_NATIVE_KERNELS"
# torch intra-op threads of every unit: the cores of the machines the book is built on (2), so that a build
# there computes as fast as unpinned; more threads help little at these sizes (a tiny rebound unit: 7.7 s at 1
# thread, 6.8 s at 2). Worker processes on a CPU each take this many cores (`parallel.max_workers`).
THREADS = 2
PINNED = {
    "ATEN_CPU_CAPABILITY": "avx2",  # PyTorch's vectorised kernels
    "MKL_CBWR": "AVX2",  # MKL's conditional numerical reproducibility: the AVX2 code path on any CPU that has it
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN (mkldnn) kernels
    "OMP_NUM_THREADS": str(THREADS),  # the thread pools of torch and numpy's BLAS, in every process started
}
PINNED_CAPABILITY = "AVX2"  # as `torch.backends.cpu.get_cpu_capability()` names it


class NumericsError(RuntimeError):
    """torch computed before the pinned kernels were set, so this process computes at another level."""


def native() -> bool:
    """Whether the user opted out of pinning (`ELASTICITY_NATIVE_KERNELS=1`)."""
    return os.environ.get(OPT_OUT, "") == "1"


def applies() -> bool:
    """Whether pinning applies here: on by default on x86-64 Linux, where the switches exist."""
    import platform

    return not native() and sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")


def pin() -> None:
    """Set the pinned levels in this process's environment, overriding what it inherited, unless opted out."""
    if applies():
        os.environ.update(PINNED)


def threads() -> int | None:
    """The torch threads every unit computes with: `THREADS`, or None where the user opted out."""
    return None if native() else THREADS


@contextmanager
def unit_threads() -> Iterator[None]:
    """Compute the block with `threads()` torch intra-op threads (the count before is restored after)."""
    count = threads()
    if count is None:
        yield
        return
    with torch_threads(count):
        yield


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Compute the block with `count` torch intra-op threads (the count before is restored after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check() -> None:
    """Raise `NumericsError` if pinning applies but torch computes at another level in this process.

    Where torch has not been imported it has computed nothing, and will read the pinned switches when it does.
    """
    torch = sys.modules.get("torch")
    if torch is None or not applies():
        return
    found = torch.backends.cpu.get_cpu_capability()
    if found != PINNED_CAPABILITY:
        raise NumericsError(f"torch computes with {found} kernels, not {PINNED_CAPABILITY}: import elasticity "
                            f"before torch computes (or set {OPT_OUT}=1 to accept numbers that differ between "
                            "machines)")


def _mkl_version(torch) -> str | None:
    marker = "Math Kernel Library Version "
    show = torch.__config__.show()
    return show.split(marker)[1].split("-")[0] if marker in show else None


def state() -> dict:
    """What a result's bitwise identity depends on: kernel levels, threads, library versions, the CPU (the torch
    fields are None where torch was not imported: a result computed without it depends on none of them)."""
    from elasticity import machine

    torch = sys.modules.get("torch")
    return {
        "pinned": applies(),
        "cpu_capability": torch and torch.backends.cpu.get_cpu_capability(),
        **{name.lower(): os.environ.get(name) for name in PINNED},
        "torch_threads": torch and torch.get_num_threads(),
        "torch": torch and torch.__version__,
        "mkl": torch and _mkl_version(torch),
        "cpu": machine.cpu_name(),
    }
