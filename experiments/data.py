"""The data: review lengths, what each max_len keeps, the most frequent words, one example.

    python -m experiments.data [--quick] [--out DIR]

Uses the default config's preparation (configs/default.py: vocabulary 10,000 built from the
training rows, Keras ids). Lengths are in tokens with the start token, before truncation, over
the whole tfds train split (our train + validation rows, 25,000 reviews), as the course counts.
"""

import os
from collections.abc import Sequence

import numpy as np

from configs import default
from experiments.lib import flags, reporting, training_runs
from experiments.lib.reporting import Column

MAX_LENS = (30, 50, 80, 100, 150, 200, 300, 500, 1000)
QUANTILES = (0.90, 0.95, 0.99)
TOP_WORDS = 30
# The example review: the first training review this short (and within max_len, so its padded
# row holds it whole).
EXAMPLE_MAX_TOKENS = 120

COVERAGE_COLUMNS = (
    Column("max_len", "max_len (tokens)"),
    Column("kept_whole", "reviews kept whole", "{:.1%}"),
    Column("truncated", "reviews truncated", "{:.1%}"),
)
WORD_COLUMNS = (
    Column("rank", "rank"),
    Column("id", "id"),
    Column("word", "word"),
    Column("count", "count in train rows", "{:,}"),
)


def coverage_rows(lengths: np.ndarray) -> list[dict]:
    """Share of reviews each ``MAX_LENS`` value keeps whole (length <= max_len)."""
    rows = []
    for max_len in MAX_LENS:
        kept = float(np.mean(lengths <= max_len))
        rows.append({"max_len": max_len, "kept_whole": kept, "truncated": 1 - kept})
    return rows


def length_figure(lengths: np.ndarray):
    """Histogram of review lengths with the 90/95/99% quantiles marked."""
    fig, (ax,) = reporting.new_figure(width=8, height=4.5)
    ax.hist(lengths, bins=100, color="tab:blue", alpha=0.8)
    for q, color in zip(QUANTILES, ("tab:orange", "tab:red", "tab:purple"), strict=True):
        value = np.quantile(lengths, q)
        ax.axvline(value, color=color, ls="--", label=f"{q:.0%} of reviews ≤ {value:.0f} tokens")
    ax.set_xlabel("review length (tokens, before truncation)")
    ax.set_ylabel("number of reviews")
    ax.set_title(f"IMDB train split: {len(lengths):,} reviews")
    ax.legend()
    return fig


def word_rows(vocab) -> list[dict]:
    return [
        {"rank": i + 1, "id": vocab.word_to_id[w], "word": w, "count": c}
        for i, (w, c) in enumerate(
            zip(vocab.words[:TOP_WORDS], vocab.counts[:TOP_WORDS], strict=True)
        )
    ]


def original_text(data_dir: str, split: str, index: int) -> str:
    """The raw text of review ``index`` of a tfds split (imports TensorFlow: seconds)."""
    import tensorflow_datasets as tfds

    from rnn_jax.data import imdb_reader

    builder = tfds.builder(
        f"{imdb_reader.DATASET_NAME}:{imdb_reader.DATASET_VERSION}",
        data_dir=data_dir or os.environ.get("TFDS_DATA_DIR") or None,
        try_gcs=False,
    )
    ds = builder.as_dataset(split=f"{split}[{index}:{index + 1}]", shuffle_files=False)
    (example,) = tfds.as_numpy(ds)
    return example["text"].decode("utf-8", errors="replace")


def example_section(data, data_dir: str) -> str:
    """One short training review: its original text, its padded ids and their decoding."""
    from rnn_jax.data.vocabulary import decode_review

    lengths = data.full_lengths["train"]
    short = np.flatnonzero(lengths <= min(EXAMPLE_MAX_TOKENS, data.train["token_ids"].shape[1]))
    row = int(short[0]) if short.size else int(np.argmin(lengths))  # (--quick: few reviews)
    ids = data.train["token_ids"][row]
    source = int(data.source_index["train"][row])
    label = "positive" if data.train["label"][row] else "negative"
    shown = " ".join(str(i) for i in ids)
    return (
        f"### One example (training row {row}, tfds train #{source}, {label})\n\n"
        f"**Original text**\n\n> {original_text(data_dir, 'train', source)}\n\n"
        f"**Token ids** (padded to max_len {len(ids)}; 0 pad, 1 start, 2 out of vocabulary)\n\n"
        f"```\n{shown}\n```\n\n"
        f"**Decoded** (`decode_review`: lowercase words, punctuation and `<br />` dropped, "
        f"`<oov>` for words outside the vocabulary)\n\n> {decode_review(ids, data.vocab)}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = flags.make_parser("data", __doc__.splitlines()[0], training=False)
    args = flags.parse(parser, argv)
    from rnn_jax.data import input_pipeline

    config = training_runs.make_config(default.get_config(), args)
    data = input_pipeline.load_imdb_for(config)
    lengths = np.concatenate([data.full_lengths["train"], data.full_lengths["validation"]])
    report = reporting.Report(args, "The data: IMDB reviews")
    quantiles = ", ".join(f"{q:.0%}: {np.quantile(lengths, q):.0f}" for q in QUANTILES)
    report.text(
        f"{len(lengths):,} training reviews; length in tokens (start token included): mean "
        f"{lengths.mean():.0f}, median {np.median(lengths):.0f}, max {lengths.max():,}; "
        f"quantiles {quantiles}. The course says 500 tokens cover ~92%: here "
        f"{np.mean(lengths <= 500):.1%}."
    )
    report.figure("lengths", length_figure(lengths), "Review lengths with quantiles")
    report.table("coverage", coverage_rows(lengths), COVERAGE_COLUMNS, "What max_len keeps")
    report.table(
        "top_words",
        word_rows(data.vocab),
        WORD_COLUMNS,
        f"The {TOP_WORDS} most frequent words (vocabulary of {config.vocab_size:,} ids)",
    )
    example = example_section(data, args.data_dir)
    (report.out / "example.md").write_text(example + "\n")
    report.text(example)
    report.finish()


if __name__ == "__main__":
    main()
