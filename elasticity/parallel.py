"""Independent units of work in worker processes: several units share one device at a time.

One rebound unit (a SmolLM2 fine-tune with batches of 5 examples, 24-token sampling) leaves a GPU idle most
of the time: the time goes to kernel launches, Python and the CPU scorers. Units in separate processes
overlap there. On a CPU the processes split the cores instead, so one worker (in process) is the default; each
unit computes with the pinned thread count (`numerics.THREADS`) wherever it runs, so a worker takes that many
cores, and a unit's numbers do not depend on the count of workers.
A count the machine cannot hold (cores, memory per worker) is refused before any process starts, and every
worker ends with the process that started it (`elasticity.lifeline`).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from tqdm.auto import tqdm

from elasticity import families, lifeline, numerics
from elasticity.config import UserError

ENV = "ELASTICITY_WORKERS"
# Resident memory of a worker besides its model's training state: Python, torch, transformers, the scorers and
# the data (measured: about 0.7 GB per worker of a tiny rebound run), and of the kernel that waits on them.
PROCESS_BYTES = int(0.75 * 2**30)
# A worker on a GPU also holds the CUDA runtime and its libraries in host memory, and the weights while loading.
CUDA_HOST_BYTES = 2**30
CPU_WEIGHT_BYTES = 4  # every family trains in float32 on a CPU (`models.dtype_for`)


def workers() -> int:
    """Worker processes for the units of an experiment: `ELASTICITY_WORKERS`, 1 (no workers) if unset."""
    text = os.environ.get(ENV, "1")
    if not text.strip().isdigit() or int(text) < 1:
        raise UserError(f"{ENV} = {text!r}; must be a positive integer (1: units run in this process)")
    return int(text)


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_bytes(family: str, device: str) -> tuple[int, int]:
    """Estimated memory one worker needs to fine-tune the largest model of `family` on `device`, bytes.

    Returns:
        (host memory, device memory): on a CPU the training state (float32 weights, gradients and AdamW
        moments) lives in host memory and the device memory is 0; on a GPU the host keeps the CUDA runtime
        and the weights once, and the training state lives on the device.
    """
    num_parameters = families.largest_num_parameters(family)
    if device == "cpu":
        return PROCESS_BYTES + families.training_bytes(num_parameters, CPU_WEIGHT_BYTES, lora=False), 0
    from elasticity import models  # torch: asking a GPU needs it anyway

    weight_bytes = models.dtype_for(families.family(family), device).itemsize
    return (PROCESS_BYTES + CUDA_HOST_BYTES + num_parameters * weight_bytes,
            families.training_bytes(num_parameters, weight_bytes, lora=False))


def max_workers(family: str, device: str) -> tuple[int, str]:
    """The most worker processes this machine holds for units of `family` on `device`, and what limits it.

    `numerics.THREADS` cores per worker (one where the user opted out of pinning); host memory available now,
    less one process for the kernel that waits on them, divided by `worker_bytes`; on a GPU also its free
    memory divided by the worker's share.
    """
    import psutil

    host, device_bytes = worker_bytes(family, device)
    count, threads = cores(), numerics.threads() or 1
    limits = {f"{count} cores, {threads} per worker": max(1, count // threads)}
    available = psutil.virtual_memory().available
    limits[f"{available / 2**30:.1f} GiB of memory available, about {host / 2**30:.1f} GiB per worker of "
           f"family {family!r} on {device}"] = max(0, (available - PROCESS_BYTES) // host)
    if device_bytes:
        from elasticity import models

        free = models.available_bytes(device)
        limits[f"{free / 2**30:.1f} GiB free on {device}, about {device_bytes / 2**30:.1f} GiB per worker"] = (
            free // device_bytes)
    reason = min(limits, key=limits.get)
    return max(1, limits[reason]), reason


def check_fits(workers: int, family: str, device: str) -> None:
    """Raise a one-line `UserError` naming the largest count that fits if `workers` processes would not."""
    if workers <= 1:
        return
    most, reason = max_workers(family, device)
    if workers > most:
        raise UserError(f"{workers} worker processes do not fit this machine: at most {most} ({reason}); "
                        f"give --workers or {ENV} {most} or fewer")


def _init_worker(threads: int, parent_pid: int) -> None:
    lifeline.end_with_parent(parent_pid)
    import torch

    torch.set_num_threads(threads)


def map_unordered(fn: Callable, items: Iterable, workers: int, desc: str) -> Iterator:
    """`fn(item)` for each item, yielded as each finishes, with a progress bar.

    With `workers` > 1 the items run in that many spawned processes (`fn` must be importable, a module-level
    function), each with the pinned thread count (`numerics.threads`; opted out: its share of this process's
    torch threads), each ending when this process ends.
    The first error cancels the items not started, waits for those running, and is raised here; whatever
    `fn` cached stays cached.
    """
    items = list(items)
    if workers < 1:
        raise UserError(f"workers = {workers}; must be a positive integer")
    if workers == 1:
        for item in tqdm(items, desc=desc, unit="unit"):
            yield fn(item)
        return
    if not items:
        return
    import torch

    threads = numerics.threads() or max(1, torch.get_num_threads() // workers)
    pool = ProcessPoolExecutor(min(workers, len(items)), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(threads, os.getpid()))
    try:
        futures = [pool.submit(fn, item) for item in items]
        for future in tqdm(as_completed(futures), total=len(futures), desc=f"{desc} ({workers} workers)",
                           unit="unit"):
            yield future.result()
    except BrokenProcessPool as error:
        raise RuntimeError(f"a worker process of {desc!r} died without an error (killed, out of memory?); the "
                           f"units it finished are cached: run again to resume, with fewer than {workers} workers "
                           "if memory ran out") from error
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
