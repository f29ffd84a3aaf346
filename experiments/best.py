"""The best recurrent model this codebase trains from scratch: configs/best.py on IMDB.

    python -m experiments.best [--quick] [--out DIR] [--workdirs DIR]

Trains configs/best.py into ``<workdirs>/best`` (selected on validation; the test set is
evaluated once, at the end, with the epoch best on validation) and reports its curves, wall
time and test accuracy next to the shootout's default LSTM when that run exists.
"""

from collections.abc import Sequence

from configs import best
from experiments import common


def main(argv: Sequence[str] | None = None) -> None:
    parser = common.make_parser("best", __doc__.splitlines()[0])
    args = common.parse(parser, argv)
    report = common.Report(args, "Best model: configs/best.py")
    config = common.make_config(best.get_config(), args)
    result = common.run("best", config, args.workdirs / "best")
    ngrams = (
        f" plus hashed {'bigram' if config.ngram_order == 2 else f'2..{config.ngram_order}-gram'}"
        f" embeddings ({config.ngram_buckets} rows)"
        if config.ngram_buckets
        else ""
    )
    report.text(
        f"{'Bidirectional ' if config.bidirectional else ''}{config.cell.upper()} "
        f"{config.num_layers}x{config.hidden_size}, embedding {config.embed_dim}{ngrams}, vocab "
        f"{config.vocab_size}, max_len {config.max_len} (bucket_width {config.bucket_width}), "
        f"{config.pooling} pooling, dropout "
        f"{config.dropout_rate}/{config.embed_dropout_rate} (between layers and head / "
        f"embeddings), {config.optimizer} {config.learning_rate:g} {config.schedule} "
        f"(warmup {config.warmup_epochs} epochs), clip {config.grad_clip_norm}, "
        f"{config.num_epochs} epochs. Wall time of training: "
        f"{result.summary['train_seconds']:.0f} s."
    )
    rows = [common.run_row(result)]
    shootout_lstm = common.default_workdirs("shootout", args.quick) / "lstm"
    histories = {"best": result.history}
    if (shootout_lstm / "summary.json").exists():
        lstm = common.RunResult(
            "shootout LSTM",
            config,
            common.read_json(shootout_lstm / "summary.json"),
            common.read_json(shootout_lstm / "history.json"),
            shootout_lstm,
        )
        rows.append(common.run_row(lstm))
        histories["shootout LSTM"] = lstm.history
    report.table("table", rows, (common.Column("run", "run"), *common.RUN_COLUMNS), "Results")
    report.figure(
        "curves", common.curves_figure(histories), "Train/validation accuracy and loss per epoch"
    )
    report.finish()


if __name__ == "__main__":
    main()
