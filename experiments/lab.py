"""The cell lab: each cell's horizon on tasks of memory, recall and state tracking.

    python -m experiments.lab [--cells rnn,lstm,...] [--kwargs JSON] [--tasks adding,parity,...]
        [--workers N] [--layers N] [--steps N] [--max-dials N] [--no-early-stop] [--exhaustive]
        [--quick] [--out DIR]

For every cell (a registered name, ``control`` -- the memoryless control --, ``attention`` --
two layers of causal attention, the positive control -- or a researcher's
``package.module:ClassName``, with ``--kwargs`` for its constructor) and every task
(``experiments.lib.lab.tasks``): a learning-rate sweep at the base difficulty, then the
difficulty doubling until the cell fails at every rate, seeds spent at the frontier
(``experiments.lib.lab.protocol``). Writes ``report.md``, ``horizons.md`` (cells x tasks, and
each cell's language-model bits per character when ``experiments/results/lm`` holds them),
``rates.md`` (the rate each difficulty passed at), ``runs.md`` (every run), ``results.json``
(``horizons``: cell -> task -> horizon or null, and every run behind it; ``gradient_horizons``:
cell -> how many steps back the untrained model's last prediction still feels its input,
``experiments.lib.lab.gradients``), ``horizons.png`` and ``curves.png``. Each finished run is
a file under ``<out>/runs/``: a killed lab loses only the run in flight, and a rerun resumes
(the gradient horizons, one gradient per cell, are measured again). ``--layers``, ``--steps``,
``--max-dials`` and ``--no-early-stop`` change every run's budget: a run found with another
budget is trained again and overwritten, so give such a lab its own ``--out``.
``--exhaustive`` keeps its whole-budget runs apart, under ``<out>/grid_runs/``.
"""

import argparse
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from experiments.lib import flags, reporting
from experiments.lib.lab import gradients as lab_gradients
from experiments.lib.lab import protocol as lab_protocol
from experiments.lib.lab import replay as lab_replay
from experiments.lib.lab import report as lab_report
from experiments.lib.lab import runs as lab_runs
from experiments.lib.lab import workers as lab_workers
from experiments.lib.lab.control import ATTENTION, ATTENTION_TASKS, CONTROL
from experiments.lib.lab.report import cell_label
from experiments.lib.lab.tasks import TASKS

DEFAULT_CELLS = (
    "control",
    "attention",
    "rnn",
    "lstm",
    "gru",
    "mgu",
    "mingru",
    "minlstm",
    "rglru",
)
# --quick smokes the pipeline with one cell of each kind, every task (timed in experiments/README).
QUICK_CELLS = ("control", "attention", "rnn", "mingru")
# The language-modelling study's committed table, whose bits per character join the horizons.
LM_RESULTS = flags.RESULTS_DIR / "lm" / "results.json"


def positive(text: str) -> int:
    """A flag's value as an integer >= 1 (argparse reports anything else in one line)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: a positive integer")
    return value


def names(text: str) -> list[str]:
    """A comma-separated flag value as a list (``module:Class`` keeps its colon)."""
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_args(argv: Sequence[str] | None):
    parser = flags.make_parser("lab", __doc__.splitlines()[0], data=False, training=False)
    parser.add_argument(
        "--cells",
        help="comma-separated registered names, control, or package.module:ClassName "
        f"(default: {','.join(DEFAULT_CELLS)}; with --quick: {','.join(QUICK_CELLS)})",
    )
    flags.add_cell_kwargs(parser, "every cell but the controls")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks")
    parser.add_argument("--layers", type=positive, help="recurrent layers (default: the budget's)")
    parser.add_argument("--steps", type=positive, help="most steps per run (default: the budget's)")
    parser.add_argument(
        "--max-dials",
        type=positive,
        help="walk only each task's first N difficulties (default: all)",
    )
    parser.add_argument(
        "--no-early-stop",
        action="store_true",
        help="train every run to its last step and report the metric there (default: stop at "
        "the first evaluation that passes)",
    )
    parser.add_argument(
        "--workers",
        type=positive,
        default=1,
        help="cards (cell x task) trained at once, one process each: e.g. one per core",
    )
    parser.add_argument(
        "--replay",
        type=Path,
        help="instead of training: today's protocol on the runs another lab's results.json "
        "recorded (e.g. another machine's): their horizons card by card (replay.md)",
    )
    parser.add_argument(
        "--exhaustive",
        action="store_true",
        help="also train every rate, seed and difficulty, and compare its horizons with the "
        "protocol's (the check that the shortcuts change no horizon; costly)",
    )
    args = flags.parse(parser, argv)
    cells = args.cells or ",".join(QUICK_CELLS if args.quick else DEFAULT_CELLS)
    args.cells, args.tasks = names(cells), names(args.tasks)
    for cell in args.cells:
        try:
            cell_label(cell)
        except ValueError as error:
            parser.error(str(error))
    flags.check_cell_kwargs(parser, args.kwargs)
    unknown = [task for task in args.tasks if task not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}: one of {', '.join(TASKS)}")
    return args


def budget_of(args) -> lab_runs.Budget:
    """Every run's budget: the full (or ``--quick``) one, with the flags' changes."""
    budget = lab_runs.QUICK if args.quick else lab_runs.FULL
    changes = {"layers": args.layers, "steps": args.steps, "max_dials": args.max_dials}
    changes = {name: value for name, value in changes.items() if value is not None}
    if args.no_early_stop:
        changes["early_stop"] = False
    return dataclasses.replace(budget, **changes)


REPLAY_COLUMNS = (
    reporting.Column("cell", "cell"),
    reporting.Column("task", "task"),
    reporting.Column("horizon", "horizon from the recorded runs"),
    reporting.Column("missing", "runs not recorded"),
    reporting.Column("rates", "rate each difficulty passed at"),
)


def _bounds(row: dict, max_dials: int | None) -> str:
    """A replayed horizon: the horizon, or its bounds when missing runs could move it."""
    low, high = (
        lab_report.horizon_text(row["task"], row[k], max_dials) or "–" for k in ("low", "high")
    )
    return low if row["decided"] else f"{low} to {high} (undecided)"


def replay(args, budget, rates) -> None:
    """``--replay``: the recorded lab's horizons under today's protocol, nothing trained."""
    rows = lab_replay.replay(args.replay, args.cells, args.tasks, rates, budget)
    report = reporting.Report(args, "Cell lab: today's protocol replayed on recorded runs")
    report.text(
        f"The runs recorded in {args.replay.name} (command: see that lab's report), replayed "
        "under today's protocol without training: where it asks for a run that lab did not "
        "train, the card is undecided and says how many runs it lacks."
    )
    shown = [
        {
            "cell": cell_label(r["cell"]),
            "task": r["task"],
            "horizon": _bounds(r, budget.max_dials),
            "missing": len(r["missing"]),
            "rates": ", ".join(f"{d}: {v:g}" for d, v in r.get("rates", {}).items()) or "–",
        }
        for r in rows
    ]
    report.table("replay", shown, REPLAY_COLUMNS, "Horizons from the recorded runs")
    report.json("replay", [{**r, "missing": [str(k) for k in r.get("missing", [])]} for r in rows])
    report.finish()


def protocol_text(budget, rates: Sequence[float], length: int) -> str:
    """The report's first paragraph: the budget, the protocol and how to read a horizon."""
    return (
        f"Budget per run: at most {budget.steps} steps of {budget.batch} fresh examples, width "
        f"{budget.width}, {budget.layers} layer(s), Adam with gradients clipped at global norm "
        f"{budget.clip:g}, held-out evaluation ({budget.eval_examples} examples) every "
        f"{budget.eval_every} steps"
        + (
            ", stopping at the first that passes. "
            if budget.early_stop
            else ", never stopping early. "
        )
        + "A run's verdict (its metric and pass) is its final parameters on a second, "
        f"independent draw of {budget.eval_examples} held-out examples. Learning rates swept "
        f"at the base difficulty: {', '.join(f'{r:g}' for r in rates)}. A difficulty holds when "
        "2 of 3 seeds pass at some rate, tried from the best of the sweep (the rates table "
        "says which passed where); the difficulty doubles while seed 0 passes or the "
        "difficulty holds. Horizon: the largest difficulty that holds (a dash: none; ≥: the "
        "last difficulty walked passed, nothing longer tried). Attention is the positive "
        "control: two layers of causal softmax attention at the same width, run on MQAR only "
        "(not run elsewhere: its cost grows with the square of the length). Parity and cycle "
        "navigation train on lengths 1-40; their dial is the test length, beyond every "
        "training length. "
        "Gradient horizon at init: the same model for the adding task, untrained (initialized "
        f"at seed {lab_gradients.INIT_SEED}), on {budget.batch} adding sequences of T={length} "
        "steps: how many steps back from the last step the batch mean of ||d y_T / d x_t|| "
        f"first falls below {lab_gradients.VANISHED:.0%} of its value at the last step "
        f"(> {length - 1}: it never does within T)."
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.quick:
        # A smoke run's numbers mean nothing; compiling is most of its time, and unoptimized CPU
        # code generation cuts that (as tests/conftest.py does). No effect once JAX has started.
        os.environ["XLA_FLAGS"] = (
            f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0"
        )
    budget = budget_of(args)
    rates = lab_protocol.QUICK_LEARNING_RATES if args.quick else lab_protocol.LEARNING_RATES
    if args.replay:
        replay(args, budget, rates)
        return
    report = reporting.Report(args, "Cell lab: horizons on memory, recall and state tracking")

    kwargs = {c: "" if c in (CONTROL, ATTENTION) else args.kwargs for c in args.cells}
    jobs = [
        (cell, task, kwargs[cell])
        for cell in args.cells
        for task in args.tasks
        if cell != ATTENTION or task in ATTENTION_TASKS  # The positive control: recall only.
    ]
    cards = lab_workers.run_cards(jobs, budget, args.out / "runs", rates, args.workers)
    grid = []
    if args.exhaustive:
        # Every run of the grid trains its whole budget: early stopping is a shortcut too.
        whole = dataclasses.replace(budget, early_stop=False)
        grid = lab_workers.run_cards(jobs, whole, args.out / "grid_runs", rates, args.workers, True)
    gradients = lab_gradients.gradient_horizons([(c, kwargs[c]) for c in args.cells], budget)
    length = lab_gradients.measured_length(budget)
    results = lab_report.results(cards, budget, grid, gradients)
    report.text(protocol_text(budget, rates, length))
    bpc = {} if args.quick else lab_report.lm_bpc(LM_RESULTS)
    report.table(
        "horizons",
        lab_report.horizon_rows(results["horizons"], gradients, budget.max_dials, bpc, args.tasks),
        lab_report.task_columns(args.tasks, length, bool(bpc)),
        "Horizons",
    )
    report.table("rates", lab_report.rate_rows(cards), lab_report.RATE_COLUMNS, "Passing rates")
    report.figure(
        "horizons",
        lab_report.heatmap_figure(results["horizons"], args.tasks, budget.max_dials),
        "Horizons, cells x tasks (colour: difficulties passed)",
    )
    report.figure(
        "curves",
        lab_report.curves_figure(cards, args.tasks),
        "Held-out metric per step at the base difficulty (best rate, every seed trained there)",
    )
    if grid:
        report.table(
            "shortcuts",
            lab_report.shortcut_rows(cards, grid, budget.max_dials),
            lab_report.SHORTCUT_COLUMNS,
            "The protocol against every rate, seed and difficulty (--exhaustive)",
        )
    report.table("runs", lab_report.run_rows(results["runs"]), lab_report.RUN_COLUMNS, "Every run")
    report.json("results", results)
    report.finish()


if __name__ == "__main__":
    main()
