"""The best recurrent models this codebase trains from scratch: configs/best.py on IMDB.

    python -m experiments.best [--members gru lstm ...] [--quick] [--out DIR] [--workdirs DIR]

The protocol of configs/best.py, for each ensemble member (``configs/best.py:<member>``; all of
``best.MEMBERS`` unless ``--members`` names some):
  1. ``<workdirs>/selection/<member>``: the config on 80% of the training reviews, with 20% held
     out for validation, its test set not evaluated. Its validation curve is what the config
     (epochs included) was chosen on.
  2. ``<workdirs>/refit/<member>``: the same config refit on all 25,000 training reviews for the
     chosen number of epochs (``validation_fraction=0``); its last checkpoint is the model, and
     the only one whose test accuracy is evaluated.
Then the ensemble, which averages its members' probabilities per review: on validation from the
selection runs (each at its epoch best on validation, the checkpoint each was scored by), on test
from the refits. The report gives every run, the ensemble, their curves and wall times, next to
the shootout's default LSTM when that run exists.
"""

from collections.abc import Sequence

from configs import best
from experiments.lib import flags, reporting, training_runs
from experiments.lib.reporting import Column, cell_label

# The share of the training reviews held out when the configs were chosen (configs/default.py's).
SELECTION_VALIDATION_FRACTION = 0.2

ENSEMBLE_COLUMNS = (
    Column("model", "model"),
    Column("split", "split"),
    Column("accuracy", "accuracy", "{:.4f}"),
    Column("loss", "loss", "{:.4f}"),
    Column("train_seconds", "train s (all its runs)", "{:.0f}"),
)


def describe(config) -> str:
    """One sentence naming every choice of a best config."""
    ngrams = (
        f" plus hashed {'bigram' if config.ngram_order == 2 else f'2..{config.ngram_order}-gram'}"
        f" embeddings ({config.ngram_buckets} rows)"
        if config.ngram_buckets
        else ""
    )
    dropout_unit = "tokens" if config.embed_dropout_tokens else "features"
    return (
        f"{'Bidirectional ' if config.bidirectional else ''}{cell_label(config.cell)} "
        f"{config.num_layers}x{config.hidden_size}, embedding {config.embed_dim}{ngrams}, vocab "
        f"{config.vocab_size}, max_len {config.max_len} (bucket_width {config.bucket_width}), "
        f"{config.pooling} pooling, dropout {config.dropout_rate} between layers and head, "
        f"{config.embed_dropout_rate} of embedding {dropout_unit}, {config.optimizer} "
        f"{config.learning_rate:g} {config.schedule} (warmup {config.warmup_epochs} epochs), "
        f"clip {config.grad_clip_norm}, {config.num_epochs} epochs."
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = flags.make_parser("best", __doc__.splitlines()[0])
    parser.add_argument(
        "--members",
        nargs="+",
        choices=list(best.MEMBERS),
        default=list(best.MEMBERS),
        help="Ensemble members to train and combine (default: all).",
    )
    args = flags.parse(parser, argv)
    report = reporting.Report(args, "Best models: configs/best.py")
    selections, refits = {}, {}
    for member in args.members:  # Every choice on validation first, then the refits.
        config = training_runs.make_config(
            best.get_config(member),
            args,
            validation_fraction=SELECTION_VALIDATION_FRACTION,
            evaluate_test=False,  # Chosen on validation; test is for the refit models alone.
        )
        selections[member] = training_runs.run(
            f"selection {member}", config, args.workdirs / "selection" / member
        )
    for member in args.members:
        config = training_runs.make_config(best.get_config(member), args)
        refits[member] = training_runs.run(
            f"refit {member}", config, args.workdirs / "refit" / member
        )

    for member in args.members:
        report.text(f"- `{member}`: {describe(refits[member].config)}")
    report.text(
        f"Each was chosen on validation: run `selection <member>` trained on "
        f"{1 - SELECTION_VALIDATION_FRACTION:.0%} of the training reviews and validated on the "
        f"rest (its test set not evaluated). The models are the runs `refit <member>`: the same "
        f"configs trained on all training reviews, their last epochs tested once. The ensemble "
        f"averages its members' probabilities per review."
    )
    rows = [reporting.run_row(r) for r in (*selections.values(), *refits.values())]
    histories = {r.name: r.history for r in (*selections.values(), *refits.values())}
    shootout_lstm = flags.default_workdirs("shootout", args.quick) / "lstm"
    if (shootout_lstm / "summary.json").exists():
        lstm = training_runs.RunResult(
            "shootout LSTM",
            training_runs.read_config(shootout_lstm),
            training_runs.read_json(shootout_lstm / "summary.json"),
            training_runs.read_json(shootout_lstm / "history.json"),
            shootout_lstm,
        )
        rows.append(reporting.run_row(lstm))
        histories["shootout LSTM"] = lstm.history
    report.table("table", rows, (Column("run", "run"), *reporting.RUN_COLUMNS), "Every run")

    from rnn_jax.inference import ensemble  # Imports JAX; only when there are runs to combine.

    ensemble_rows = []
    for kind, runs, split in (("selection", selections, "validation"), ("refit", refits, "test")):
        metrics = ensemble.evaluate([str(r.workdir) for r in runs.values()], split)
        ensemble_rows.append(
            {
                "model": f"ensemble of the {kind} runs of {', '.join(runs)}",
                "split": split,
                "accuracy": metrics["accuracy"],
                "loss": metrics["loss"],
                "train_seconds": sum(r.summary["train_seconds"] for r in runs.values()),
            }
        )
    report.table("ensemble", ensemble_rows, ENSEMBLE_COLUMNS, "The ensemble")
    report.figure(
        "curves",
        reporting.curves_figure(histories),
        "Train/validation accuracy and loss per epoch (refits have no validation)",
    )
    report.finish()


if __name__ == "__main__":
    main()
