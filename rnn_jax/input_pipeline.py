"""IMDB sentiment data: tfds `imdb_reviews` -> vocabulary -> padded int arrays -> batches.

The preparation reproduces the course's `keras.datasets.imdb` + `pad_sequences` (same id
convention, see `rnn_jax.vocabulary`), with an honest validation split and a disk cache.
Batching is plain numpy rather than `tf.data` so the order of examples is a pure function of
`(seed, epoch)` and a run can resume in the middle of an epoch.

Typical use:

    data = load_imdb(vocab_size=10_000, max_len=200)
    for step, batch in enumerate(train_batches(data.train, 64, seed=0, epoch=epoch)):
        ...
    for batch in eval_batches(data.validation, 256):
        ...  # weigh every per-example metric by batch["mask"]

TensorFlow and tfds are imported only when the dataset is actually read, so a cache hit and
everything else here stay free of TensorFlow's import time and memory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from absl import logging

from rnn_jax import files
from rnn_jax.vocabulary import (
    INDEX_FROM,
    OOV_ID,
    PAD_ID,
    START_ID,
    TOKENIZER_VERSION,
    Vocabulary,
    decode_review,
    tokenize,
)

__all__ = [
    "INDEX_FROM",
    "OOV_ID",
    "PAD_ID",
    "START_ID",
    "TOKENIZER_VERSION",
    "DataNotFoundError",
    "ImdbData",
    "Vocabulary",
    "decode_review",
    "default_cache_dir",
    "eval_batches",
    "length_statistics",
    "load_imdb",
    "num_eval_batches",
    "num_train_batches",
    "pad_sequences",
    "shard_for_process",
    "tokenize",
    "train_batches",
]

DATASET_NAME = "imdb_reviews/plain_text"
DATASET_VERSION = "1.0.0"
# Bump when the cache file's layout or the way arrays are derived changes (not the tokenizer:
# that has its own TOKENIZER_VERSION).
CACHE_FORMAT_VERSION = 1

SPLITS = ("train", "validation", "test")
_MODES = ("pre", "post")
_ARRAY_KEYS = ("token_ids", "length", "label")


class DataNotFoundError(RuntimeError):
    """The prepared `imdb_reviews/plain_text` dataset is not where tfds was told to look."""


class SplitSizeError(ValueError):
    """The validation fraction leaves no row for validation or none for training."""


@dataclasses.dataclass
class ImdbData:
    """IMDB prepared for training.

    Each split is a batch-shaped dict (the Batch contract of DESIGN.md):
    `{"token_ids": <int32>[N, max_len], "length": <int32>[N], "label": <int32>[N]}`, where
    `length` counts the real (non-pad) tokens kept (`START_ID` among them unless 'pre'
    truncation cut it with the review's beginning), and `label` is 1 for a positive review.

    Attributes:
        train: the training rows (tfds train minus the validation rows).
        validation: rows carved from tfds train, see `load_imdb` (no rows if the run refits on
            all of train, `validation_fraction=0`).
        test: tfds test, in tfds order.
        vocab: built from `train` only.
        stats: `length_statistics` of the training rows' full lengths (before truncation).
        full_lengths: per split, `<int32>[N]` encoded lengths before truncation (`START_ID`
            included), aligned with the split's rows.
        split_stats: per split, `length_statistics` of `full_lengths`.
        source_index: per split, `<int64>[N]` position of each row in its tfds split, to look
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
        """The split called `name` ("train", "validation" or "test")."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return getattr(self, name)


# --------------------------------------------------------------------------------------------
# Padding and statistics.


def _check_mode(argument: str, value: str) -> None:
    if value not in _MODES:
        allowed = " or ".join(repr(m) for m in _MODES)
        raise ValueError(f"{argument}={value!r} is not supported; use {allowed}")


def _check_int(argument: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{argument} must be {what}, got {value!r}")
    return int(value)


def pad_sequences(
    seqs: Sequence[Sequence[int]],
    max_len: int,
    padding: str = "pre",
    truncating: str = "pre",
) -> tuple[np.ndarray, np.ndarray]:
    """Pads and truncates id sequences to one length, as Keras's `pad_sequences` does.

    Keras's defaults are kept ("pre" for both): padding goes in front, and a long sequence keeps
    its end. Note that "pre" truncation therefore drops `START_ID` from long reviews, exactly as
    in the course; `length` still says how many real tokens a row holds.

    Args:
        seqs: N sequences of token ids (lists or 1-d arrays, possibly empty).
        max_len: length of every output row.
        padding: "pre" puts the `PAD_ID`s in front of the tokens, "post" behind them.
        truncating: "pre" drops tokens from the start of a sequence longer than `max_len`,
            "post" drops them from the end.

    Returns:
        `(token_ids <int32>[N, max_len], length <int32>[N])` with
        `length[i] = min(len(seqs[i]), max_len)`.

    Raises:
        ValueError: for a `padding` or `truncating` other than "pre"/"post", or `max_len < 1`.
    """
    _check_mode("padding", padding)
    _check_mode("truncating", truncating)
    max_len = _check_int("max_len", max_len)
    token_ids = np.full((len(seqs), max_len), PAD_ID, dtype=np.int32)
    length = np.zeros(len(seqs), dtype=np.int32)
    for i, seq in enumerate(seqs):
        seq = np.asarray(seq, dtype=np.int32)
        if seq.ndim != 1:
            raise ValueError(f"sequence {i} must be 1-d, got shape {seq.shape}")
        kept = seq[-max_len:] if truncating == "pre" else seq[:max_len]
        k = len(kept)
        if padding == "pre":
            # `max_len - k`, not `-k`: for k == 0 the slice `[-0:]` would be the whole row.
            token_ids[i, max_len - k :] = kept
        else:
            token_ids[i, :k] = kept
        length[i] = k
    return token_ids, length


def length_statistics(lengths: np.ndarray) -> dict:
    """Summary of sequence lengths, to choose `max_len` from (e.g. p95 covers 95% of reviews).

    Args:
        lengths: `<int>[N]` full lengths, before any truncation.

    Returns:
        `{"count", "mean", "median", "p90", "p95", "p99", "min", "max"}` as Python numbers.

    Raises:
        ValueError: for no lengths at all.
    """
    lengths = np.asarray(lengths).ravel()
    if lengths.size == 0:
        raise ValueError("length_statistics needs at least one length")
    p50, p90, p95, p99 = np.percentile(lengths, [50, 90, 95, 99])
    return {
        "count": int(lengths.size),
        "mean": float(lengths.mean()),
        "median": float(p50),
        "p90": float(p90),
        "p95": float(p95),
        "p99": float(p99),
        "min": int(lengths.min()),
        "max": int(lengths.max()),
    }


def _format_stats(stats: Mapping) -> str:
    return (
        f"n={stats['count']} mean={stats['mean']:.1f} median={stats['median']:.0f} "
        f"p90={stats['p90']:.0f} p95={stats['p95']:.0f} p99={stats['p99']:.0f} "
        f"max={stats['max']}"
    )


# --------------------------------------------------------------------------------------------
# Reading tfds.


def _resolve_data_dir(data_dir: str | os.PathLike | None) -> tuple[str, str]:
    """Where tfds will look, and why there (for the error message)."""
    if data_dir:
        return os.fspath(data_dir), "data_dir"
    if os.environ.get("TFDS_DATA_DIR"):
        return os.environ["TFDS_DATA_DIR"], "$TFDS_DATA_DIR"
    # tfds's own default; spelled out so the check below does not need to import tfds.
    return os.path.join(os.path.expanduser("~"), "tensorflow_datasets"), "tfds default"


def _not_found(data_dir: str, reason: str = "") -> DataNotFoundError:
    detail = f" ({reason})" if reason else ""
    return DataNotFoundError(
        f"IMDB dataset not found in {data_dir}{detail}: set TFDS_DATA_DIR or --config.data_dir "
        f"to a folder containing {DATASET_NAME}/{DATASET_VERSION}"
    )


def _read_split(name: str, data_dir: str, max_examples: int | None) -> tuple[list[str], np.ndarray]:
    """Reads one tfds split as texts and labels, in tfds order (no file shuffling).

    Tests replace this function to run `load_imdb` on fake texts.

    Args:
        name: "train" or "test".
        data_dir: the tfds data folder (already resolved).
        max_examples: read only the first this many examples, if not None.

    Returns:
        `(texts, labels <int32>[N])`.

    Raises:
        DataNotFoundError: when the prepared dataset is missing or tfds cannot open it.
    """
    version_dir = os.path.join(data_dir, *DATASET_NAME.split("/"), DATASET_VERSION)
    # Checked before importing TensorFlow so the common mistake fails in a second with one line,
    # not after TF's start-up with tfds's attempt to download. Remote paths (gs://...) are left to
    # tfds.
    is_remote = "://" in data_dir
    if not is_remote and not os.path.isfile(os.path.join(version_dir, "dataset_info.json")):
        raise _not_found(data_dir)

    import tensorflow as tf

    try:
        # tfds only reads here; keep TensorFlow off any GPU so JAX keeps all of its memory.
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # GPUs already initialised by someone else: too late, and harmless.
        pass
    import tensorflow_datasets as tfds

    split = name if max_examples is None else f"{name}[:{int(max_examples)}]"
    texts: list[str] = []
    labels: list[np.ndarray] = []
    try:
        builder = tfds.builder(
            f"{DATASET_NAME}:{DATASET_VERSION}", data_dir=data_dir, try_gcs=False
        )
        if not builder.is_prepared():
            raise _not_found(data_dir, "not prepared")
        ds = builder.as_dataset(split=split, shuffle_files=False)
        # Batched reads are ~10x faster than one example per Python iteration.
        for ex in tfds.as_numpy(ds.batch(1024)):
            texts.extend(t.decode("utf-8", errors="replace") for t in ex["text"])
            labels.append(ex["label"].astype(np.int32))
    except DataNotFoundError:
        raise
    except Exception as e:  # tfds raises many types; the user needs one actionable line.
        logging.debug("tfds failed to read %s", data_dir, exc_info=True)
        first_line = (str(e).strip().splitlines() or [""])[0][:200]
        raise _not_found(data_dir, f"{type(e).__name__}: {first_line}") from None
    label = np.concatenate(labels) if labels else np.zeros(0, np.int32)
    return texts, label


# --------------------------------------------------------------------------------------------
# Cache.


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/rnn_jax`, else `~/.cache/rnn_jax`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnn_jax"


def _cache_key(**settings) -> str:
    """Hash of everything that changes the arrays; a new setting must be added here."""
    key = {
        "dataset": DATASET_NAME,
        "dataset_version": DATASET_VERSION,
        "tokenizer_version": TOKENIZER_VERSION,
        # tokenize's lower(), NFC and \w follow the running Python's Unicode tables.
        "unicode": unicodedata.unidata_version,
        "cache_format": CACHE_FORMAT_VERSION,
        **settings,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"imdb_reviews-plain_text-{DATASET_VERSION}-{key[:20]}.npz"


def _save_cache(path: Path, data: ImdbData, key: str) -> None:
    """Writes one .npz (arrays and vocabulary) atomically, plus a readable vocab .json beside it.

    The .npz alone is authoritative, so the cache is complete or absent whatever moment a run is
    killed at; the .json is for people and other tools.
    """
    arrays = {"key": np.array(key), "vocab_json": np.array(json.dumps(data.vocab.to_dict()))}
    for split in SPLITS:
        for k, v in data.split(split).items():
            arrays[f"{split}__{k}"] = v
        arrays[f"{split}__full_length"] = data.full_lengths[split]
        arrays[f"{split}__source_index"] = data.source_index[split]
    # Uncompressed: mostly small ints and zeros would compress ~5x, but loading would then cost a
    # decompression on every run; the files are tens of MB.
    files.atomic_write(path, lambda f: np.savez(f, **arrays))
    data.vocab.to_json(path.with_suffix(".vocab.json"))


def _load_cache(path: Path, key: str, max_len: int) -> ImdbData | None:
    """Reads a cache file; None (and a warning) if it is missing, foreign or damaged."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                raise ValueError("cache key mismatch")
            vocab = Vocabulary.from_dict(json.loads(str(z["vocab_json"])))
            splits, full_lengths, source_index = {}, {}, {}
            for split in SPLITS:
                splits[split] = {k: z[f"{split}__{k}"] for k in _ARRAY_KEYS}
                full_lengths[split] = z[f"{split}__full_length"]
                source_index[split] = z[f"{split}__source_index"]
                n = len(splits[split]["label"])
                shapes_ok = (
                    splits[split]["token_ids"].shape == (n, max_len)
                    and splits[split]["length"].shape == (n,)
                    and full_lengths[split].shape == (n,)
                    and source_index[split].shape == (n,)
                )
                if not shapes_ok:
                    raise ValueError(f"inconsistent shapes in split {split}")
    except Exception as e:  # Any damage means "rebuild": the cache is only an optimisation.
        logging.warning(
            "Ignoring unreadable cache %s (%s: %s); rebuilding.", path, type(e).__name__, e
        )
        return None
    return _assemble(splits, vocab, full_lengths, source_index, path, from_cache=True)


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


def _validation_split(num_examples: int, fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """Row indices `(train, validation)`, each sorted, from one seeded permutation.

    `fraction == 0` keeps every row for training (validation is empty): the refit of a config
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

    Steps: read tfds `imdb_reviews/plain_text` train (25,000) and test (25,000); `tokenize`;
    carve the validation rows from train; build the `Vocabulary` from the remaining training rows
    alone (unlike Keras, which counts all of train: validation words would otherwise get ids and
    make validation slightly optimistic; test words never do); encode with `START_ID` first and
    `OOV_ID` for unknown words; `pad_sequences`. Length statistics of each split are logged.

    Validation split: `perm = np.random.default_rng(split_seed).permutation(N)`; the last
    `round(validation_fraction * N)` rows of `perm` are validation. Both parts keep tfds order.

    Cache: the result is stored in `cache_dir` as one .npz (plus the vocabulary as .json),
    named by a hash of every argument that changes the arrays (all but `data_dir`, `cache_dir`,
    `use_cache`), the tokenizer version and the dataset version. A later call with the same
    arguments loads it (well under a second) without importing TensorFlow. A damaged cache file
    is ignored and rewritten.

    Args:
        vocab_size: size of the id space; ids `>= vocab_size` become `OOV_ID`.
        max_len: time steps per row.
        padding: "pre" or "post", see `pad_sequences`.
        truncating: "pre" (keep a long review's end, as Keras) or "post", see `pad_sequences`.
        validation_fraction: share of tfds train held out for validation, in [0, 1); 0 trains
            on all of it (validation is then empty).
        split_seed: seed of the validation permutation.
        data_dir: tfds data folder; default `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`.
        cache_dir: default `default_cache_dir()`.
        max_examples: read only the first this many examples of EACH tfds split (smoke tests).
        use_cache: False neither reads nor writes the cache.

    Returns:
        The splits, vocabulary and length statistics.

    Raises:
        DataNotFoundError: the dataset is not in the data folder (and nothing is cached).
        SplitSizeError: `validation_fraction` leaves no row for validation or for training
            (found once the split's size is known, after reading).
        ValueError: for an invalid argument.
    """
    _check_mode("padding", padding)
    _check_mode("truncating", truncating)
    max_len = _check_int("max_len", max_len)
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction!r}")
    split_seed = _check_int("split_seed", split_seed, minimum=0)
    if max_examples is not None:
        max_examples = _check_int("max_examples", max_examples)
    # Fail on a bad vocab_size now, not after reading and tokenizing 50,000 reviews.
    Vocabulary([], vocab_size)

    key = _cache_key(
        vocab_size=int(vocab_size),
        max_len=max_len,
        padding=padding,
        truncating=truncating,
        validation_fraction=float(validation_fraction),
        split_seed=split_seed,
        max_examples=max_examples,
    )
    path = _cache_path(Path(cache_dir) if cache_dir else default_cache_dir(), key)
    if use_cache:
        data = _load_cache(path, key, max_len)
        if data is not None:
            logging.info("Loaded IMDB from cache %s", path)
            _log_stats(data, max_len)
            return data

    resolved_dir, _ = _resolve_data_dir(data_dir)
    train_texts, train_labels = _read_split("train", resolved_dir, max_examples)
    test_texts, test_labels = _read_split("test", resolved_dir, max_examples)
    train_labels = np.asarray(train_labels, dtype=np.int32)
    test_labels = np.asarray(test_labels, dtype=np.int32)
    logging.info("Read %d train and %d test reviews", len(train_texts), len(test_texts))

    word_index: dict[str, int] = {}
    train_rows = _words_to_provisional_ids(train_texts, word_index)
    train_idx, val_idx = _validation_split(len(train_rows), validation_fraction, split_seed)
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

    data = _assemble(
        splits, vocab, full_lengths, source_index, path if use_cache else None, from_cache=False
    )
    _log_stats(data, max_len)
    if use_cache:
        try:
            _save_cache(path, data, key)
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
            _format_stats(stats),
            100 * truncated,
        )


# --------------------------------------------------------------------------------------------
# Batching.


def _num_rows(data: Mapping[str, np.ndarray]) -> int:
    sizes = {k: len(v) for k, v in data.items()}
    if not sizes:
        raise ValueError("data has no arrays")
    if len(set(sizes.values())) != 1:
        raise ValueError(f"arrays of data differ in length: {sizes}")
    return next(iter(sizes.values()))


def num_train_batches(num_examples: int, batch_size: int) -> int:
    """Batches per training epoch: the remainder is dropped (it changes with every reshuffle)."""
    batch_size = _check_int("batch_size", batch_size)
    return num_examples // batch_size


def num_eval_batches(num_examples: int, batch_size: int) -> int:
    """Batches `eval_batches` yields: the last one is padded, so this rounds up."""
    batch_size = _check_int("batch_size", batch_size)
    return math.ceil(num_examples / batch_size)


def train_batches(
    data: Mapping[str, np.ndarray],
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    start_batch: int = 0,
    bucket_width: int = 0,
    padding: str = "pre",
) -> Iterator[dict[str, np.ndarray]]:
    """Yields one epoch of shuffled training batches.

    The order is `np.random.default_rng([seed, epoch]).permutation(N)`, so it depends on nothing
    but its arguments: every host of a multi-host run draws the same global batches, and a run
    restarted at `(epoch, start_batch)` sees exactly the batches it would have seen.

    Length bucketing (`bucket_width > 0`): within each run of `BUCKET_CHUNK_BATCHES` batches of
    the permutation, rows are sorted by length before they are cut into batches, the batches are
    shuffled, and each batch's `token_ids` are cut to its longest review rounded up to a multiple
    of `bucket_width` (at most `T` columns), dropping only padding. So a batch of short reviews
    costs short scans, and there are at most `ceil(T / bucket_width)` batch shapes (one
    compilation each). Only a model that masks padding computes the same for the cut rows.

    Args:
        data: `{"token_ids": <int32>[N, T], "length": <int32>[N], "label": <int32>[N]}` (any
            arrays sharing the leading dimension N are batched alike).
        batch_size: rows per batch; the last `N % batch_size` rows of the permutation are left
            out of this epoch.
        seed: run seed (non-negative).
        epoch: epoch number (non-negative); each epoch has its own permutation.
        start_batch: skip this many batches (already trained on); nothing is gathered for them.
        bucket_width: 0 for fixed-shape batches in plain permutation order, else the length
            bucketing above.
        padding: where `data`'s padding is, `'pre'` or `'post'` (which columns bucketing cuts).

    Yields:
        Dicts with the keys of `data`, e.g. `token_ids <int32>[batch_size, T]` (`T` or less with
        bucketing).

    Raises:
        ValueError: (when the first batch is asked for, as this is a generator) if
            `N < batch_size` (an epoch would have no batch), `start_batch` is outside
            `[0, num_train_batches(N, batch_size)]`, or an argument is negative.
    """
    n = _num_rows(data)
    num_batches = num_train_batches(n, batch_size)
    if num_batches == 0:
        raise ValueError(f"batch_size={batch_size} exceeds the {n} training examples")
    if not 0 <= start_batch <= num_batches:
        raise ValueError(f"start_batch={start_batch} outside [0, {num_batches}]")
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be non-negative, got seed={seed}, epoch={epoch}")
    bucket_width = _check_int("bucket_width", bucket_width, minimum=0)
    _check_mode("padding", padding)
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(n)
    batches = perm[: num_batches * batch_size].reshape(num_batches, batch_size)
    if bucket_width:
        batches = _length_sorted_batches(batches, data["length"], rng)
    for idx in batches[start_batch:]:
        batch = {k: v[idx] for k, v in data.items()}
        yield cut_padding(batch, bucket_width, padding) if bucket_width else batch


# Rows sorted by length together: enough that batches group similar lengths, few enough that
# every part of the shuffled training set still lands in every region of the epoch.
BUCKET_CHUNK_BATCHES = 50


def _length_sorted_batches(
    batches: np.ndarray, lengths: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Rows of `batches` <int>[num_batches, batch] regrouped by length, batch order shuffled."""
    num_batches, batch_size = batches.shape
    rows = batches.reshape(-1)
    chunk = BUCKET_CHUNK_BATCHES * batch_size
    parts = [rows[i : i + chunk] for i in range(0, len(rows), chunk)]
    rows = np.concatenate([p[np.argsort(lengths[p], kind="stable")] for p in parts])
    return rows.reshape(num_batches, batch_size)[rng.permutation(num_batches)]


def cut_padding(
    batch: dict[str, np.ndarray], bucket_width: int, padding: str
) -> dict[str, np.ndarray]:
    """`batch` with `token_ids` cut to the longest `length`, rounded up to `bucket_width`.

    Args:
        batch: `{"token_ids": <int32>[B, T], "length": <int32>[B], ...}`.
        bucket_width: positive; the kept width is a multiple of it (or `T`).
        padding: `'pre'` (padding in the first columns, which are cut) or `'post'`.

    Returns:
        The batch with `token_ids <int32>[B, W]`, `W <= T`; only padding columns were removed.
    """
    bucket_width = _check_int("bucket_width", bucket_width)
    time = batch["token_ids"].shape[1]
    longest = max(int(batch["length"].max()), 1)
    width = min(time, -(-longest // bucket_width) * bucket_width)
    columns = slice(time - width, time) if padding == "pre" else slice(0, width)
    return {**batch, "token_ids": batch["token_ids"][:, columns]}


def eval_batches(
    data: Mapping[str, np.ndarray], batch_size: int, bucket_width: int = 0, padding: str = "pre"
) -> Iterator[dict[str, np.ndarray]]:
    """Yields every row once, in fixed-size batches with a `mask`.

    The last batch is filled up with copies of its first row (a real review, so models never see
    a zero-length or otherwise unusual row) whose `mask` is False; weigh per-example metrics by
    `mask` and every example counts exactly once.

    Args:
        data: as in `train_batches`.
        batch_size: rows per batch.
        bucket_width: 0 visits the rows in order, in `[batch_size, T]` batches. > 0 visits them
            shortest first and cuts each batch's padding as `train_batches` does (sums over the
            split are the same, up to float rounding; far fewer padded steps are computed).
        padding: where `data`'s padding is, `'pre'` or `'post'`.

    Yields:
        Dicts with the keys of `data` (`[batch_size, ...]`) plus `mask <bool>[batch_size]`.
    """
    batch_size = _check_int("batch_size", batch_size)
    bucket_width = _check_int("bucket_width", bucket_width, minimum=0)
    _check_mode("padding", padding)
    n = _num_rows(data)
    order = np.argsort(data["length"], kind="stable") if bucket_width else np.arange(n)
    for start in range(0, n, batch_size):
        rows = order[start : start + batch_size]
        mask = np.arange(batch_size) < len(rows)
        idx = np.concatenate([rows, np.full(batch_size - len(rows), rows[0])])
        batch = {k: v[idx] for k, v in data.items() if k != "mask"}
        batch["mask"] = mask
        yield cut_padding(batch, bucket_width, padding) if bucket_width else batch


def shard_for_process(
    batch: Mapping[str, np.ndarray], process_index: int, process_count: int
) -> dict[str, np.ndarray]:
    """The contiguous part of a global batch that one host feeds to its devices.

    Args:
        batch: global batch, every array `[global_batch, ...]`.
        process_index: this host, `jax.process_index()`.
        process_count: hosts, `jax.process_count()`.

    Returns:
        Rows `[process_index * B / P, (process_index + 1) * B / P)` of every array.

    Raises:
        ValueError: if the global batch size is not divisible by `process_count`, or
            `process_index` is not in `[0, process_count)`.
    """
    process_count = _check_int("process_count", process_count)
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} outside [0, {process_count})")
    global_size = _num_rows(batch)
    if global_size % process_count:
        raise ValueError(
            f"global batch size {global_size} is not divisible by process_count={process_count}"
        )
    per_host = global_size // process_count
    start = process_index * per_host
    return {k: v[start : start + per_host] for k, v in batch.items()}
