"""The best recurrent model this codebase trains from scratch: configs/best.py on IMDB.

    python -m experiments.best [--quick] [--out DIR] [--workdirs DIR]

Two runs, the protocol of configs/best.py:
  1. ``<workdirs>/best``: the config on 80% of the training reviews, with 20% held out for
     validation, its test set not evaluated. Its validation curve is what the config (epochs
     included) was chosen on.
  2. ``<workdirs>/refit``: the same config refit on all 25,000 training reviews for the chosen
     number of epochs (``validation_fraction=0``); its last checkpoint is the model, and the only
     one whose test accuracy is evaluated.
The report gives both, their curves and wall times, next to the shootout's default LSTM when that
run exists.
"""

from collections.abc import Sequence

from configs import best
from experiments import common

# The share of the training reviews held out when the config was chosen (train.py's default).
SELECTION_VALIDATION_FRACTION = 0.2


def describe(config) -> str:
    """One sentence naming every choice of the best config."""
    ngrams = (
        f" plus hashed {'bigram' if config.ngram_order == 2 else f'2..{config.ngram_order}-gram'}"
        f" embeddings ({config.ngram_buckets} rows)"
        if config.ngram_buckets
        else ""
    )
    return (
        f"{'Bidirectional ' if config.bidirectional else ''}{config.cell.upper()} "
        f"{config.num_layers}x{config.hidden_size}, embedding {config.embed_dim}{ngrams}, vocab "
        f"{config.vocab_size}, max_len {config.max_len} (bucket_width {config.bucket_width}), "
        f"{config.pooling} pooling, dropout "
        f"{config.dropout_rate}/{config.embed_dropout_rate} (between layers and head / "
        f"embeddings), {config.optimizer} {config.learning_rate:g} {config.schedule} "
        f"(warmup {config.warmup_epochs} epochs), clip {config.grad_clip_norm}, "
        f"{config.num_epochs} epochs."
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = common.make_parser("best", __doc__.splitlines()[0])
    args = common.parse(parser, argv)
    report = common.Report(args, "Best model: configs/best.py")
    refit_config = common.make_config(best.get_config(), args)
    selection_config = common.make_config(
        best.get_config(),
        args,
        validation_fraction=SELECTION_VALIDATION_FRACTION,
        evaluate_test=False,  # Chosen on validation; test is for the refit model alone.
    )
    selection = common.run("selection", selection_config, args.workdirs / "best")
    refit = common.run("refit", refit_config, args.workdirs / "refit")
    report.text(
        f"{describe(refit_config)} Chosen on validation: run `selection` trained on "
        f"{1 - SELECTION_VALIDATION_FRACTION:.0%} of the training reviews and validated on the "
        f"rest (its test set not evaluated here). The model is run `refit`: the same config "
        f"trained on all training reviews, its last epoch tested once. Wall time of training: "
        f"{selection.summary['train_seconds']:.0f} s (selection), "
        f"{refit.summary['train_seconds']:.0f} s (refit)."
    )
    rows = [common.run_row(selection), common.run_row(refit)]
    histories = {
        "selection (80% of train)": selection.history,
        "refit (all of train)": refit.history,
    }
    shootout_lstm = common.default_workdirs("shootout", args.quick) / "lstm"
    if (shootout_lstm / "summary.json").exists():
        lstm = common.RunResult(
            "shootout LSTM",
            common.read_config(shootout_lstm),
            common.read_json(shootout_lstm / "summary.json"),
            common.read_json(shootout_lstm / "history.json"),
            shootout_lstm,
        )
        rows.append(common.run_row(lstm))
        histories["shootout LSTM"] = lstm.history
    report.table("table", rows, (common.Column("run", "run"), *common.RUN_COLUMNS), "Results")
    report.figure(
        "curves",
        common.curves_figure(histories),
        "Train/validation accuracy and loss per epoch (the refit has no validation)",
    )
    report.finish()


if __name__ == "__main__":
    main()
