"""The cell lab's protocol: a learning-rate sweep, doubling the difficulty, seeds at the frontier.

For one cell on one task (``card``):

1. **Sweep** the learning rates at the task's base difficulty, seed 0. The best rate is the
   one that passes the most consecutive difficulties from the base (for a task that
   extrapolates one run is evaluated at every test length; otherwise only the base), then in
   the fewest steps, then with the best metric.
2. **Double** the difficulty at the best rate, seed 0, while it passes. At the first
   difficulty seed 0 fails, seeds 1 and 2 decide (2 of 3 must pass to go on).
3. **Horizon**: walking down from the last difficulty reached, the first one where at least
   2 of the 3 seeds pass (a seed is trained only when the two before it disagree); None when
   none does. So the seeds are spent at the frontier, and the doubling stops at the first
   failure (a longer length is not tried once a shorter one fails).

``grid_card`` is what those shortcuts stand in for: every rate, seed and difficulty trained, the
best rate being the one with the largest horizon, the horizon the largest difficulty at which 2
of 3 seeds pass (whether or not a shorter one failed). ``--exhaustive`` runs it beside the
protocol, so a report can show that the shortcuts do not change a horizon.

Every run goes through ``runner(RunKey) -> record`` (``lab_runs.run``: finished runs are read
back, not retrained), so a card's runs are shared between its steps and across reruns.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

from experiments.lib.lab_runs import RunKey
from experiments.lib.lab_tasks import TASKS, Task

LEARNING_RATES = (1e-3, 3e-3, 1e-2)
QUICK_LEARNING_RATES = (3e-3,)
SEEDS = (0, 1, 2)

Runner = Callable[[RunKey], dict[str, Any]]


@dataclasses.dataclass
class Card:
    """One cell on one task: its horizon, the best rate, and every run behind them.

    Attributes:
      cell: the cell's name (registered or ``module:Class``).
      task: the task's name.
      horizon: the largest difficulty at which 2 of 3 seeds pass at the best rate, or None.
      learning_rate: the best rate of the sweep.
      runs: every run's record, in the order the protocol asked for them.
    """

    cell: str
    task: str
    horizon: int | None
    learning_rate: float
    runs: list[dict[str, Any]]


def _consecutive_passes(record: dict[str, Any], dials: tuple[int, ...]) -> int:
    """How many difficulties from the base the run passes, stopping at its first failure."""
    count = 0
    for dial in dials:
        if not record["passed"].get(dial, False):
            break
        count += 1
    return count


def sweep_rank(record: dict[str, Any], task: Task) -> tuple:
    """Sort key of a sweep run: larger is better (passes, then fewer steps, then the metric)."""
    base = task.dials[0]
    metric = record["metrics"][base]
    signed = -metric if task.regression else metric
    return (_consecutive_passes(record, task.dials), -record["steps"], signed)


def card(
    cell: str,
    task_name: str,
    runner: Runner,
    learning_rates: tuple[float, ...] = LEARNING_RATES,
    dials: tuple[int, ...] | None = None,
) -> Card:
    """Runs the protocol for one cell on one task (the module docstring says how).

    Args:
      cell: a registered cell name or ``module:Class``.
      task_name: a key of ``lab_tasks.TASKS``.
      runner: trains (or reads back) one run.
      learning_rates: the sweep's rates.
      dials: the difficulties to walk (default: the task's).
    """
    task = TASKS[task_name]
    dials = dials or task.dials
    records: dict[RunKey, dict[str, Any]] = {}

    def record(dial: int, seed: int, rate: float) -> dict[str, Any]:
        # A task that extrapolates trains once (lengths 1..40) for every test length.
        key = RunKey(cell, task_name, None if task.extrapolates else dial, rate, seed)
        if key not in records:
            records[key] = runner(key)
        return records[key]

    sweep = [record(dials[0], 0, rate) for rate in learning_rates]
    scoped = dataclasses.replace(task, dials=dials)
    best = max(sweep, key=lambda r: sweep_rank(r, scoped))["learning_rate"]

    def passes(dial: int, seed: int) -> bool:
        return record(dial, seed, best)["passed"][dial]

    def holds(dial: int) -> bool:
        """2 of 3 seeds pass; the third is trained only when the first two disagree."""
        results = []
        for seed in SEEDS:
            results.append(passes(dial, seed))
            if results.count(True) >= 2 or results.count(False) >= 2:
                break
        return results.count(True) >= 2

    reached = []
    for dial in dials:
        reached.append(dial)
        if not passes(dial, 0) and not holds(dial):
            break
    horizon = next((dial for dial in reversed(reached) if holds(dial)), None)
    return Card(cell, task_name, horizon, best, list(records.values()))


def grid_card(
    cell: str,
    task_name: str,
    runner: Runner,
    learning_rates: tuple[float, ...] = LEARNING_RATES,
    dials: tuple[int, ...] | None = None,
) -> Card:
    """The horizon from every (rate, seed, difficulty): the protocol without its shortcuts.

    Args and returns as ``card``; ``Card.runs`` holds every run of the grid.
    """
    task = TASKS[task_name]
    dials = dials or task.dials
    runs, best_rate, best = [], learning_rates[0], None
    for rate in learning_rates:
        horizon = None
        for dial in dials:
            difficulty = None if task.extrapolates else dial
            records = [runner(RunKey(cell, task_name, difficulty, rate, s)) for s in SEEDS]
            runs += [r for r in records if r not in runs]
            if sum(r["passed"][dial] for r in records) >= 2:
                horizon = dial
        if horizon is not None and (best is None or horizon > best):
            best_rate, best = rate, horizon
    return Card(cell, task_name, best, best_rate, runs)
