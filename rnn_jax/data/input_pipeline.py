"""IMDB sentiment data: tfds ``imdb_reviews`` -> vocabulary -> padded int arrays (``ImdbData``).

The preparation reproduces the course's ``keras.datasets.imdb`` + ``pad_sequences`` (same id
convention, see ``rnn_jax.data.vocabulary``), with an honest validation split and a disk cache
(``rnn_jax.data.data_cache``).

Typical use (``rnn_jax.data.batching`` cuts the arrays into batches)::

    data = load_imdb(vocab_size=10_000, max_len=200)
    data.train["token_ids"]  # <int32>[N, 200]

TensorFlow and tfds are imported only when the dataset is actually read, so a cache hit and
everything else here stay free of TensorFlow's import time and memory.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from absl import logging

from rnn_jax.data import data_cache, imdb_reader
from rnn_jax.data.batching import (
    check_int,
    check_mode,
    format_stats,
    length_statistics,
    pad_sequences,
)
from rnn_jax.data.data_cache import SPLITS
from rnn_jax.data.imdb_reader import DATASET_NAME, DATASET_VERSION
from rnn_jax.data.vocabulary import OOV_ID, START_ID, Vocabulary, tokenize


class SplitSizeError(ValueError):
    """The validation fraction leaves no row for validation or none for training."""


@dataclasses.dataclass
class ImdbData:
    """IMDB prepared for training.

    Each split is a batch-shaped dict (the Batch contract of docs/design.md):
    ``{"token_ids": <int32>[N, max_len], "length": <int32>[N], "label": <int32>[N]}``, where
    ``length`` counts the real (non-pad) tokens kept (``START_ID`` among them unless 'pre'
    truncation cut it with the review's beginning), and ``label`` is 1 for a positive review.

    Attributes:
        train: the training rows (tfds train minus the validation rows).
        validation: rows carved from tfds train, see ``load_imdb`` (no rows if the run refits on
            all of train, ``validation_fraction=0``).
        test: tfds test, in tfds order.
        vocab: built from ``train`` only.
        stats: ``length_statistics`` of the training rows' full lengths (before truncation).
        full_lengths: per split, ``<int32>[N]`` encoded lengths before truncation (``START_ID``
            included), aligned with the split's rows.
        split_stats: per split, ``length_statistics`` of ``full_lengths``.
        source_index: per split, ``<int64>[N]`` position of each row in its tfds split, to look
            up the original review text.
        cache_path: the cache file that was read or written, if any.
        from_cache: whether the arrays came from the cache rather than from tfds.
    """

    train: dict[str, np.ndarray]
    validation: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    vocab: Vocabulary
    stats: dict
    full_lengths: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    split_stats: dict[str, dict] = dataclasses.field(default_factory=dict)
    source_index: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    cache_path: Path | None = None
    from_cache: bool = False

    def split(self, name: str) -> dict[str, np.ndarray]:
        """The split called ``name`` ("train", "validation" or "test")."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return getattr(self, name)


def _assemble(splits, vocab, full_lengths, source_index, path, from_cache) -> ImdbData:
    split_stats = {s: length_statistics(full_lengths[s]) for s in SPLITS if len(full_lengths[s])}
    return ImdbData(
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        vocab=vocab,
        stats=split_stats["train"],
        full_lengths=full_lengths,
        split_stats=split_stats,
        source_index=source_index,
        cache_path=path,
        from_cache=from_cache,
    )


# --------------------------------------------------------------------------------------------
# Building the dataset.


def validation_split(num_examples: int, fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """Row indices ``(train, validation)``, each sorted, from one seeded permutation.

    ``fraction == 0`` keeps every row for training (validation is empty): the refit of a config
    already chosen on validation.
    """
    if fraction == 0:
        return np.arange(num_examples), np.zeros(0, np.int64)
    num_val = int(round(fraction * num_examples))
    if num_val < 1 or num_val >= num_examples:
        raise SplitSizeError(
            f"validation_fraction={fraction} of {num_examples} training examples leaves "
            f"{num_val} for validation and {num_examples - num_val} for training; both need >= 1"
        )
    perm = np.random.default_rng(seed).permutation(num_examples)
    # Sorted so the rows keep tfds order: the split is then a pure subset, easy to inspect.
    return np.sort(perm[: num_examples - num_val]), np.sort(perm[num_examples - num_val :])


def _words_to_provisional_ids(texts: Sequence[str], word_index: dict[str, int]) -> list[np.ndarray]:
    """Tokenizes texts into ids of a growing word -> id table (first-seen order).

    Counting and encoding then work on small int arrays instead of millions of Python strings
    (about 10x less memory for IMDB, and one vectorised remap at the end).
    """
    setdefault = word_index.setdefault
    rows = []
    for text in texts:
        words = tokenize(text)
        rows.append(
            np.fromiter(
                (setdefault(w, len(word_index)) for w in words), dtype=np.int32, count=len(words)
            )
        )
    return rows


def _encode_splits(
    train: tuple[list[str], np.ndarray],
    test: tuple[list[str], np.ndarray],
    *,
    vocab_size: int,
    max_len: int,
    padding: str,
    truncating: str,
    validation_fraction: float,
    split_seed: int,
) -> tuple[dict, Vocabulary, dict, dict]:
    """Texts -> validation split, vocabulary of the training rows, padded id arrays.

    Returns:
        ``(splits, vocab, full_lengths, source_index)`` as ``ImdbData`` holds them.
    """
    (train_texts, train_labels), (test_texts, test_labels) = train, test
    word_index: dict[str, int] = {}
    train_rows = _words_to_provisional_ids(train_texts, word_index)
    train_idx, val_idx = validation_split(len(train_rows), validation_fraction, split_seed)
    # Count the training rows only, before test words even enter word_index.
    counts = np.bincount(
        np.concatenate([train_rows[i] for i in train_idx] + [np.zeros(0, np.int32)]),
        minlength=len(word_index),
    )
    all_words = list(word_index)  # insertion order == provisional id
    vocab = Vocabulary.from_counts(
        {all_words[i]: int(c) for i, c in enumerate(counts) if c > 0}, vocab_size
    )
    test_rows = _words_to_provisional_ids(test_texts, word_index)
    remap = np.full(len(word_index), OOV_ID, dtype=np.int32)
    for word in vocab.words:
        remap[word_index[word]] = vocab.word_to_id[word]

    sources = {
        "train": (train_rows, train_labels, train_idx),
        "validation": (train_rows, train_labels, val_idx),
        "test": (test_rows, test_labels, np.arange(len(test_rows))),
    }
    splits, full_lengths, source_index = {}, {}, {}
    for split, (rows, labels, idx) in sources.items():
        encoded = [np.concatenate(([START_ID], remap[rows[i]])).astype(np.int32) for i in idx]
        token_ids, length = pad_sequences(encoded, max_len, padding, truncating)
        splits[split] = {"token_ids": token_ids, "length": length, "label": labels[idx]}
        full_lengths[split] = np.array([len(e) for e in encoded], dtype=np.int32)
        source_index[split] = np.asarray(idx, dtype=np.int64)

    return splits, vocab, full_lengths, source_index


def load_imdb(
    *,
    vocab_size: int,
    max_len: int,
    padding: str = "pre",
    truncating: str = "pre",
    validation_fraction: float = 0.2,
    split_seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    max_examples: int | None = None,
    use_cache: bool = True,
) -> ImdbData:
    """Loads IMDB as padded id arrays, building the vocabulary from the training rows only.

    Steps: read tfds ``imdb_reviews/plain_text`` train (25,000) and test (25,000); ``tokenize``;
    carve the validation rows from train; build the ``Vocabulary`` from the remaining training rows
    alone (unlike Keras, which counts all of train: validation words would otherwise get ids and
    make validation slightly optimistic; test words never do); encode with ``START_ID`` first and
    ``OOV_ID`` for unknown words; ``pad_sequences``. Length statistics of each split are logged.

    Validation split: ``perm = np.random.default_rng(split_seed).permutation(N)``; the last
    ``round(validation_fraction * N)`` rows of ``perm`` are validation. Both parts keep tfds order.

    Cache: the result is stored in ``cache_dir`` as one .npz (plus the vocabulary as .json),
    named by a hash of every argument that changes the arrays (all but ``data_dir``, ``cache_dir``,
    ``use_cache``), the tokenizer version and the dataset version. A later call with the same
    arguments loads it (well under a second) without importing TensorFlow. A damaged cache file
    is ignored and rewritten.

    Args:
        vocab_size: size of the id space; ids ``>= vocab_size`` become ``OOV_ID``.
        max_len: time steps per row.
        padding: "pre" or "post", see ``pad_sequences``.
        truncating: "pre" (keep a long review's end, as Keras) or "post", see ``pad_sequences``.
        validation_fraction: share of tfds train held out for validation, in [0, 1); 0 trains
            on all of it (validation is then empty).
        split_seed: seed of the validation permutation.
        data_dir: tfds data folder; default ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``.
        cache_dir: default ``default_cache_dir()``.
        max_examples: read only the first this many examples of EACH tfds split (smoke tests).
        use_cache: False neither reads nor writes the cache.

    Returns:
        The splits, vocabulary and length statistics.

    Raises:
        DataNotFoundError: the dataset is not in the data folder (and nothing is cached).
        SplitSizeError: ``validation_fraction`` leaves no row for validation or for training
            (found once the split's size is known, after reading).
        ValueError: for an invalid argument.
    """
    check_mode("padding", padding)
    check_mode("truncating", truncating)
    max_len = check_int("max_len", max_len)
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction!r}")
    split_seed = check_int("split_seed", split_seed, minimum=0)
    if max_examples is not None:
        max_examples = check_int("max_examples", max_examples)
    # Fail on a bad vocab_size now, not after reading and tokenizing 50,000 reviews.
    Vocabulary([], vocab_size)

    key = data_cache.cache_key(
        dataset=DATASET_NAME,
        dataset_version=DATASET_VERSION,
        vocab_size=int(vocab_size),
        max_len=max_len,
        padding=padding,
        truncating=truncating,
        validation_fraction=float(validation_fraction),
        split_seed=split_seed,
        max_examples=max_examples,
    )
    path = data_cache.cache_path(
        Path(cache_dir) if cache_dir else data_cache.default_cache_dir(),
        f"imdb_reviews-plain_text-{DATASET_VERSION}",
        key,
    )
    if use_cache:
        cached = data_cache.load_cache(path, key, max_len)
        if cached is not None:
            data = _assemble(*cached, path, from_cache=True)
            logging.info("Loaded IMDB from cache %s", path)
            _log_stats(data, max_len)
            return data

    resolved_dir, _ = imdb_reader.resolve_data_dir(data_dir)
    train_texts, train_labels = imdb_reader.read_split("train", resolved_dir, max_examples)
    test_texts, test_labels = imdb_reader.read_split("test", resolved_dir, max_examples)
    train_labels = np.asarray(train_labels, dtype=np.int32)
    test_labels = np.asarray(test_labels, dtype=np.int32)
    logging.info("Read %d train and %d test reviews", len(train_texts), len(test_texts))

    splits, vocab, full_lengths, source_index = _encode_splits(
        (train_texts, train_labels),
        (test_texts, test_labels),
        vocab_size=vocab_size,
        max_len=max_len,
        padding=padding,
        truncating=truncating,
        validation_fraction=validation_fraction,
        split_seed=split_seed,
    )
    data = _assemble(
        splits, vocab, full_lengths, source_index, path if use_cache else None, from_cache=False
    )
    _log_stats(data, max_len)
    if use_cache:
        try:
            data_cache.save_cache(path, data, key)
            logging.info("Cached IMDB arrays in %s", path)
        except OSError as e:  # A read-only or full disk costs speed next time, not this run.
            logging.warning("Could not write cache %s: %s", path, e)
            data.cache_path = None
    return data


def _log_stats(data: ImdbData, max_len: int) -> None:
    logging.info(
        "IMDB: vocab_size=%d (%d words), max_len=%d, train/validation/test = %d/%d/%d",
        len(data.vocab),
        data.vocab.num_words,
        max_len,
        len(data.train["label"]),
        len(data.validation["label"]),
        len(data.test["label"]),
    )
    for split, stats in data.split_stats.items():
        truncated = float(np.mean(data.full_lengths[split] > max_len))
        logging.info(
            "%s lengths in tokens (START included, before truncation): %s; %.1f%% truncated",
            split,
            format_stats(stats),
            100 * truncated,
        )


def load_imdb_for(config) -> ImdbData:
    """``load_imdb`` with the settings of a config (the validation split drawn from its seed).

    Args:
      config: a config with the data fields of ``configs/default.py``.
    """
    return load_imdb(
        vocab_size=config.vocab_size,
        max_len=config.max_len,
        padding=config.padding,
        truncating=config.truncating,
        validation_fraction=config.validation_fraction,
        split_seed=config.seed,
        data_dir=config.data_dir or None,
        cache_dir=config.cache_dir or None,
        max_examples=config.max_examples or None,
    )
