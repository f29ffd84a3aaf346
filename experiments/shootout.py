"""The course's shootout (SimpleRNN, LSTM, GRU on IMDB) and the cells linear in h beside them.

SimpleRNN, LSTM and GRU run under identical settings; minGRU, minLSTM and RG-LRU with their
configs chosen on validation.

    python -m experiments.shootout [--cells CELL ...] [--epochs N] [--quick] [--out DIR]
        [--workdirs DIR]

Trains configs/rnn.py, lstm.py and gru.py (they differ only in the cell), and configs/mingru.py,
minlstm.py and rglru.py (each chosen on validation; the report lists how each differs from
lstm.py), into ``<workdirs>/<cell>``, same vocabulary, seed and epochs, and reports accuracy,
loss, size and speed next to the course's Keras numbers. ``--cells`` picks the cells; any other
registered cell, or a researcher's ``package.module:ClassName``, trains with configs/lstm.py's
settings and the LSTM runs beside it as the reference. ``experiments.gradients`` and
``experiments.embeddings`` read these workdirs (through ``experiments.lib.shootout_runs``).
"""

from collections.abc import Sequence

from experiments.lib import flags, reporting, training_runs
from experiments.lib.reporting import Column, cell_label
from experiments.lib.shootout_runs import CONFIGS, COURSE, COURSE_TEST_ACCURACY, run_cell

COLUMNS = (
    Column("cell", "cell"),
    *reporting.RUN_COLUMNS,
    Column("course_test_accuracy", "course (Keras) test accuracy", "{:.4f}"),
)


def differences(config, reference) -> str:
    """The fields where ``config`` differs from ``reference``, as ``field=value`` pairs."""
    changed = [
        f"{key}={config[key]!r}"
        for key in sorted(config)
        if key != "cell" and config[key] != reference[key]
    ]
    return ", ".join(changed) or "nothing else"


def schedule(config) -> str:
    """The learning-rate schedule in words."""
    if config.schedule == "constant":
        return "constant"
    warmup = f"{config.warmup_epochs:g} epochs of warmup, then " if config.warmup_epochs else ""
    return f"{warmup}cosine decay to 0"


def gru_vs_lstm(results: dict[str, training_runs.RunResult]) -> str:
    """The sentence comparing GRU's and LSTM's median epoch time."""
    ratio = (
        results["gru"].summary["seconds_per_epoch"] / results["lstm"].summary["seconds_per_epoch"]
    )
    relation = "faster" if ratio < 1 else "slower"
    return (
        f"GRU vs LSTM: GRU epoch time / LSTM epoch time = {ratio:.2f} "
        f"(GRU is {abs(1 - ratio) * 100:.0f}% {relation})"
    )


def accuracy_vs_time_figure(results: dict[str, training_runs.RunResult]):
    """Test accuracy against total training time, one labelled point per cell."""
    fig, (ax,) = reporting.new_figure()
    for result in results.values():
        x, y = result.summary["train_seconds"], result.summary["test_accuracy"]
        ax.scatter([x], [y], s=60, label=result.name)
        ax.annotate(result.name, (x, y), textcoords="offset points", xytext=(6, 6))
    ax.set_xlabel("total training time (s)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Test accuracy vs training time")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def main(argv: Sequence[str] | None = None) -> None:
    parser = flags.make_parser("shootout", __doc__.splitlines()[0])
    parser.add_argument(
        "--cells",
        nargs="+",
        default=list(CONFIGS),
        help="registered names or package.module:ClassName (default: the six with configs)",
    )
    args = flags.parse(parser, argv)
    for cell in args.cells:
        try:
            cell_label(cell)
        except ValueError as error:
            parser.error(str(error))
    chosen = ["lstm", *(c for c in args.cells if c != "lstm")]  # The LSTM is the reference.
    if sorted(chosen) == sorted(CONFIGS):
        chosen = list(CONFIGS)  # The committed order and title.
        cells = " vs ".join(cell_label(cell) for cell in COURSE) + ", and the cells linear in h,"
    else:
        cells = " vs ".join(cell_label(cell) for cell in chosen)
    report = reporting.Report(args, f"Shootout: {cells} on IMDB")
    results = {cell: run_cell(cell, args) for cell in chosen}
    config = results["lstm"].config
    report.text(
        f"Identical settings: vocab {config.vocab_size}, max_len {config.max_len}, embedding "
        f"{config.embed_dim}, hidden {config.hidden_size}, {config.optimizer} "
        f"{config.learning_rate:g} ({schedule(config)}), batch {config.batch_size}, "
        f"{config.num_epochs} epochs, "
        f"dropout {config.embed_dropout_rate:g} on embeddings and {config.dropout_rate:g} before "
        f"the head, gradients clipped at global norm {config.grad_clip_norm:g}; test "
        "accuracy of the epoch best on validation. Epoch 1 includes compilation, hence the "
        "median. The course column is the Keras reference, not a run of this script."
    )
    own_configs = [c for c in chosen if c in CONFIGS and c not in COURSE]
    if own_configs:
        report.text(
            "The cells linear in h, each config chosen on validation (docs/linear_cells.md), "
            "differ from the LSTM's in: "
            + "; ".join(
                f"{results[c].name}: {differences(results[c].config, config)}" for c in own_configs
            )
            + "."
        )
    rows = [
        reporting.run_row(r) | {"cell": r.name, "course_test_accuracy": COURSE_TEST_ACCURACY.get(c)}
        for c, r in results.items()
    ]
    report.table("table", rows, COLUMNS, "Results")
    if "gru" in results:
        sentence = gru_vs_lstm(results)
        report.text(sentence)
        print(sentence)
    histories = {r.name: r.history for r in results.values()}
    report.figure("curves", reporting.curves_figure(histories), "Accuracy and loss per epoch")
    report.figure(
        "accuracy_vs_time",
        accuracy_vs_time_figure(results),
        "Test accuracy vs total training time",
    )
    report.finish()


if __name__ == "__main__":
    main()
