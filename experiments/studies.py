"""The course assignment's studies: sequence length, hidden size, padding/masking, optimizer.

    python -m experiments.studies --study {seq_len,hidden,padding,optimizer,all}
        [--epochs N] [--quick] [--out DIR] [--workdirs DIR]

Every run starts from configs/assignment.py (SimpleRNN 5 units, vocab 2000, max_len 30,
embedding 50, RMSprop 1e-4, 10 epochs) and changes only what its study varies. The assignment's
10 epochs are kept (``--epochs`` lowers them): the models are so small that the 18 distinct runs
are cheap (their times: ``experiments/results/studies/<study>/table.md``), and RMSprop at 1e-4
learns slowly. A run's workdir is named by its change to the assignment config, so studies share
identical runs. Each study writes
``<out>/<study>/{table.md,table.csv,plot.png,report.md,meta.json}``.
"""

import argparse
import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
from matplotlib.ticker import NullLocator

from configs import assignment
from experiments.lib import flags, reporting, training_runs
from experiments.lib.reporting import Column, cell_label

BASE_RUN = "assignment"  # Workdir of the unchanged assignment config, shared by the studies.
# At the assignment's max_len 30 almost no review is shorter than max_len, so almost nothing is
# padded and the padding study would measure nothing; at 200 many are. How many reviews each
# max_len keeps whole (so pads): experiments/results/studies/seq_len/table.md.
PADDING_MAX_LEN = 200
KEPT_WHOLE = Column("kept_whole", "test reviews not truncated", "{:.1%}")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One run of a study: its workdir name and the config fields it changes."""

    name: str
    overrides: dict


@dataclasses.dataclass(frozen=True)
class Study:
    """A set of variants of the assignment config, how to tabulate them and how to plot them.

    Attributes:
      title: heading of the report.
      note: what the study shows and how it is set up (Markdown).
      variants: ``quick -> variants``; quick runs use fewer, shorter variants.
      varied: columns naming the config fields the study varies (keys are config fields).
      plot: ``(results, rows) -> (figure, caption)``.
      kept_whole: add the share of test reviews that ``max_len`` keeps whole.
    """

    title: str
    note: str
    variants: Callable[[bool], list[Variant]]
    varied: tuple[Column, ...]
    plot: Callable[[list[training_runs.RunResult], list[dict]], tuple]
    kept_whole: bool = False


# ----------------------------------------------------------------------------------------------
# Variants.


def sweep(field: str, values: Sequence, quick_values: Sequence) -> Callable[[bool], list]:
    """Variants setting ``field`` to each value (``quick_values`` under ``--quick``)."""

    def variants(quick: bool) -> list[Variant]:
        return [Variant(f"{field}_{v}", {field: v}) for v in (quick_values if quick else values)]

    return variants


def padding_variants(quick: bool) -> list[Variant]:
    max_len = flags.QUICK_LIMITS["max_len"] if quick else PADDING_MAX_LEN
    return [
        Variant(
            f"{padding}_{'masked' if masked else 'unmasked'}",
            {"padding": padding, "mask_padding": masked, "max_len": max_len},
        )
        for padding in ("pre", "post")
        for masked in (True, False)
    ]


def optimizer_variants(quick: bool) -> list[Variant]:
    del quick  # Two runs either way.
    return [
        Variant("rmsprop_1e-4", {"optimizer": "rmsprop", "learning_rate": 1e-4}),
        Variant("adam_1e-3", {"optimizer": "adam", "learning_rate": 1e-3}),
    ]


# ----------------------------------------------------------------------------------------------
# Plots.


def sweep_plot(field: str, label: str, log_base: int):
    """Test accuracy and training time against the swept field, side by side."""

    def plot(results, rows):
        del results
        x = [row[field] for row in rows]
        fig, (acc_ax, time_ax) = reporting.new_figure(1, 2, width=5.5)
        acc_ax.plot(x, [row["test_accuracy"] for row in rows], "o-", label="test")
        acc_ax.plot(x, [row["best_val_accuracy"] for row in rows], "s--", label="best validation")
        acc_ax.set_ylabel("accuracy")
        acc_ax.set_title(f"Accuracy vs {field}")
        time_ax.plot(x, [row["seconds_per_epoch"] for row in rows], "o-", label="median epoch")
        time_ax.set_ylabel("training time per epoch (s)")
        time_ax.set_title(f"Epoch time vs {field}")
        for ax in (acc_ax, time_ax):
            ax.set_xscale("log", base=log_base)
            ax.xaxis.set_minor_locator(NullLocator())  # Else the log axis labels minor ticks.
            ax.set_xticks(x, [str(v) for v in x])
            ax.set_xlabel(label)
            ax.grid(alpha=0.3)
            ax.legend()
        return fig, f"Test accuracy and epoch time vs {label}"

    return plot


def padding_plot(results, rows):
    """Grouped bars: test accuracy per padding side, masked vs unmasked."""
    fig, (ax,) = reporting.new_figure(width=6.5)
    width = 0.38
    for offset, masked in ((-width / 2, True), (width / 2, False)):
        chosen = [row for row in rows if row["mask_padding"] is masked]
        x = np.arange(len(chosen)) + offset
        bars = ax.bar(x, [row["test_accuracy"] for row in chosen], width, label=_masking(masked))
        ax.bar_label(bars, fmt="%.3f")
    ax.set_xticks(np.arange(2), ["padding='pre'", "padding='post'"])
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0.4, 1.0)
    ax.axhline(0.5, color="gray", lw=0.8, ls=":")
    ax.set_title(f"Last-state classifier, max_len {results[0].config.max_len}")
    ax.legend()
    return fig, "Test accuracy by padding side, with and without masking (dotted: chance)"


def curves_plot(results, rows):
    del rows
    return reporting.curves_figure({r.name: r.history for r in results}), "Curves per epoch"


def _masking(masked: bool) -> str:
    return "masked" if masked else "not masked"


# ----------------------------------------------------------------------------------------------
# The studies.

STUDIES = {
    "seq_len": Study(
        title="Study: sequence length (max_len)",
        note="Longer inputs keep more of each review (pre-truncation keeps its end) and cost "
        "time linear in max_len.",
        variants=sweep("max_len", (30, 50, 80, 100, 150, 200, 300, 500), (16, 32)),
        varied=(Column("max_len", "max_len (tokens)"),),
        plot=sweep_plot("max_len", "max_len (tokens)", 10),
        kept_whole=True,
    ),
    "hidden": Study(
        title="Study: hidden size",
        note="Units of the SimpleRNN; max_len stays 30.",
        variants=sweep("hidden_size", (2, 5, 10, 20, 64, 128, 256), (2, 5)),
        varied=(Column("hidden_size", "hidden units"),),
        plot=sweep_plot("hidden_size", "hidden units", 2),
    ),
    "padding": Study(
        title="Study: padding side and masking",
        note=f"A classifier reading the last state, at max_len {PADDING_MAX_LEN} so that many "
        "reviews are padded. Masked: padded steps leave the state unchanged "
        "(config.mask_padding=True), so 'pre' and 'post' should agree. Not masked: padding "
        "is read like a word, as in Keras without mask_zero; with 'post' the state the "
        "classifier reads comes after the padding, which the SimpleRNN has to carry the "
        "review through.",
        variants=padding_variants,
        varied=(
            Column("padding", "padding"),
            Column("mask_padding", "masking", _masking),
        ),
        plot=padding_plot,
        kept_whole=True,
    ),
    "optimizer": Study(
        title="Study: optimizer",
        note="The course's RMSprop(1e-4) against Adam(1e-3) (Keras epsilons, see "
        "rnn_jax/optimizers.py).",
        variants=optimizer_variants,
        varied=(Column("optimizer", "optimizer"), Column("learning_rate", "learning rate", "{:g}")),
        plot=curves_plot,
    ),
}


# ----------------------------------------------------------------------------------------------
# Running.


def kept_whole_share(config, max_lens: Sequence[int]) -> dict[int, float]:
    """Share of test reviews no longer than each max_len (so not truncated).

    Full lengths do not depend on max_len, so one (cached) load serves every value.
    """
    from rnn_jax.data import input_pipeline

    lengths = input_pipeline.load_imdb_for(config).full_lengths["test"]
    return {m: float(np.mean(lengths <= m)) for m in max_lens}


def workdir_name(config, base) -> str:
    """Names a run by how its config differs from the base, e.g. ``max_len_200-padding_post``.

    Studies share runs this way: max_len 30, hidden 5 and RMSprop 1e-4 are all the unchanged
    assignment config, and padding 'pre' with masking at 200 is the sequence-length study's 200.
    """
    new, old = config.to_dict(), base.to_dict()
    changed = sorted(k for k in new if new[k] != old.get(k))
    return "-".join(f"{k}_{new[k]}" for k in changed) or BASE_RUN


def run_study(name: str, args: argparse.Namespace) -> None:
    """Trains (or reuses) every variant of study ``name`` and writes its report."""
    study = STUDIES[name]
    study_args = argparse.Namespace(**vars(args))
    study_args.out = args.out / name
    report = reporting.Report(study_args, study.title)
    base = training_runs.make_config(assignment.get_config(), args)
    results = []
    for variant in study.variants(args.quick):
        config = training_runs.make_config(assignment.get_config(), args, **variant.overrides)
        workdir = args.workdirs / workdir_name(config, base)
        results.append(training_runs.run(variant.name, config, workdir))
    rows = [reporting.run_row(r) | {c.key: r.config[c.key] for c in study.varied} for r in results]
    columns = (*study.varied, *reporting.RUN_COLUMNS)
    if study.kept_whole:
        shares = kept_whole_share(results[0].config, [r.config.max_len for r in results])
        for row, result in zip(rows, results, strict=True):
            row["kept_whole"] = shares[result.config.max_len]
        columns = (*study.varied, KEPT_WHOLE, *reporting.RUN_COLUMNS)
    report.text(
        f"{study.note}\n\nBase: configs/assignment.py ({cell_label(base.cell)} {base.hidden_size} "
        f"units, vocab {base.vocab_size}, embedding {base.embed_dim}, batch {base.batch_size}), "
        f"{base.num_epochs} epochs; test accuracy of the epoch best on validation."
    )
    report.table("table", rows, columns, study.title)
    fig, caption = study.plot(results, rows)
    report.figure("plot", fig, caption)
    report.finish()


def main(argv: Sequence[str] | None = None) -> None:
    parser = flags.make_parser("studies", __doc__.splitlines()[0])
    parser.add_argument("--study", choices=[*STUDIES, "all"], default="all")
    args = flags.parse(parser, argv)
    for name in STUDIES if args.study == "all" else [args.study]:
        run_study(name, args)


if __name__ == "__main__":
    main()
