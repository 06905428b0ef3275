"""Independent units of work in worker processes: several units share one device at a time.

One rebound unit (a SmolLM2 fine-tune with batches of 5 examples, 24-token sampling) leaves a GPU idle most
of the time: the time goes to kernel launches, Python and the CPU scorers. Units in separate processes
overlap there. On a CPU the processes split the cores instead, so one worker (in process) is the default.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from tqdm.auto import tqdm

from elasticity.config import UserError

ENV = "ELASTICITY_WORKERS"


def workers() -> int:
    """Worker processes for the units of an experiment: `ELASTICITY_WORKERS`, 1 (no workers) if unset."""
    text = os.environ.get(ENV, "1")
    if not text.strip().isdigit() or int(text) < 1:
        raise UserError(f"{ENV} = {text!r}; must be a positive integer (1: units run in this process)")
    return int(text)


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def map_unordered(fn: Callable, items: Iterable, workers: int, desc: str) -> Iterator:
    """`fn(item)` for each item, yielded as each finishes, with a progress bar.

    With `workers` > 1 the items run in that many spawned processes (`fn` must be importable, a module-level
    function), each with its share of this process's torch threads. The first error cancels the items not
    started, waits for those running, and is raised here; whatever `fn` cached stays cached.
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

    threads = max(1, torch.get_num_threads() // workers)
    pool = ProcessPoolExecutor(min(workers, len(items)), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(threads,))
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
