"""What the embedding learned: cosine nearest neighbours of sentiment words in a trained model.

    python -m experiments.embeddings [--workdir W] [--quick] [--out DIR]

Default ``W``: ``runs/experiments/best/refit/gru`` (the best model) if it holds a run, else the
shootout's LSTM (``<workdirs>/lstm``, trained first if missing). The embedding is only trained to
separate positive from negative reviews, so expect neighbours by sentiment more than by meaning.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from experiments.lib import flags, reporting, shootout_runs
from experiments.lib.reporting import Column

WORDS = (
    "good",
    "bad",
    "excellent",
    "awful",
    "boring",
    "great",
    "terrible",
    "funny",
    "worst",
    "masterpiece",
)
TOP_K = 8
BEST_WORKDIR = flags.WORKDIRS / "best" / "refit" / "gru"

COLUMNS = (
    Column("word", "word"),
    Column("neighbours", f"{TOP_K} nearest words (cosine similarity)"),
)


def nearest_neighbours(embedding: np.ndarray, vocab, word: str, k: int = TOP_K) -> str:
    """The ``k`` words whose embeddings are most cosine-similar to ``word``'s, formatted.

    Reserved ids (padding, start, out-of-vocabulary, unused) and ids no word was given are left
    out: they are not words.
    """
    from rnn_jax.data.vocabulary import INDEX_FROM

    if word not in vocab:
        return "(not in the vocabulary)"
    first, stop = INDEX_FROM + 1, INDEX_FROM + 1 + vocab.num_words
    words = embedding[first:stop]
    unit = words / np.maximum(np.linalg.norm(words, axis=1, keepdims=True), 1e-12)
    query = vocab.word_to_id[word] - first
    similarity = unit @ unit[query]
    similarity[query] = -np.inf
    best = np.argsort(-similarity)[:k]
    return ", ".join(f"{vocab.words[i]} ({similarity[i]:.2f})" for i in best)


def resolve_workdir(args) -> Path:
    """The run to read: ``--workdir``, else the best model's, else the shootout LSTM's."""
    if args.workdir is not None:
        return args.workdir
    if not args.quick and (BEST_WORKDIR / "summary.json").exists():
        return BEST_WORKDIR
    return shootout_runs.finished_workdir("lstm", args)


def main(argv: Sequence[str] | None = None) -> None:
    parser = flags.make_parser("embeddings", __doc__.splitlines()[0], workdirs_of="shootout")
    parser.add_argument("--workdir", type=Path, help="a finished training run to read")
    args = flags.parse(parser, argv)
    from rnn_jax.inference import runs as inference

    report = reporting.Report(args, "Embedding neighbours of sentiment words")
    workdir = resolve_workdir(args)
    run = inference.load_run(str(workdir))
    embedding = np.asarray(run.state.params["embedding"]["embedding"])
    report.text(
        f"Run: `{workdir}` ({run.config.cell}, embedding {embedding.shape[1]}, vocabulary "
        f"{run.config.vocab_size:,}), checkpoint step {run.step} "
        f"({'best on validation' if run.config.validation_fraction else 'the last'})."
    )
    rows = [{"word": w, "neighbours": nearest_neighbours(embedding, run.vocab, w)} for w in WORDS]
    report.table("neighbours", rows, COLUMNS, "Cosine nearest neighbours")
    report.finish()


if __name__ == "__main__":
    main()
