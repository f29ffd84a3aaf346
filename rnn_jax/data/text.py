"""The reviews' text for language modelling: bytes, one document per review, cached.

Each review of tfds ``imdb_reviews`` (labels unused) becomes its UTF-8 bytes, with ``<br />``
(the reviews' line break) turned into a newline. Token ids are the 256 byte values and
``BOUNDARY`` (256): a document is read as ``BOUNDARY`` followed by its bytes, and a stream of
documents is ``BOUNDARY d1 BOUNDARY d2 ... BOUNDARY``, so every byte is predicted from its own
review's beginning and each review's last byte predicts ``BOUNDARY``, its end. A review of n
bytes therefore has n + 1 predicted tokens, and bits per character are counted over them (the
count-based baselines are counted the same way).

Splits: ``train`` is the train split's reviews minus the held-out ``validation`` reviews, drawn
by a permutation of seed ``SPLIT_SEED`` (not the run's seed: runs of every seed read the same
text); ``test`` is the test split's reviews, in tfds order. The test split is only ever read
into ``test``: no test byte reaches training.

The arrays are cached as one ``.npz`` per setting (``rnn_jax.data.data_cache``), so a run after
the first reads them in a second without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
from absl import logging

from rnn_jax.data import data_cache, files, imdb_reader
from rnn_jax.data.input_pipeline import SplitSizeError, validation_split

BOUNDARY = 256  # The token before every review (and after the last one of a stream).
VOCAB_SIZE = 257  # 256 bytes and BOUNDARY.
SPLIT_SEED = 0  # The held-out validation reviews, the same for every run.
SPLITS = ("train", "validation", "test")
# Bump when the way the bytes are derived changes.
TEXT_FORMAT_VERSION = 1


def encode_review(text: str) -> np.ndarray:
    """<uint8>[n]: the review's UTF-8 bytes, ``<br />`` read as a newline."""
    return np.frombuffer(text.replace("<br />", "\n").encode("utf-8"), np.uint8)


@dataclasses.dataclass
class Documents:
    """Reviews as one byte array: review ``i`` is ``data[starts[i]:starts[i + 1]]``.

    Attributes:
      data: <uint8>[total bytes].
      starts: <int64>[reviews + 1], each review's first byte, then the total.
    """

    data: np.ndarray
    starts: np.ndarray

    @classmethod
    def from_bytes(cls, reviews: list[np.ndarray]) -> Documents:
        starts = np.zeros(len(reviews) + 1, np.int64)
        np.cumsum([len(r) for r in reviews], out=starts[1:])
        data = np.concatenate(reviews) if reviews else np.zeros(0, np.uint8)
        return cls(data.astype(np.uint8), starts)

    def __len__(self) -> int:
        return len(self.starts) - 1

    def lengths(self) -> np.ndarray:
        """<int64>[reviews], bytes per review."""
        return np.diff(self.starts)

    def review(self, index: int) -> np.ndarray:
        return self.data[self.starts[index] : self.starts[index + 1]]

    def subset(self, indices: np.ndarray) -> Documents:
        """The reviews ``indices``, in that order."""
        return Documents.from_bytes([self.review(int(i)) for i in indices])

    @property
    def predicted_tokens(self) -> int:
        """Tokens a model predicts on these reviews: every byte and each review's end."""
        return len(self.data) + len(self)


@dataclasses.dataclass
class ReviewText:
    """The three splits of the reviews' text (``SPLITS``)."""

    train: Documents
    validation: Documents
    test: Documents
    from_cache: bool = False

    def split(self, name: str) -> Documents:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return getattr(self, name)


def load_review_text(
    *,
    validation_fraction: float,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    max_examples: int | None = None,
    use_cache: bool = True,
) -> ReviewText:
    """Reads (or loads from the cache) the reviews' text, split as the module docstring says.

    Args:
      validation_fraction: share of the train split's reviews held out, in [0, 1).
      data_dir: tfds data folder; default ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``.
      cache_dir: default ``data_cache.default_cache_dir()``.
      max_examples: read only the first this many reviews of each tfds split (quick runs).
      use_cache: False neither reads nor writes the cache.

    Raises:
      DataNotFoundError: the dataset is not in the data folder (and nothing is cached).
      SplitSizeError: ``validation_fraction`` leaves no review for validation or training.
    """
    key = data_cache.cache_key(
        dataset=imdb_reader.DATASET_NAME,
        dataset_version=imdb_reader.DATASET_VERSION,
        text_format=TEXT_FORMAT_VERSION,
        validation_fraction=float(validation_fraction),
        split_seed=SPLIT_SEED,
        max_examples=max_examples,
    )
    path = data_cache.cache_path(
        Path(cache_dir) if cache_dir else data_cache.default_cache_dir(),
        f"imdb_reviews-text-{imdb_reader.DATASET_VERSION}",
        key,
    )
    if use_cache and (cached := _load(path, key)) is not None:
        logging.info("Loaded the reviews' text from cache %s", path)
        _log(cached)
        return cached
    directory, _ = imdb_reader.resolve_data_dir(data_dir)
    train_texts, _ = imdb_reader.read_split("train", directory, max_examples)
    test_texts, _ = imdb_reader.read_split("test", directory, max_examples)
    train_all = Documents.from_bytes([encode_review(t) for t in train_texts])
    if validation_fraction == 0:
        train_rows, validation_rows = np.arange(len(train_all)), np.zeros(0, np.int64)
    else:
        train_rows, validation_rows = validation_split(
            len(train_all), validation_fraction, SPLIT_SEED
        )
    text = ReviewText(
        train=train_all.subset(train_rows),
        validation=train_all.subset(validation_rows),
        test=Documents.from_bytes([encode_review(t) for t in test_texts]),
    )
    _log(text)
    if use_cache:
        try:
            _save(path, text, key)
        except OSError as error:  # A read-only or full disk costs speed next time, not this run.
            logging.warning("Could not write cache %s: %s", path, error)
    return text


def _save(path: Path, text: ReviewText, key: str) -> None:
    arrays = {"key": np.array(key)}
    for split in SPLITS:
        arrays[f"{split}__data"] = text.split(split).data
        arrays[f"{split}__starts"] = text.split(split).starts
    files.atomic_write(path, lambda f: np.savez(f, **arrays))


def _load(path: Path, key: str) -> ReviewText | None:
    """The cached text, or None (a warning for a damaged file, which is then rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                raise ValueError("cache key mismatch")
            splits = {s: Documents(z[f"{s}__data"], z[f"{s}__starts"]) for s in SPLITS}
        for split, documents in splits.items():
            if documents.starts[-1] != len(documents.data):
                raise ValueError(f"inconsistent offsets in split {split}")
    except Exception as error:  # Any damage means "rebuild": the cache is only an optimisation.
        logging.warning(
            "Ignoring unreadable cache %s (%s: %s); rebuilding.", path, type(error).__name__, error
        )
        return None
    return ReviewText(**splits, from_cache=True)


def _log(text: ReviewText) -> None:
    logging.info(
        "Reviews' text: %s",
        ", ".join(
            f"{s} {len(text.split(s)):,} reviews / {len(text.split(s).data):,} bytes"
            for s in SPLITS
        ),
    )


__all__ = [
    "BOUNDARY",
    "SPLIT_SEED",
    "VOCAB_SIZE",
    "Documents",
    "ReviewText",
    "SplitSizeError",
    "encode_review",
    "load_review_text",
]
