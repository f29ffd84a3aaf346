"""The cell lab's cards, one after another or in worker processes (one per core).

A card (one cell on one task) is independent of every other, so ``--workers 2`` on two cores
runs two cards at once (``experiments.lib.processes``); every run still lands in its own file
under ``<out>/runs/``, so a killed lab loses only the runs in flight, one per worker.
"""

import functools
from collections.abc import Sequence
from pathlib import Path

from experiments.lib import processes
from experiments.lib.lab import protocol, runs
from experiments.lib.lab.protocol import Card
from experiments.lib.lab.tasks import TASKS


def one_card(
    job: tuple[str, str, str],
    budget: runs.Budget,
    folder: Path,
    rates: tuple[float, ...],
    exhaustive: bool = False,
) -> Card:
    """The protocol for ``job`` = (cell, task, cell_kwargs), its runs from ``folder``.

    Each run is trained, or read back from ``folder`` when it finished there before.

    ``exhaustive``: the whole grid instead (``protocol.grid_card``).
    """
    cell, task, cell_kwargs = job
    runner = functools.partial(runs.run, budget=budget, folder=folder)
    walk = protocol.grid_card if exhaustive else protocol.card
    return walk(cell, task, runner, rates, TASKS[task].dials[: budget.max_dials], cell_kwargs)


def run_cards(
    jobs: Sequence[tuple[str, str, str]],
    budget: runs.Budget,
    folder: Path,
    rates: tuple[float, ...],
    workers: int = 1,
    exhaustive: bool = False,
) -> list[Card]:
    """Every card of ``jobs`` (cell, task, cell_kwargs), in order; ``workers`` > 1: in processes.

    Args:
      jobs: the (cell, task, cell_kwargs) triples (cell_kwargs: JSON, '' for none).
      budget: every run's budget.
      folder: where the runs' files live.
      rates: the learning-rate sweep.
      workers: processes running cards at once (1: all in this process).
      exhaustive: every card's whole grid instead of the protocol.
    """
    card = functools.partial(
        one_card, budget=budget, folder=folder, rates=rates, exhaustive=exhaustive
    )
    return processes.map_jobs(card, jobs, workers)
