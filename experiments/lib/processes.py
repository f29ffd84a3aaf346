"""Independent jobs in worker processes, one per core, or all in this process.

A small recurrent run keeps about one core busy, so ``workers=2`` on two cores runs two at
once. Each worker is a fresh process (``spawn``: forking a process that has started JAX's
threads is unsafe) that compiles its own programs; a job writes its own result file, so a
killed study loses only the jobs in flight.
"""

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any


def map_jobs(function: Callable[[Any], Any], jobs: Sequence[Any], workers: int = 1) -> list:
    """``[function(job) for job in jobs]``, in ``workers`` processes when more than one.

    ``function`` must be picklable (a module-level function, or a ``functools.partial`` of one).
    """
    if workers <= 1:
        return [function(job) for job in jobs]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        return list(pool.map(function, jobs))
