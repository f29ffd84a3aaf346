"""The cell card: a cell against a baseline on one page, each measure beside its noise.

    python -m experiments.card CELL [--against lstm] [--kwargs JSON] [--seeds N] [--workers N]
        [--quick] [--out DIR] [--store DIR] [--workdirs DIR]
    python -m experiments.card --index [--out DIR]

CELL is a registered name or ``package.module:ClassName`` (``--kwargs``: its constructor
arguments, as ``rnn_jax.testing`` takes them). The card first proves the cell right
(``check_cell``: a cell that fails is one line naming the property, and nothing is written),
then measures it beside the baseline:

* what it costs: parameters in each study's model, the evaluation path ``resolve`` picks, and
  the training step's speed on IMDB and on the language model, timed side by side
  (``experiments.lib.card.cost``);
* what it can do: its horizons on the lab's five tasks (``experiments.lab``'s protocol), with
  the attention control's MQAR horizon for scale;
* how well it models text: test bits per character over seeds (``experiments.lm``'s runs);
* how well it classifies: IMDB test accuracy at the course's settings over seeds
  (``experiments.lib.card.imdb``, the shootout's training).

Every run is the studies' own and is kept as a record under ``--store`` (default
``experiments/results``: the lab's ``lab/runs``, the LM study's ``lm/runs``, the cards'
``cards/imdb_runs``); a run recorded there with the same budget and record version is read
back, so a card costs the new cell's runs only, and a stale one is trained again. Writes
``card.md`` (the page), ``card.json``, ``card.png`` and ``measures.md`` / ``.csv`` to
``--out`` (default ``experiments/results/cards/<cell>``, or ``cards/against_<baseline>/<cell>``
against another baseline than the LSTM). ``--index`` writes ``index.md`` over the cards one
level under ``--out``, all against one baseline, ranking the cells measure by measure.
"""

import argparse
import functools
import json
import os
import sys
import time
import types
from collections.abc import Sequence
from pathlib import Path

from experiments.lib import flags, processes, reporting
from experiments.lib.card import cost, imdb, index, page
from experiments.lib.lab import protocol as lab_protocol
from experiments.lib.lab import runs as lab_runs
from experiments.lib.lab import workers as lab_workers
from experiments.lib.lab.control import ATTENTION, cell_spec
from experiments.lib.lab.report import cell_label, lab_name
from experiments.lib.lab.tasks import TASKS
from experiments.lib.lm import runs as lm_runs
from rnn_jax.cells import get_cell_class, parse_cell_kwargs

REPEATS, QUICK_REPEATS = 20, 3
CARDS = flags.RESULTS_DIR / "cards"


def card_name(cell: str, cell_kwargs: str = "") -> str:
    """The card's folder name: the cell (and its arguments) as a file name."""
    return flags.file_stem(cell, cell_kwargs)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = flags.make_parser("card", __doc__.splitlines()[0], training=False)
    parser.add_argument("cell", nargs="?", help="a registered name or package.module:ClassName")
    parser.add_argument("--against", default="lstm", help="the baseline cell (default lstm)")
    flags.add_cell_kwargs(parser, "CELL (not --against)")
    parser.add_argument("--seeds", type=int, help="seeds per measure (default 3; --quick 2)")
    parser.add_argument("--workers", type=int, help="runs at once (default 2; --quick 1)")
    parser.add_argument("--store", type=Path, help="where run records live")
    parser.add_argument("--workdirs", type=Path, help="where runs train")
    parser.add_argument("--index", action="store_true", help="write the index of --out's cards")
    args = flags.parse(parser, argv)
    results = flags.QUICK_RESULTS_DIR if args.quick else flags.RESULTS_DIR
    if args.out == results / "card":  # flags' default: the cards' folder instead.
        args.out = results / "cards"
        if not args.index:  # One index per baseline: a card against another has its folder.
            if args.against != "lstm":
                args.out = args.out / f"against_{card_name(args.against)}"
            args.out = args.out / card_name(args.cell or "", args.kwargs)
    if args.index:
        return args
    if not args.cell:
        parser.error("CELL is needed (or --index)")
    try:  # A module that does not import, or bad arguments: one line, nothing written.
        get_cell_class(cell_spec(args.cell))
        get_cell_class(cell_spec(args.against))
    except ValueError as error:
        parser.error(str(error))
    flags.check_cell_kwargs(parser, args.kwargs)
    if args.cell == ATTENTION:
        parser.error("attention is the lab's control, not a cell: it has no card")
    args.seeds = args.seeds or (2 if args.quick else 3)
    args.workers = args.workers or (1 if args.quick else 2)
    args.store = args.store or results
    args.workdirs = args.workdirs or flags.default_workdirs("card", args.quick)
    return args


def conformance(args) -> list[dict]:
    """``check_cell``'s lines; exits with one line naming the property when one fails."""
    from rnn_jax.testing import check_cell

    lines = []

    def report(name: str, passed: bool, detail: str, seconds: float) -> None:
        lines.append({"property": name, "passed": passed, "detail": detail, "seconds": seconds})
        print(f"{'PASS' if passed else 'FAIL'}  {name}: {detail} ({seconds:.1f} s)", flush=True)

    cell_class = get_cell_class(cell_spec(args.cell))
    try:
        check_cell(cell_class, report=report, **parse_cell_kwargs(args.kwargs))
    except AssertionError as error:
        print(f"error: no card: {error}", file=sys.stderr)
        sys.exit(1)
    return lines


def run_job(job: tuple, args, lab_budget, lm_budget, rates) -> tuple:
    """One run of the card, whatever its study: ``(kind, key)`` -> ``(kind, key, result)``."""
    kind, key = job
    if kind == "lab":
        folder = Path(args.store) / "lab" / "runs"
        return kind, key, lab_workers.one_card(key, lab_budget, folder, rates)
    if kind == "lm":
        place = types.SimpleNamespace(
            out=Path(args.store) / "lm",
            workdirs=Path(args.workdirs) / "lm",
            data_dir=args.data_dir,
            cache_dir=args.cache_dir,
        )
        return kind, key, lm_runs.run(key, lm_budget, place)
    return kind, key, imdb.run(key, args)


def jobs_of(args, lm_budget) -> list[tuple]:
    """Every run the card needs, the longest first (so that workers finish together)."""
    who = [(args.cell, args.kwargs), (args.against, "")]
    seeds = range(args.seeds)
    jobs = [("imdb", imdb.RunKey(c, s, k)) for c, k in who for s in seeds]
    jobs += [("lm", lm_runs.RunKey(c, s, lm_budget.width, k)) for c, k in who for s in seeds]
    jobs += [("lab", (c, task, k)) for c, k in who for task in TASKS]
    return [*jobs, ("lab", (ATTENTION, "mqar", ""))]


def gather(args, results: list[tuple], lab_budget) -> dict:
    """What the runs measured, by study, for the cell and the baseline."""
    mine, theirs = (args.cell, args.kwargs), (args.against, "")

    def who(cell, kwargs):
        return (
            "cell" if (cell, kwargs) == mine else "baseline" if (cell, kwargs) == theirs else None
        )

    lab, lm, imdb_values = {}, {"curves": {"cell": [], "baseline": []}}, {}
    for kind, key, result in results:
        if kind == "lab":
            cell, task, kwargs = key
            if cell == ATTENTION:
                lab["attention_mqar"] = result.horizon
            else:
                lab.setdefault(task, {})[who(cell, kwargs)] = result.horizon
                lab.setdefault("rates", {}).setdefault(task, {})[who(cell, kwargs)] = {
                    str(d): r for d, r in result.rates.items()
                }
        elif kind == "lm":
            side = who(key.cell, key.cell_kwargs)
            lm.setdefault(side, []).append(result["test_bpc"])
            lm["curves"][side].append(result["curve"])
        else:
            imdb_values.setdefault(who(key.cell, key.cell_kwargs), []).append(
                result["test_accuracy"]
            )
    return {
        "lab": {
            "horizons": {t: lab[t] for t in TASKS},
            "rates": lab["rates"],
            "attention_mqar": lab["attention_mqar"],
            "max_dials": lab_budget.max_dials,
            "budget": lab_budget.__dict__,
        },
        "lm": lm,
        "imdb": imdb_values,
    }


def main(argv: Sequence[str] | None = None) -> None:
    started = time.perf_counter()
    args = parse_args(argv)
    if args.index:
        index.write(args)
        return
    if args.quick:  # A smoke run's numbers mean nothing; compiling is most of its time.
        os.environ["XLA_FLAGS"] = (
            f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0"
        )
    lines = conformance(args)
    lab_budget = lab_runs.QUICK if args.quick else lab_runs.FULL
    lm_budget = lm_runs.QUICK if args.quick else lm_runs.FULL
    rates = lab_protocol.QUICK_LEARNING_RATES if args.quick else lab_protocol.LEARNING_RATES
    run = functools.partial(
        run_job, args=args, lab_budget=lab_budget, lm_budget=lm_budget, rates=rates
    )
    results = processes.map_jobs(run, jobs_of(args, lm_budget), args.workers)
    gathered = gather(args, results, lab_budget)
    gathered["conformance"] = lines
    gathered["parameters"] = {
        who: cost.parameters(cell, kwargs, args, lm_budget, lab_budget)
        for who, cell, kwargs in (("cell", args.cell, args.kwargs), ("baseline", args.against, ""))
    }
    gathered["paths"] = cost.evaluation_path(args.cell, args.kwargs)
    repeats = QUICK_REPEATS if args.quick else REPEATS
    gathered["speed"] = cost.speeds(args.cell, args.kwargs, args.against, args, lm_budget, repeats)
    name, against = cell_label(lab_name(args.cell, args.kwargs)), cell_label(args.against)
    title = f"Cell card: {name} against {against}"
    report = reporting.Report(args, title, page="card", started=started)
    rows = page.measures(gathered)
    report.text(page.summary(name, against, rows, gathered, lab_budget, lm_budget, args))
    report.table("measures", rows, page.COLUMNS, f"{name} against {against}")
    report.figure("card", page.figure(gathered, name, against), "The measures behind the card")
    report.text(page.rules_text(gathered))
    report.json(
        "card",
        {
            "cell": args.cell,
            "cell_kwargs": args.kwargs,
            "folder": args.out.name,
            "against": args.against,
            "label": name,
            "seeds": args.seeds,
            "rows": [{k: v for k, v in r.items() if k != "values"} for r in rows],
            **gathered,
            "seconds": time.perf_counter() - started,
        },
    )
    report.finish()
    print(json.dumps({r["measure"]: r["verdict"] for r in rows}, indent=1))


if __name__ == "__main__":
    main()
