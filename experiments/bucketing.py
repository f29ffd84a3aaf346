"""Length bucketing end to end: a shootout config's epoch time at a long max_len, with and without.

    python -m experiments.bucketing [--cell lstm] [--max-len 500] [--bucket-width 50]
                                    [--epochs N] [--quick] [--out DIR] [--workdirs DIR]

Trains ``configs/<cell>.py`` at ``max_len`` twice, identical but for ``bucket_width`` (0, then
the given width; see ``rnn_jax.batching.train_batches``), 2 epochs unless ``--epochs``, and
reports training seconds per epoch, examples/s and accuracy. Without bucketing every batch scans
all ``max_len`` steps; with it, a batch scans its longest review rounded up to the bucket width.
The steps scanned per review are counted too, from the batches the runs drew in epoch 1.
"""

from collections.abc import Sequence

import numpy as np

from experiments.lib import flags, reporting, shootout_runs, training_runs
from experiments.lib.reporting import Column, cell_label

COLUMNS = (
    Column("bucket_width", "bucket_width"),
    Column("steps_per_review", "scanned steps per review", "{:.0f}"),
    Column("first_epoch_seconds", "epoch 1 s (with compilation)", "{:.1f}"),
    Column("last_epoch_seconds", "last epoch s", "{:.1f}"),
    *reporting.RUN_COLUMNS,
)


def scanned_steps_per_review(config, data) -> float:
    """Mean scan length per training review over epoch 1's batches, as the run draws them."""
    from rnn_jax.data import batching

    widths = [
        batch["token_ids"].shape[1]
        for batch in batching.train_batches(
            data.train,
            config.batch_size,
            seed=config.seed,
            epoch=0,
            bucket_width=config.bucket_width,
            padding=config.padding,
        )
    ]
    return float(np.mean(widths))


def main(argv: Sequence[str] | None = None) -> None:
    parser = flags.make_parser("bucketing", __doc__.splitlines()[0])
    parser.add_argument("--cell", choices=sorted(shootout_runs.CONFIGS), default="lstm")
    parser.add_argument("--max-len", type=int, default=500)
    parser.add_argument("--bucket-width", type=int, default=50)
    args = flags.parse(parser, argv)
    from rnn_jax.data import input_pipeline

    report = reporting.Report(args, f"Length bucketing: {cell_label(args.cell)} epoch time")
    base = shootout_runs.CONFIGS[args.cell].get_config()
    if not args.epochs:
        base.num_epochs = 2  # Epoch 2 runs without compilation (one per bucket width).
    rows, histories, data = [], {}, None
    for width in (0, args.bucket_width):
        # max_len is what this measures: it survives --quick's caps (a smoke run, still long).
        config = training_runs.make_config(base, args, bucket_width=width, max_len=args.max_len)
        name = f"bucket_width={width}"
        result = training_runs.run(name, config, args.workdirs / f"{args.cell}_{name}")
        if data is None:  # bucket_width does not change the arrays: read them once.
            data = input_pipeline.load_imdb_for(config)
        steps = scanned_steps_per_review(config, data)
        rows.append(
            {
                "bucket_width": width,
                "steps_per_review": steps,
                "first_epoch_seconds": result.history[0]["epoch_seconds"],
                "last_epoch_seconds": result.history[-1]["epoch_seconds"],
                **reporting.run_row(result),
            }
        )
        histories[name] = result.history
    speedup = rows[0]["last_epoch_seconds"] / rows[1]["last_epoch_seconds"]
    report.text(
        f"configs/{args.cell}.py with max_len {config.max_len} (the course's "
        f"'500 tokens cover ~92% of reviews'), {base.num_epochs} epoch(s), everything else the "
        f"shootout's. Bucketing at width {args.bucket_width}: last epoch "
        f"{rows[1]['last_epoch_seconds']:.1f} s vs {rows[0]['last_epoch_seconds']:.1f} s, "
        f"**{speedup:.2f}x faster** (epoch 1 also compiles one train step per bucket width). "
        "Test accuracy is of the epoch best on validation; bucketing changes which reviews share "
        "a batch, so accuracies differ by training noise."
    )
    report.table("table", rows, COLUMNS, "Epoch time with and without length bucketing")
    report.finish()


if __name__ == "__main__":
    main()
