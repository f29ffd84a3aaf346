"""The cell lab's protocol: a learning-rate sweep, doubling the difficulty, seeds at the frontier.

For one cell on one task (``card``):

1. **Sweep** the learning rates at the task's base difficulty, seed 0, and rank them: the rate
   that passes the most consecutive difficulties from the base first (for a task that
   extrapolates one run is evaluated at every test length; otherwise only the base), then the
   fewest steps, then the best metric.
2. **Double** the difficulty at the current rate (at first the best one), seed 0, while it
   passes. Where seed 0 fails, the difficulty is at the frontier and is decided there: it
   *holds* when 2 of 3 seeds pass at some rate, tried in rank order from the current one (a
   seed is trained only when the two before it disagree). Only then is it declared failed, so a
   horizon does not hang on which side of the line one early run landed (a rate that read
   0.0113 against 0.01 at T = 16 on one machine and 0.0078 on another); the next difficulty
   starts at the rate that held.
3. **Horizon**: walking down from the last difficulty reached, the first one that holds; None
   when none does. ``Card.rates`` says which rate each difficulty of the horizon's walk passed
   at. The doubling stops at the first failure: a longer length is not tried once a shorter
   one fails.

``grid_card`` is what those shortcuts stand in for: every rate, seed and difficulty trained, the
horizon the largest difficulty at which 2 of 3 seeds pass at some rate (whether or not a
shorter one failed). ``--exhaustive`` runs it beside the protocol, so a report can show that the
shortcuts do not change a horizon.

Every run goes through ``runner(RunKey) -> record`` (``runs.run``: finished runs are read
back, not retrained), so a card's runs are shared between its steps and across reruns.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

from experiments.lib.lab.runs import RunKey
from experiments.lib.lab.tasks import TASKS, Task

LEARNING_RATES = (1e-3, 3e-3, 1e-2)
QUICK_LEARNING_RATES = (3e-3,)
SEEDS = (0, 1, 2)

Runner = Callable[[RunKey], dict[str, Any]]


@dataclasses.dataclass
class Card:
    """One cell on one task: its horizon, the rates, and every run behind them.

    Attributes:
      cell: the cell's name (registered or ``module:Class``).
      task: the task's name.
      horizon: the largest difficulty that holds (2 of 3 seeds pass at some rate), or None.
      learning_rate: the best rate of the sweep.
      runs: every run's record, in the order the protocol asked for them.
      rates: difficulty -> the rate it held at (the difficulties the walk decided).
      cell_kwargs: the cell's constructor arguments, JSON ('' for none).
    """

    cell: str
    task: str
    horizon: int | None
    learning_rate: float
    runs: list[dict[str, Any]]
    rates: dict[int, float] = dataclasses.field(default_factory=dict)
    cell_kwargs: str = ""


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
    cell_kwargs: str = "",
) -> Card:
    """Runs the protocol for one cell on one task (the module docstring says how).

    Args:
      cell: a registered cell name or ``module:Class``.
      task_name: a key of ``tasks.TASKS``.
      runner: trains (or reads back) one run.
      learning_rates: the sweep's rates.
      dials: the difficulties to walk (default: the task's).
      cell_kwargs: the cell's constructor arguments, JSON ('' for none).
    """
    task = TASKS[task_name]
    dials = dials or task.dials
    records: dict[RunKey, dict[str, Any]] = {}

    def record(dial: int, seed: int, rate: float) -> dict[str, Any]:
        # A task that extrapolates trains once (lengths 1..40) for every test length.
        difficulty = None if task.extrapolates else dial
        key = RunKey(cell, task_name, difficulty, rate, seed, cell_kwargs)
        if key not in records:
            records[key] = runner(key)
        return records[key]

    sweep = [record(dials[0], 0, rate) for rate in learning_rates]
    scoped = dataclasses.replace(task, dials=dials)
    ranked = [r["learning_rate"] for r in sorted(sweep, key=lambda r: sweep_rank(r, scoped))]
    ranked.reverse()  # Best first.

    def passes(dial: int, seed: int, rate: float) -> bool:
        return record(dial, seed, rate)["passed"][dial]

    def holds_at(dial: int, rate: float) -> bool:
        """2 of 3 seeds pass; the third is trained only when the first two disagree."""
        results = []
        for seed in SEEDS:
            results.append(passes(dial, seed, rate))
            if results.count(True) >= 2 or results.count(False) >= 2:
                break
        return results.count(True) >= 2

    def holding_rate(dial: int, first: float) -> float | None:
        """The first rate (``first``, then the rest in rank order) at which ``dial`` holds."""
        for rate in [first, *(r for r in ranked if r != first)]:
            if holds_at(dial, rate):
                return rate
        return None

    reached, current, passed_at = [], ranked[0], {}
    for dial in dials:
        reached.append(dial)
        if passes(dial, 0, current):
            passed_at[dial] = current
            continue
        current = holding_rate(dial, current)
        if current is None:
            break
        passed_at[dial] = current
    rates = {}
    for dial in reversed(reached):
        rate = holding_rate(dial, passed_at.get(dial, ranked[0]))
        if rate is not None:
            rates = {d: passed_at[d] for d in reached if d < dial} | {dial: rate}
            break
    horizon = max(rates) if rates else None
    return Card(cell, task_name, horizon, ranked[0], list(records.values()), rates, cell_kwargs)


def grid_card(
    cell: str,
    task_name: str,
    runner: Runner,
    learning_rates: tuple[float, ...] = LEARNING_RATES,
    dials: tuple[int, ...] | None = None,
    cell_kwargs: str = "",
) -> Card:
    """The horizon from every (rate, seed, difficulty): the protocol without its shortcuts.

    Args and returns as ``card``; ``Card.runs`` holds every run of the grid.
    """
    task = TASKS[task_name]
    dials = dials or task.dials
    runs, rates = [], {}
    for dial in dials:
        difficulty = None if task.extrapolates else dial
        for rate in learning_rates:
            keys = [RunKey(cell, task_name, difficulty, rate, s, cell_kwargs) for s in SEEDS]
            records = [runner(key) for key in keys]
            runs += [r for r in records if r not in runs]
            if dial not in rates and sum(r["passed"][dial] for r in records) >= 2:
                rates[dial] = rate
    horizon = max(rates) if rates else None
    best = rates.get(horizon, learning_rates[0]) if horizon is not None else learning_rates[0]
    return Card(cell, task_name, horizon, best, runs, rates, cell_kwargs)
