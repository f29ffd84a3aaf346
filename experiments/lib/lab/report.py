"""The cell lab's report: the horizons table and heat map, every run, learning curves.

``results`` gathers the cards into what ``results.json`` holds (``horizons``: cell -> task ->
horizon or None; ``gradient_horizons``: cell -> its gradient horizon at initialization,
``lab_gradients.gradient_horizon``; ``learning_rates``; ``tasks``; ``budget``; ``runs``: every
run behind them); ``horizon_rows`` and ``run_rows`` are the tables; ``heatmap_figure`` and
``curves_figure`` the figures.
"""

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from experiments.lib import reporting
from experiments.lib.lab.control import ATTENTION, ATTENTION_LABEL, cell_spec
from experiments.lib.lab.gradients import column_header
from experiments.lib.lab.protocol import Card
from experiments.lib.lab.runs import Budget
from experiments.lib.lab.tasks import TASKS
from experiments.lib.reporting import Column

DIAL_NAMES = {
    "adding": "length T",
    "selective_copy": "blanks L",
    "mqar": "pairs",
    "parity": "test length",
    "cycle_navigation": "test length",
}

GRADIENT_KEY = "gradient_horizon"  # The horizons table's gradient column (rows and CSV).
NOT_RUN = "not run"  # A task a cell was not run on (the attention control: MQAR only).

RUN_COLUMNS = (
    Column("cell", "cell"),
    Column("task", "task"),
    Column("difficulty", "difficulty"),
    Column("learning_rate", "learning rate", "{:g}"),
    Column("seed", "seed"),
    Column("metric", "metric"),
    Column("rows_right", "sequences all right"),
    Column("chance", "chance / trivial", "{:.4f}"),
    Column("threshold", "pass at", "{:g}"),
    Column("passed", "passed"),
    Column("steps", "steps"),
    Column("seconds", "seconds", "{:.1f}"),
    Column("parameters", "parameters", "{:,}"),
)


def lab_name(cell: str, cell_kwargs: str = "") -> str:
    """A lab cell as results are keyed: its name, then its constructor arguments if any."""
    return f"{cell} {cell_kwargs}" if cell_kwargs else cell


def cell_label(name: str) -> str:
    """How tables and figures call a lab cell (the controls and a cell's arguments included)."""
    cell, _, kwargs = name.partition(" ")  # A cell's name has no space (lab_name).
    label = ATTENTION_LABEL if cell == ATTENTION else reporting.cell_label(cell_spec(cell))
    return f"{label} {kwargs}" if kwargs else label


SHORTCUT_COLUMNS = (
    Column("cell", "cell"),
    Column("task", "task"),
    Column("protocol", "horizon (protocol)"),
    Column("grid", "horizon (every rate, seed, difficulty)"),
    Column("protocol_rate", "rate (protocol)", "{:g}"),
    Column("grid_rate", "rate (grid)", "{:g}"),
    Column("protocol_runs", "runs (protocol)"),
    Column("grid_runs", "runs (grid)"),
    Column("same", "same horizon"),
)


def _run_id(run: dict[str, Any]) -> tuple:
    """A run's identity: its key and whether it stopped early (the grid's runs do not)."""
    key = tuple(run[k] for k in ("cell", "task", "difficulty", "learning_rate", "seed"))
    return (*key, run.get("cell_kwargs", ""), run["budget"]["early_stop"])


def results(
    cards: Sequence[Card],
    budget: Budget,
    grid: Sequence[Card] = (),
    gradient_horizons: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What ``results.json`` holds: horizons, best rates, the tasks, the budget, every run.

    ``grid``: the same cards without the protocol's shortcuts (``--exhaustive``); their horizons
    go under ``grid_horizons`` and their runs join ``runs``. ``gradient_horizons``: cell ->
    ``lab_gradients.gradient_horizon`` (untrained), kept under that key as it is.
    """
    horizons = _horizons(cards)
    rates: dict[str, dict[str, float]] = {}
    passing: dict[str, dict[str, dict[int, float]]] = {}
    for card in cards:
        name = lab_name(card.cell, card.cell_kwargs)
        rates.setdefault(name, {})[card.task] = card.learning_rate
        passing.setdefault(name, {})[card.task] = card.rates
    tasks = {
        name: {
            "dial": DIAL_NAMES[name],
            "dials": list(walked(name, budget.max_dials)),
            "metric": task.metric,
            "chance": task.chance,
            "threshold": task.threshold,
            "extrapolates": task.extrapolates,
        }
        for name, task in TASKS.items()
        if any(card.task == name for card in cards)
    }
    return {
        "horizons": horizons,
        "learning_rates": rates,
        "passing_rates": passing,
        "tasks": tasks,
        "budget": dataclasses.asdict(budget),
        "runs": list({_run_id(r): r for c in [*cards, *grid] for r in c.runs}.values()),
        **({"grid_horizons": _horizons(grid)} if grid else {}),
        **({"gradient_horizons": gradient_horizons} if gradient_horizons else {}),
    }


def _horizons(cards: Sequence[Card]) -> dict[str, dict[str, int | None]]:
    horizons: dict[str, dict[str, int | None]] = {}
    for card in cards:
        horizons.setdefault(lab_name(card.cell, card.cell_kwargs), {})[card.task] = card.horizon
    return horizons


RATE_COLUMNS = (
    Column("cell", "cell"),
    Column("task", "task"),
    Column("sweep_best", "best rate of the sweep", "{:g}"),
    Column("rates", "rate each difficulty passed at"),
)


def rate_rows(cards: Sequence[Card]) -> list[dict[str, Any]]:
    """Per card: the sweep's best rate and the rate each difficulty of its walk passed at."""
    return [
        {
            "cell": cell_label(lab_name(card.cell, card.cell_kwargs)),
            "task": card.task,
            "sweep_best": card.learning_rate,
            "rates": ", ".join(f"{d}: {r:g}" for d, r in sorted(card.rates.items())) or "–",
        }
        for card in cards
    ]


def shortcut_rows(
    cards: Sequence[Card], grid: Sequence[Card], max_dials: int | None = None
) -> list[dict[str, Any]]:
    """Per card: the protocol's horizon and rate beside the whole grid's, and their run counts."""
    return [
        {
            "cell": cell_label(lab_name(card.cell, card.cell_kwargs)),
            "task": card.task,
            "protocol": horizon_text(card.task, card.horizon, max_dials),
            "grid": horizon_text(full.task, full.horizon, max_dials),
            "protocol_rate": card.learning_rate,
            "grid_rate": full.learning_rate,
            "protocol_runs": len(card.runs),
            "grid_runs": len(full.runs),
            "same": "yes" if card.horizon == full.horizon else "**no**",
        }
        for card, full in zip(cards, grid, strict=True)
    ]


def task_columns(
    task_names: Sequence[str], gradient_length: int | None = None, bpc: bool = False
) -> tuple[Column, ...]:
    """The horizons table's columns: the cell, one per task (its dial in the header), gradients.

    Then the gradient horizon at initialization, measured over ``gradient_length`` steps (None:
    no such column), and with ``bpc`` the language model's test bits per character.
    """
    columns = (
        Column("cell", "cell"),
        *(Column(name, f"{name} ({DIAL_NAMES[name]})") for name in task_names),
    )
    if gradient_length is not None:
        columns = (*columns, Column(GRADIENT_KEY, column_header(gradient_length)))
    if bpc:
        columns = (*columns, Column(BPC_KEY, "LM test bpc (experiments/results/lm)"))
    return columns


BPC_KEY = "lm_bpc"


def lm_bpc(path) -> dict[str, str]:
    """Each cell's language-model test bpc, ``mean ± sd``, from the LM study's results (if any)."""
    if not path.exists():
        return {}
    results = json.loads(path.read_text())["bpc"]
    return {cell: f"{r['mean']:.3f} ± {r['sd']:.3f}" for cell, r in results.items()}


def walked(task_name: str, max_dials: int | None = None) -> tuple[int, ...]:
    """The difficulties a lab walks for a task: its dials, the first ``max_dials`` of them."""
    return TASKS[task_name].dials[:max_dials]


def horizon_text(task_name: str, horizon: int | None, max_dials: int | None = None) -> str | None:
    """A horizon as tables show it: ``≥ 256`` at the last difficulty walked (none beyond)."""
    if horizon is None:
        return None
    return f"≥ {horizon}" if horizon == walked(task_name, max_dials)[-1] else str(horizon)


def horizon_rows(
    horizons: dict[str, dict[str, int | None]],
    gradient_horizons: dict[str, dict[str, Any]] | None = None,
    max_dials: int | None = None,
    bpc: dict[str, str] | None = None,
    task_names: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """One row per cell: its label, its horizon per task, its gradient horizon at initialization.

    A task horizon of None shows as a dash (nothing passes); a gradient horizon shows as
    ``"37"``, or ``"> 511"`` when it never vanished within the steps measured.
    """
    gradients = gradient_horizons or {}
    return [
        {
            "cell": cell_label(cell),
            **dict.fromkeys(task_names, NOT_RUN),
            **{t: horizon_text(t, h, max_dials) for t, h in tasks.items()},
            **({GRADIENT_KEY: gradients[cell]["text"]} if cell in gradients else {}),
            **({BPC_KEY: (bpc or {}).get(cell)} if bpc else {}),
        }
        for cell, tasks in horizons.items()
    ]


def _metric_text(run: dict[str, Any]) -> str:
    if len(run["metrics"]) == 1:
        return f"{next(iter(run['metrics'].values())):.4f}"
    return ", ".join(f"{d}: {m:.2f}" for d, m in run["metrics"].items())


def _rows_text(run: dict[str, Any]) -> str | None:
    """The share of held-out sequences with every scored step right (several scored steps)."""
    task = TASKS[run["task"]]
    if task.regression or task.extrapolates:
        return None  # No "right" in a regression; one scored step: the metric already says it.
    return ", ".join(f"{share:.2f}" for share in run["rows_right"].values())


def run_rows(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run; a run evaluated at several test lengths lists each length's metric."""
    return [
        {
            **{key: run[key] for key in ("task", "learning_rate", "seed", "steps", "seconds")},
            "cell": cell_label(lab_name(run["cell"], run.get("cell_kwargs", ""))),
            "difficulty": "1-40" if run["difficulty"] is None else run["difficulty"],
            "metric": _metric_text(run),
            "rows_right": _rows_text(run),
            "chance": run["chance"],
            "threshold": run["threshold"],
            "passed": ", ".join(str(d) for d, ok in run["passed"].items() if ok) or "no",
            "parameters": run["parameters"],
        }
        for run in runs
    ]


def heatmap_figure(
    horizons: dict[str, dict[str, int | None]],
    task_names: Sequence[str],
    max_dials: int | None = None,
):
    """Cells x tasks: colour = share of the walked difficulties passed, the horizon written in.

    The share, not the count, so that passing a task's last difficulty is the same colour
    whether the task walks three difficulties or five.
    """
    cells = list(horizons)
    grid = np.zeros((len(cells), len(task_names)))
    fig, (ax,) = reporting.new_figure(
        width=1.7 * len(task_names) + 2.5, height=0.45 * len(cells) + 1.8
    )
    for i, cell in enumerate(cells):
        for j, name in enumerate(task_names):
            horizon = horizons[cell].get(name)
            dials = walked(name, max_dials)
            grid[i, j] = 0 if horizon is None else (dials.index(horizon) + 1) / len(dials)
            # viridis is dark at the bottom: white text there, black on the light end.
            colour = "white" if grid[i, j] < 0.5 else "black"
            text = horizon_text(name, horizon, max_dials) or "–"
            text = text if name in horizons[cell] else NOT_RUN
            ax.text(j, i, text, ha="center", va="center", color=colour)
    ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    labels = [f"{n.replace('_', ' ')}\n({DIAL_NAMES[n]})" for n in task_names]
    ax.set_xticks(range(len(task_names)), labels)
    ax.set_yticks(range(len(cells)), [cell_label(c) for c in cells])
    ax.set_title("Horizon: the largest difficulty 2 of 3 seeds pass (colour: share passed)")
    return fig


def curves_figure(cards: Sequence[Card], task_names: Sequence[str]):
    """Per task, each cell's held-out metric against steps at the base difficulty, best rate.

    One line per seed trained there (a colour per cell): one seed alone can mislead, e.g. a
    SimpleRNN whose seed 0 never learns parity while seeds 1 and 2 do.
    """
    cols = min(3, len(task_names))
    rows = math.ceil(len(task_names) / cols)
    fig, axes = reporting.new_figure(rows, cols, width=4.5, height=3.4)
    for ax, name in zip(axes, task_names, strict=False):
        task = TASKS[name]
        for index, card in enumerate(c for c in cards if c.task == name):
            base = None if task.extrapolates else task.dials[0]
            runs = [
                r
                for r in card.runs
                if r["learning_rate"] == card.learning_rate and r["difficulty"] == base
            ]
            for number, run in enumerate(runs):
                steps = [p["step"] for p in run["curve"]]
                values = [p["metrics"][task.dials[0]] for p in run["curve"]]
                cell = lab_name(card.cell, card.cell_kwargs)
                label = cell_label(cell) if number == 0 else None
                ax.plot(steps, values, color=f"C{index}", lw=1.2, alpha=0.8, label=label)
        ax.axhline(task.threshold, color="k", ls="--", lw=0.8)
        ax.axhline(task.chance, color="gray", ls=":", lw=0.8)
        ax.set_title(f"{name} ({DIAL_NAMES[name]} {task.dials[0]})")
        ax.set_xlabel("step")
        ax.set_ylabel(task.metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(task_names) :]:
        ax.axis("off")
    return fig
