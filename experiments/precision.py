"""Mixed precision: the course's LSTM trained in float32 and in bfloat16, side by side.

    python -m experiments.precision [--epochs N] [--quick] [--out DIR] [--workdirs DIR]

Trains configs/lstm.py twice into ``<workdirs>/<dtype>``, identical but for
``config.compute_dtype``: in bfloat16 the embeddings and the cell compute in bfloat16, while the
parameters, gradients, Adam, pooling, head and loss stay in float32 (``rnn_jax.models``). The
report gives test accuracy, loss and epoch time of both, the difference, and their curves: is
accuracy unchanged, and does it pay on this backend?
"""

from collections.abc import Sequence

from configs import lstm
from experiments.lib import flags, reporting, training_runs
from experiments.lib.reporting import Column

DTYPES = ("float32", "bfloat16")

COLUMNS = (Column("compute_dtype", "compute dtype"), *reporting.RUN_COLUMNS)


def main(argv: Sequence[str] | None = None) -> None:
    parser = flags.make_parser("precision", __doc__.splitlines()[0])
    args = flags.parse(parser, argv)
    report = reporting.Report(args, "Mixed precision: configs/lstm.py in float32 and bfloat16")
    results = {}
    for dtype in DTYPES:
        config = training_runs.make_config(lstm.get_config(), args, compute_dtype=dtype)
        results[dtype] = training_runs.run(dtype, config, args.workdirs / dtype)
    rows = [{"compute_dtype": d, **reporting.run_row(r)} for d, r in results.items()]
    f32, bf16 = (results[d].summary for d in DTYPES)
    import jax

    report.text(
        f"configs/lstm.py ({config.num_epochs} epochs), identical runs but for "
        f"config.compute_dtype, on {jax.default_backend()}. bfloat16 minus float32: test "
        f"accuracy {bf16['test_accuracy'] - f32['test_accuracy']:+.4f}, best validation "
        f"accuracy {bf16['best_val_accuracy'] - f32['best_val_accuracy']:+.4f}; bfloat16's "
        f"median epoch takes {bf16['seconds_per_epoch'] / f32['seconds_per_epoch']:.2f}x "
        "float32's."
    )
    report.table("table", rows, COLUMNS, "float32 vs bfloat16 compute")
    report.figure(
        "curves",
        reporting.curves_figure({d: r.history for d, r in results.items()}),
        "Train/validation accuracy and loss per epoch, float32 and bfloat16 compute",
    )
    report.finish()


if __name__ == "__main__":
    main()
