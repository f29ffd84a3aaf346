"""Language modelling on the reviews' text: bits per character of every cell, over seeds.

    python -m experiments.lm [--cells control,rnn,lstm,...] [--seeds N] [--baseline CELL]
        [--match-params CELL] [--workers N] [--quick] [--out DIR] [--workdirs DIR]

Every cell (a registered name, ``control`` -- the lab's memoryless control -- or a researcher's
``package.module:ClassName``) is trained as a byte-level language model at the same character
budget and width (``experiments.lib.lm.runs.FULL``; ``--match-params CELL`` instead gives each
cell the width at which it has CELL's parameter count), once per seed, through the training
pipeline (``configs/lm_lstm.py``). Writes ``report.md`` (the tables, the curves, two samples per
cell), ``table.md`` (test bits per character, mean ± sd over seeds, and the paired difference to
``--baseline`` with its 95% interval and a verdict, ``experiments.lib.noise``),
``baselines.md`` (uniform, unigram, add-k bigram, Kneser-Ney n-grams counted on the training
text), ``curves.png`` and ``results.json`` (``bpc[cell] = {mean, sd, runs}``, the baselines, every
run's record). Each finished run is a record under ``<out>/runs/``; a killed study resumes,
each unfinished run from its own last checkpoint (its workdir under ``--workdirs``).
"""

import argparse
import dataclasses
import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path

from experiments.lib import flags, processes, reporting
from experiments.lib.lab.control import CONTROL
from experiments.lib.lab.report import cell_label
from experiments.lib.lm import baselines, runs
from experiments.lib.lm import report as lm_report

DEFAULT_CELLS = ("control", "rnn", "lstm", "gru", "mgu", "mingru", "minlstm", "rglru")
QUICK_CELLS = ("control", "lstm", "mingru")
KN_ORDERS, QUICK_KN_ORDERS = (3, 4, 5, 6, 7, 8), (2, 3)


def names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = flags.make_parser("lm", __doc__.splitlines()[0], training=False)
    parser.add_argument(
        "--cells",
        help=f"comma-separated (default: {','.join(DEFAULT_CELLS)}; with --quick: "
        f"{','.join(QUICK_CELLS)})",
    )
    parser.add_argument("--seeds", type=int, help="seeds per cell (default 3; with --quick 2)")
    parser.add_argument("--baseline", default="lstm", help="the cell differences are taken to")
    parser.add_argument(
        "--match-params", help="give each cell the width at which it has this cell's parameters"
    )
    flags.add_cell_kwargs(parser, "every cell but --baseline and control")
    parser.add_argument("--workers", type=int, default=1, help="runs trained at once")
    parser.add_argument(
        "--long-run",
        action="store_true",
        help="instead: train configs/lm_lstm.py as it is (about an hour) and report its test "
        "bpc, curve and samples (into <out>/long_run)",
    )
    parser.add_argument(
        "--time-vmapped-seeds",
        action="store_true",
        help="instead of training: time --seeds seeds' steps one by one against one vmapped "
        "step of them, for each of --cells (into <out>/vmapped_seeds)",
    )
    parser.add_argument(
        "--workdirs",
        type=str,
        help="where the runs train (default runs/experiments/lm, or _quick)",
    )
    args = flags.parse(parser, argv)
    args.cells = names(args.cells or ",".join(QUICK_CELLS if args.quick else DEFAULT_CELLS))
    args.seeds = args.seeds or (2 if args.quick else 3)
    args.workdirs = args.workdirs or str(flags.default_workdirs("lm", args.quick))
    for cell in {*args.cells, args.baseline, args.match_params} - {None}:
        try:
            lm_report.label(cell)
        except ValueError as error:
            parser.error(str(error))
    flags.check_cell_kwargs(parser, args.kwargs)
    if args.baseline not in args.cells:
        parser.error(f"--baseline {args.baseline} is not among --cells {','.join(args.cells)}")
    if args.seeds < 1 or args.workers < 1:
        parser.error("--seeds and --workers take positive integers")
    return args


def kwargs_of(cell: str, args) -> str:
    """``--kwargs`` for every cell but the baseline and the control."""
    return "" if cell in (args.baseline, CONTROL) else args.kwargs


def widths(args, budget: runs.Budget) -> dict[str, int]:
    """Each cell's width: the budget's, or the one matching ``--match-params``'s parameters."""
    if not args.match_params:
        return dict.fromkeys(args.cells, budget.width)
    target = runs.parameters(args.match_params, budget.width, budget)
    return {
        cell: runs.matched_width(cell, target, budget, kwargs_of(cell, args)) for cell in args.cells
    }


def baseline_rows(args, budget: runs.Budget) -> list[dict]:
    """The count-based models' rows (``baselines.table``).

    Stored in ``baselines.json`` and read back while the text, the orders and the budget are
    the same: counting them takes minutes.
    """
    from rnn_jax.data import text

    orders = QUICK_KN_ORDERS if args.quick else KN_ORDERS
    key = {
        "version": baselines.VERSION,
        "orders": list(orders),
        "max_examples": budget.max_examples,
        "characters": budget.characters,
    }
    path = Path(args.out) / "baselines.json"
    if path.exists() and (stored := json.loads(path.read_text())).get("key") == key:
        return stored["rows"]
    read = text.load_review_text(
        validation_fraction=0.04,  # configs/lm_lstm.py's.
        data_dir=args.data_dir or None,
        cache_dir=args.cache_dir or None,
        max_examples=budget.max_examples or None,
    )
    rows = baselines.table(read, orders, budget.characters)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "rows": rows}, indent=2) + "\n")
    return rows


VMAPPED_COLUMNS = (
    reporting.Column("cell", "cell"),
    reporting.Column("seeds", "seeds"),
    reporting.Column("one by one characters/s", "one by one, characters/s", "{:,.0f}"),
    reporting.Column("vmapped characters/s", "vmapped, characters/s", "{:,.0f}"),
    reporting.Column("vmapped / one by one", "vmapped / one by one", "{:.2f}"),
)


def time_vmapped_seeds(args, budget: runs.Budget) -> None:
    """``--time-vmapped-seeds``: the table ``experiments.lib.lm.vmapped`` measures."""
    from experiments.lib.lm import vmapped

    args.out = args.out / "vmapped_seeds"  # Apart from the study's own report.
    report = reporting.Report(args, "Seeds one by one or as one vmapped program")
    rounds = 3 if args.quick else 10
    rows = [vmapped.time_seeds(cell, args.seeds, budget, args, rounds) for cell in args.cells]
    report.text(
        f"The language model's training step at the study's shape ({budget.streams} streams x "
        f"{budget.chunk} characters, width {budget.width}), {args.seeds} seeds, {rounds} "
        "interleaved rounds in one process; the speed of the median round."
    )
    report.table("table", rows, VMAPPED_COLUMNS, "Characters per second")
    report.finish()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.time_vmapped_seeds:
        time_vmapped_seeds(args, runs.QUICK if args.quick else runs.FULL)
        return
    if args.long_run:
        from experiments.lib.lm import long_run

        long_run.main(args)
        return
    if args.quick:  # A smoke run's numbers mean nothing; compiling is most of its time.
        os.environ["XLA_FLAGS"] = (
            f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0"
        )
    budget = runs.QUICK if args.quick else runs.FULL
    report = reporting.Report(args, "Language modelling: bits per character on the reviews")
    width = widths(args, budget)
    keys = [
        runs.RunKey(c, s, width[c], kwargs_of(c, args))
        for c in args.cells
        for s in range(args.seeds)
    ]
    records = processes.map_jobs(
        functools.partial(runs.run, budget=budget, args=args), keys, args.workers
    )
    results = lm_report.bpc_results(records, args.baseline)
    base_rows = baseline_rows(args, budget)
    resolved = lm_report.smallest_resolved(results)
    report.text(
        f"Each cell is a byte-level language model (embedding {budget.embed}, "
        f"{budget.layers} layer(s) of width "
        + (
            f"{budget.width}"
            if not args.match_params
            else f"matched to {cell_label(args.match_params)}'s parameters"
        )
        + f", a softmax over 256 bytes and the review boundary) trained on "
        f"{budget.characters / 1e6:.2f} M characters ({budget.steps} steps of {budget.streams} "
        f"streams x {budget.chunk} characters, truncated backpropagation through time with the "
        f"state reset at every review), Adam {budget.learning_rate:g} with cosine decay, "
        f"gradients clipped at 1, at seeds 0-{args.seeds - 1}; each cell with its own default "
        "activation (the minGRU's and minLSTM's linear candidate). Test: bits per character "
        + (
            "on every test review (25,000, 31.9 M bytes)"
            if not budget.max_examples
            else f"on the first {budget.max_examples} test reviews"
        )
        + f", each from its own beginning, its end included. Differences to "
        f"{cell_label(args.baseline)} are paired by seed; verdict: {lm_report.noise.RULE}. "
        + (
            f"The smallest difference these seeds resolve: {resolved:.4f} bpc."
            if resolved is not None
            else ""
        )
    )
    rows = lm_report.cell_rows(records, results)
    report.table("table", rows, lm_report.CELL_COLUMNS, "Test bits per character")
    report.table("baselines", base_rows, lm_report.BASELINE_COLUMNS, "Count-based baselines")
    report.figure("curves", lm_report.curves_figure(records), "Validation curves")
    report.text(
        "## Samples (temperature 0.8, the first seed's final parameters)\n\n"
        + lm_report.samples_text(records)
    )
    report.json(
        "results",
        {
            "budget": dataclasses.asdict(budget),
            "baseline": args.baseline,
            "bpc": results,
            "baselines": base_rows,
            "smallest_resolved_difference": resolved,
            "runs": records,
        },
    )
    report.finish()


if __name__ == "__main__":
    main()
