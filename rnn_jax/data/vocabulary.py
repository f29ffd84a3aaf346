"""Tokenizer and word-level vocabulary for IMDB reviews, with Keras's id convention.

Ids follow ``keras.datasets.imdb``, which the course teaches, so numbers quoted there carry over:

| id | meaning |
| --- | --- |
| ``PAD_ID = 0`` | padding |
| ``START_ID = 1`` | start of every review |
| ``OOV_ID = 2`` | any word outside the vocabulary |
| ``3`` (``INDEX_FROM``) | unused, kept free as in Keras |
| ``r + INDEX_FROM`` | the word of frequency rank ``r`` (``r = 1`` is the most frequent, so id 4) |

A vocabulary of size ``V`` keeps exactly the ids below ``V``, i.e. the ``V - INDEX_FROM - 1`` most
frequent training words; ``len(vocab) == V`` is the embedding table's row count.

This module needs neither TensorFlow nor JAX, so decoding reviews stays cheap to import.
"""

from __future__ import annotations

import functools
import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from rnn_jax.data import files

PAD_ID = 0
START_ID = 1
OOV_ID = 2
INDEX_FROM = 3

# Bump whenever ``tokenize`` changes what it returns: cached datasets are keyed on it.
TOKENIZER_VERSION = 1

PAD_TOKEN = "<pad>"
START_TOKEN = "<start>"
OOV_TOKEN = "<oov>"
UNUSED_TOKEN = "<unused>"

_JSON_FORMAT = "rnn_jax.vocabulary"
_JSON_VERSION = 1

# ``<br />`` is how the IMDB scrape encodes line breaks; left in, it would glue words ("end.<br />
# the" -> "end", "br", "the") and make "br" one of the most frequent words.
_BR_RE = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)
# Typographic apostrophes are folded into ASCII so "don’t" and "don't" are one word.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'"})


@functools.cache
def _word_re() -> re.Pattern[str]:
    """Compiles the word pattern on first use (scanning Unicode takes ~0.2 s, not at import)."""
    # Python's ``\w`` excludes combining marks (Unicode category M), which would cut words of
    # Devanagari, Thai, Arabic with diacritics, ... into pieces, so every mark is added to the
    # class. The ranges come from the running Python's Unicode database rather than a frozen table.
    ranges = []
    start = prev = None
    for code in range(0x110000):
        if unicodedata.category(chr(code))[0] == "M":
            if prev is not None and code == prev + 1:
                prev = code
                continue
            if start is not None:
                ranges.append((start, prev))
            start = prev = code
    if start is not None:
        ranges.append((start, prev))
    marks = "".join(f"\\U{a:08x}-\\U{b:08x}" if a != b else f"\\U{a:08x}" for a, b in ranges)
    char = f"[\\w{marks}]"
    # Apostrophes only inside a word: "don't" is one word, "'quoted'" becomes "quoted".
    return re.compile(f"{char}+(?:'{char}+)*")


def tokenize(text: str) -> list[str]:
    """Splits a review into lowercase words.

    Rules, in order: Unicode NFC normalisation (so composed and decomposed accents agree),
    lowercasing, ``<br />`` / ``<br>`` / ``<BR/>`` tags replaced by a space, typographic apostrophes
    (U+2019, U+02BC) folded to ``'``. A word is then a run of Unicode word characters (letters,
    digits, underscore, combining marks) with apostrophes allowed only between them: "don't" stays
    one word, leading and trailing apostrophes are stripped. Punctuation, symbols and emoji are
    dropped. Never raises on a ``str``.

    Args:
        text: the raw review.

    Returns:
        The words, in order; empty for a text without words.
    """
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects str, got {type(text).__name__}")
    text = unicodedata.normalize("NFC", text).lower()
    text = _BR_RE.sub(" ", text).translate(_APOSTROPHES)
    return _word_re().findall(text)


class Vocabulary:
    """The ``vocab_size - INDEX_FROM - 1`` most frequent training words and their Keras ids.

    ``words[i]`` is the word of frequency rank ``i + 1`` and has id ``i + INDEX_FROM + 1``
    (``words[0]`` has id 4). Ids 0..3 are reserved (see the module docstring). When the corpus has
    fewer distinct words than there is room for, the ids between the last word and ``vocab_size``
    are simply never produced; ``len(self)`` is still ``vocab_size``.

    Attributes:
        vocab_size: size of the id space (``0 <= id < vocab_size``), i.e. embedding rows.
        word_to_id: word -> id for the kept words.
    """

    def __init__(
        self,
        words: Sequence[str],
        vocab_size: int,
        counts: Sequence[int] | None = None,
    ):
        """Creates a vocabulary from words already in rank order.

        Args:
            words: the kept words, most frequent first; at most ``vocab_size - INDEX_FROM - 1``.
            vocab_size: size of the id space, at least ``INDEX_FROM + 2`` (room for one word).
            counts: optional training frequency of each word, for reporting only.
        """
        vocab_size = _check_vocab_size(vocab_size)
        words = tuple(words)
        capacity = vocab_size - INDEX_FROM - 1
        if len(words) > capacity:
            raise ValueError(
                f"{len(words)} words do not fit in vocab_size={vocab_size} "
                f"(room for {capacity} after the {INDEX_FROM + 1} reserved ids)"
            )
        if len(set(words)) != len(words):
            raise ValueError("words must be unique")
        if counts is not None:
            counts = tuple(int(c) for c in counts)
            if len(counts) != len(words):
                raise ValueError(f"got {len(counts)} counts for {len(words)} words")
        self.vocab_size = vocab_size
        self._words = words
        self._counts = counts
        self.word_to_id: dict[str, int] = {w: i + INDEX_FROM + 1 for i, w in enumerate(words)}

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], vocab_size: int) -> Vocabulary:
        """Keeps the most frequent words of ``counts``.

        Ranking is by count, descending; equal counts are ordered by the words themselves
        (Unicode code point order) so the result never depends on insertion or hash order.
        Words with a count of zero or less are never kept.

        Args:
            counts: word -> number of occurrences in the training texts.
            vocab_size: size of the id space.

        Returns:
            The vocabulary.
        """
        vocab_size = _check_vocab_size(vocab_size)
        capacity = vocab_size - INDEX_FROM - 1
        ranked = sorted(((-c, w) for w, c in counts.items() if c > 0))[:capacity]
        return cls([w for _, w in ranked], vocab_size, counts=[-c for c, _ in ranked])

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], vocab_size: int) -> Vocabulary:
        """Counts words over tokenized training texts and keeps the most frequent.

        Args:
            token_lists: one list of words per training text (see ``tokenize``). Pass training
                texts only: anything passed here can get an id.
            vocab_size: size of the id space.

        Returns:
            The vocabulary, ranked as in ``from_counts``.
        """
        counter: Counter[str] = Counter()
        for tokens in token_lists:
            counter.update(tokens)
        return cls.from_counts(counter, vocab_size)

    @property
    def words(self) -> list[str]:
        """The kept words, most frequent first; ``words[i]`` has id ``i + INDEX_FROM + 1``."""
        return list(self._words)

    @property
    def counts(self) -> list[int] | None:
        """Training counts aligned with ``words``, if known."""
        return None if self._counts is None else list(self._counts)

    @property
    def num_words(self) -> int:
        """Number of kept words (at most ``vocab_size - INDEX_FROM - 1``)."""
        return len(self._words)

    def __len__(self) -> int:
        return self.vocab_size

    def __contains__(self, word: object) -> bool:
        return word in self.word_to_id

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self.vocab_size == other.vocab_size and self._words == other._words

    def __hash__(self) -> int:
        return hash((self.vocab_size, self._words))

    def __repr__(self) -> str:
        head = ", ".join(self._words[:5])
        return (
            f"Vocabulary(vocab_size={self.vocab_size}, num_words={self.num_words}, [{head}, ...])"
        )

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Maps words to ids, ``START_ID`` first and ``OOV_ID`` for unknown words.

        Args:
            tokens: words as returned by ``tokenize``.

        Returns:
            ``len(tokens) + 1`` ids, each ``< vocab_size``.
        """
        get = self.word_to_id.get
        return [START_ID, *(get(t, OOV_ID) for t in tokens)]

    def id_to_word(self, token_id: int) -> str:
        """The word for one id; reserved ids give ``<pad>``, ``<start>``, ``<oov>``, ``<unused>``.

        Raises:
            ValueError: for an id outside ``[0, vocab_size)`` or one no word was assigned to.
        """
        token_id = int(token_id)
        reserved = {PAD_ID: PAD_TOKEN, START_ID: START_TOKEN, OOV_ID: OOV_TOKEN, 3: UNUSED_TOKEN}
        if token_id in reserved:
            return reserved[token_id]
        rank = token_id - INDEX_FROM - 1
        if 0 <= rank < len(self._words):
            return self._words[rank]
        raise ValueError(
            f"token id {token_id} is not in this vocabulary "
            f"(vocab_size={self.vocab_size}, {self.num_words} words)"
        )

    def decode(self, ids: Iterable[int]) -> str:
        """Ids back to text: ``PAD_ID`` and ``START_ID`` skipped, ``OOV_ID`` shown as ``<oov>``.

        Args:
            ids: token ids, e.g. one row ``<int32>[time]`` of a padded batch.

        Returns:
            The words joined by single spaces.

        Raises:
            ValueError: for an id that no word was assigned to (see ``id_to_word``).
        """
        skip = (PAD_ID, START_ID)
        return " ".join(
            self.id_to_word(i) for i in np.asarray(ids).ravel().tolist() if i not in skip
        )

    def to_dict(self) -> dict:
        """A JSON-serialisable description that ``from_dict`` reads back."""
        return {
            "format": _JSON_FORMAT,
            "version": _JSON_VERSION,
            "vocab_size": self.vocab_size,
            "index_from": INDEX_FROM,
            "tokenizer_version": TOKENIZER_VERSION,
            "words": list(self._words),
            "counts": self.counts,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> Vocabulary:
        """Reads what ``to_dict`` wrote.

        Raises:
            ValueError: if the dict is not a vocabulary of this format or id convention, or was
                built from words another ``tokenize`` split (its ids would not fit new text).
        """
        if d.get("format") != _JSON_FORMAT or d.get("version") != _JSON_VERSION:
            raise ValueError(
                f"not an {_JSON_FORMAT} v{_JSON_VERSION} file: "
                f"format={d.get('format')!r}, version={d.get('version')!r}"
            )
        if d.get("index_from") != INDEX_FROM:
            raise ValueError(f"index_from={d.get('index_from')!r}, this code uses {INDEX_FROM}")
        if d.get("tokenizer_version") != TOKENIZER_VERSION:
            raise ValueError(
                f"built from words of tokenizer v{d.get('tokenizer_version')}; this code "
                f"tokenizes with v{TOKENIZER_VERSION} (retrain, or use the code that built it)"
            )
        return cls(d["words"], d["vocab_size"], counts=d.get("counts"))

    def to_json(self, path: str | os.PathLike) -> None:
        """Writes the vocabulary as JSON, atomically (a temp file then ``os.replace``)."""
        files.write_json(path, self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Vocabulary:
        """Reads a vocabulary written by ``to_json``.

        Raises:
            ValueError: the file is not a vocabulary (empty, truncated, not JSON, or another
                format: see ``from_dict``); the message names the file. It is left as it is.
        """
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except ValueError as error:  # json.JSONDecodeError and UnicodeDecodeError.
            problem = "empty" if os.path.getsize(path) == 0 else f"not valid JSON: {error}"
            raise ValueError(f"{path} is damaged ({problem})") from None
        if not isinstance(d, Mapping):
            raise ValueError(f"{path} is damaged (holds a JSON {type(d).__name__}, not an object)")
        try:
            return cls.from_dict(d)
        except (ValueError, KeyError, TypeError) as error:  # KeyError, TypeError: fields missing.
            raise ValueError(f"{path} is not a usable vocabulary ({error})") from None


def decode_review(ids: Iterable[int], vocab: Vocabulary) -> str:
    """Text of one encoded review; same as ``vocab.decode(ids)``.

    Args:
        ids: ``<int>[time]`` token ids (padding and the start id are skipped).
        vocab: the vocabulary that encoded them.

    Returns:
        The words joined by spaces, out-of-vocabulary words shown as ``<oov>``.
    """
    return vocab.decode(ids)


def _check_vocab_size(vocab_size: int) -> int:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int | np.integer):
        raise TypeError(f"vocab_size must be an int, got {vocab_size!r}")
    if vocab_size < INDEX_FROM + 2:
        raise ValueError(
            f"vocab_size={vocab_size} leaves no room for words: ids 0..{INDEX_FROM} are reserved, "
            f"so vocab_size must be at least {INDEX_FROM + 2}"
        )
    return int(vocab_size)
