"""The evidence for the default learning-rate schedule: constant vs cosine decay, on validation.

    python -m experiments.schedule [--cells lstm rnn] [--seeds 0 1 2] [--quick] [--out DIR]
        [--workdirs DIR] [--epochs N]

``configs/default.py`` decays Adam's learning rate from 1e-3 to 0 on a cosine over the run
(``schedule='warmup_cosine'``, no warmup); the course keeps it constant. For each cell and seed
this trains the shootout's config (``configs/<cell>.py``) both ways into
``<workdirs>/<cell>/<schedule>/seed_<seed>``. The seed also draws the validation split, which
both schedules share. A schedule is judged as every config here is chosen: by its best
validation accuracy. The test accuracy of that epoch is shown beside it, and is not used.
"""

import statistics
from collections.abc import Sequence

from experiments.lib import flags, reporting, training_runs
from experiments.lib.reporting import Column, cell_label
from experiments.lib.shootout_runs import CONFIGS

SCHEDULES = ("constant", "warmup_cosine")

RUN_COLUMNS = (
    Column("cell", "cell"),
    Column("schedule", "schedule"),
    Column("seed", "seed"),
    Column("best_val_accuracy", "best val accuracy", "{:.4f}"),
    Column("best_epoch", "best epoch"),
    Column("test_accuracy", "test accuracy (that epoch)", "{:.4f}"),
    Column("seconds_per_epoch", "s/epoch (median)", "{:.1f}"),
)
SUMMARY_COLUMNS = (
    Column("cell", "cell"),
    Column("seeds", "seeds"),
    Column("constant_val", "best val accuracy, constant (mean)", "{:.4f}"),
    Column("cosine_val", "best val accuracy, cosine (mean)", "{:.4f}"),
    Column("cosine_wins", "seeds where cosine is higher on val"),
    Column("constant_test", "test accuracy, constant (mean)", "{:.4f}"),
    Column("cosine_test", "test accuracy, cosine (mean)", "{:.4f}"),
)


def run_row(cell: str, schedule: str, seed: int, result: training_runs.RunResult) -> dict:
    s = result.summary
    return {
        "cell": cell_label(cell),
        "schedule": schedule,
        "seed": seed,
        "best_val_accuracy": s["best_val_accuracy"],
        "best_epoch": s["best_epoch"],
        "test_accuracy": s["test_accuracy"],
        "seconds_per_epoch": s["seconds_per_epoch"],
    }


def summary_row(cell: str, rows: list[dict]) -> dict:
    """Means over the seeds, and at how many seeds cosine beat constant on validation."""
    by = {(r["schedule"], r["seed"]): r for r in rows if r["cell"] == cell_label(cell)}
    seeds = sorted({seed for _, seed in by})

    def mean(schedule: str, key: str) -> float:
        return statistics.fmean(by[schedule, seed][key] for seed in seeds)

    wins = sum(
        by["warmup_cosine", s]["best_val_accuracy"] > by["constant", s]["best_val_accuracy"]
        for s in seeds
    )
    return {
        "cell": cell_label(cell),
        "seeds": " ".join(map(str, seeds)),
        "constant_val": mean("constant", "best_val_accuracy"),
        "cosine_val": mean("warmup_cosine", "best_val_accuracy"),
        "cosine_wins": f"{wins} of {len(seeds)}",
        "constant_test": mean("constant", "test_accuracy"),
        "cosine_test": mean("warmup_cosine", "test_accuracy"),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = flags.make_parser("schedule", __doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", choices=list(CONFIGS), default=["lstm", "rnn"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = flags.parse(parser, argv)
    report = reporting.Report(args, "Learning-rate schedule: constant vs cosine decay")
    rows = []
    for cell in args.cells:
        for seed in args.seeds:
            for schedule in SCHEDULES:
                config = training_runs.make_config(
                    CONFIGS[cell].get_config(), args, schedule=schedule, seed=seed
                )
                name = f"{cell_label(cell)}, {schedule}, seed {seed}"
                workdir = args.workdirs / cell / schedule / f"seed_{seed}"
                rows.append(run_row(cell, schedule, seed, training_runs.run(name, config, workdir)))
    base = training_runs.make_config(CONFIGS[args.cells[0]].get_config(), args)
    report.text(
        f"The shootout's configs (`configs/<cell>.py`): {base.optimizer} at "
        f"{base.learning_rate:g}, batch {base.batch_size}, {base.num_epochs} epochs, "
        f"{base.validation_fraction:.0%} of the training reviews held out for validation (drawn "
        "by the seed, shared by both schedules). `constant` keeps the learning rate; "
        "`warmup_cosine` (the default, no warmup) decays it to 0 at the last step. Each run "
        "is judged by its best validation accuracy; the test accuracy of that epoch is shown, "
        "not used."
    )
    summaries = [summary_row(cell, rows) for cell in args.cells]
    report.table("table", summaries, SUMMARY_COLUMNS, "Means over seeds")
    report.table("runs", rows, RUN_COLUMNS, "Every run")
    report.finish()


if __name__ == "__main__":
    main()
