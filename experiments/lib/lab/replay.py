"""The protocol replayed on the runs another lab recorded: horizons without training anything.

A lab's ``results.json`` keeps every run's record. Replaying today's protocol on them gives the
horizons that lab's runs imply under today's rules (another machine's, or an older rule's), so
two machines can be compared card by card without retraining either. Where today's protocol
asks for a run the other lab never trained (a rate tried at the frontier that it did not try),
the missing run is read as failed, then as passed: the horizon lies between the two, and the
card is *decided* when they agree.
"""

import dataclasses
import json
from pathlib import Path
from typing import Any

from experiments.lib.lab import protocol, runs
from experiments.lib.lab.tasks import TASKS


def recorded_runs(path: Path) -> dict[runs.RunKey, dict[str, Any]]:
    """Every run of a lab's ``results.json``, by key, its difficulties as ints again."""
    records = json.loads(Path(path).read_text())["runs"]
    by_key = {}
    for record in records:
        key = runs.RunKey(
            record["cell"],
            record["task"],
            record["difficulty"],
            record["learning_rate"],
            record["seed"],
            record.get("cell_kwargs", ""),
        )
        record = runs.with_int_dials(dict(record))
        task = TASKS[key.task]
        record["passed"] = {d: task.passes(m) for d, m in record["metrics"].items()}
        by_key[key] = record
    return by_key


def replay_card(cell: str, task: str, recorded: dict, rates: tuple, budget) -> dict[str, Any]:
    """Today's protocol on the recorded runs.

    A run the recorded lab did not train is read once as failed and once as passed at every
    difficulty: the two horizons bound the one those runs would give, and are equal when the
    missing runs cannot change it.

    Returns:
      ``cell``, ``task``, ``low`` and ``high`` (the bounds; None below every difficulty),
      ``decided`` (they agree), ``missing`` (the runs not recorded) and ``rates`` (each
      difficulty's rate, when decided).
    """
    dials = TASKS[task].dials[: budget.max_dials]
    missing, cards = set(), []
    for stand_in in (False, True):

        def runner(key: runs.RunKey, stand_in=stand_in) -> dict[str, Any]:
            if key in recorded:
                return recorded[key]
            missing.add(key)
            evaluated = runs.evaluated_dials(key, budget)
            return {
                "learning_rate": key.learning_rate,
                "passed": dict.fromkeys(evaluated, stand_in),
                "metrics": dict.fromkeys(evaluated, TASKS[task].chance),
                "steps": budget.steps,
            }

        cards.append(protocol.card(cell, task, runner, rates, dials))
    low, high = cards
    return {
        "cell": cell,
        "task": task,
        "low": low.horizon,
        "high": high.horizon,
        "decided": low.horizon == high.horizon,
        "missing": sorted(missing, key=str),
        "rates": {str(d): r for d, r in low.rates.items()} if low.horizon == high.horizon else {},
    }


def replay(path: Path, cells: list[str], tasks: list[str], rates: tuple, budget) -> list[dict]:
    """``replay_card`` of every cell and task (the recorded runs must share ``budget``)."""
    recorded = recorded_runs(path)
    stale = [r for r in recorded.values() if runs.Budget(**r["budget"]) != budget]
    if stale:
        raise ValueError(
            f"{len(stale)} recorded runs have another budget than this lab's "
            f"({dataclasses.asdict(budget)})"
        )
    return [replay_card(c, t, recorded, rates, budget) for c in cells for t in tasks]
