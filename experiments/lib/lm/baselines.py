"""Count-based baselines of the language-modelling study: unigram, add-k bigram, Kneser-Ney.

Each is estimated from the training text and scored on every predicted token of a split, as the
language model is (``rnn_jax.data.text``: each review's bytes and its end, predicted from the
review's own beginning). A context never reaches back past its review's ``BOUNDARY``: the
positions before it read as ``BOUNDARY`` too, as a reset recurrent state knows nothing before it.

* ``unigram``: add-k smoothed byte frequencies (k = 0.01, over the 257 tokens).
* ``bigram``: add-k smoothed counts of each token after the previous one (k = 0.01).
* ``kneser_ney``: interpolated Kneser-Ney of order n (Chen & Goodman 1999, section 3.5: the
  highest order on counts, every lower order on continuation counts, one absolute discount per
  order, ``D = n1 / (n1 + 2 n2)``), down to a uniform distribution over the 257 tokens.

All in NumPy: an n-gram is a base-257 integer, counts come from ``np.unique`` and are looked up
with ``np.searchsorted``.
"""

import math

import numpy as np

from rnn_jax.data.streams import stream_tokens
from rnn_jax.data.text import BOUNDARY, VOCAB_SIZE, Documents

ADD_K = 0.01


def targets_and_contexts(documents: Documents, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Every predicted token and the ``order - 1`` tokens before it within its review.

    Returns:
      ``(targets <int64>[N], contexts <int64>[N, order - 1])``, the nearest token last.
    """
    tokens = stream_tokens(documents, list(range(len(documents))), end=True).astype(np.int64)
    # Where each position's review starts (its BOUNDARY): nothing before it is visible.
    start = np.maximum.accumulate(np.where(tokens == BOUNDARY, np.arange(len(tokens)), 0))
    positions = np.arange(1, len(tokens))
    contexts = np.empty((len(positions), order - 1), np.int64)
    for back in range(1, order):
        source = positions - back
        visible = source >= start[positions - 1]
        contexts[:, order - 1 - back] = np.where(visible, tokens[np.maximum(source, 0)], BOUNDARY)
    # The last token of the stream is the end of the last review; no position predicts after it.
    return tokens[positions], contexts


def bits(probabilities: np.ndarray) -> float:
    """Mean bits per token of the probabilities the model gave the true tokens."""
    return float(-np.mean(np.log2(probabilities)))


def unigram(train: Documents, documents: Documents) -> float:
    targets, _ = targets_and_contexts(train, 1)
    counts = np.bincount(targets, minlength=VOCAB_SIZE) + ADD_K
    scored, _ = targets_and_contexts(documents, 1)
    return bits(counts[scored] / counts.sum())


def bigram(train: Documents, documents: Documents) -> float:
    targets, contexts = targets_and_contexts(train, 2)
    counts = np.zeros((VOCAB_SIZE, VOCAB_SIZE))
    np.add.at(counts, (contexts[:, 0], targets), 1)
    counts += ADD_K
    scored, scored_contexts = targets_and_contexts(documents, 2)
    rows = scored_contexts[:, 0]
    return bits(counts[rows, scored] / counts.sum(axis=1)[rows])


def _ids(contexts: np.ndarray, targets: np.ndarray | None = None) -> np.ndarray:
    """Base-257 integers of context rows (and a target appended)."""
    ids = np.zeros(len(contexts), np.int64)
    for column in range(contexts.shape[1]):
        ids = ids * VOCAB_SIZE + contexts[:, column]
    return ids if targets is None else ids * VOCAB_SIZE + targets


class _Table:
    """Sorted unique keys and a value for each: ``lookup`` gives 0 for a missing key."""

    def __init__(self, keys: np.ndarray, values: np.ndarray):
        self.keys, self.values = keys, values

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        index = np.clip(np.searchsorted(self.keys, keys), 0, max(len(self.keys) - 1, 0))
        found = (len(self.keys) > 0) & (self.keys[index] == keys)
        return np.where(found, self.values[index], 0)


class KneserNey:
    """Interpolated Kneser-Ney of ``order`` (the module docstring), counted on ``train``."""

    def __init__(self, train: Documents, order: int):
        self.order = order
        targets, contexts = targets_and_contexts(train, order)
        self.levels = []  # Order k at levels[k - 1]: (gram counts, context totals, types, D).
        keys, counts = np.unique(_ids(contexts, targets), return_counts=True)
        for k in range(order, 0, -1):  # From the highest order down.
            if k < order:  # Continuation counts: the distinct tokens seen before each k-gram.
                keys, counts = np.unique(keys % VOCAB_SIZE**k, return_counts=True)
            n1, n2 = np.sum(counts == 1), np.sum(counts == 2)
            discount = n1 / (n1 + 2 * n2) if n1 + n2 else 0.5
            context_keys, position = np.unique(keys // VOCAB_SIZE, return_inverse=True)
            totals = np.bincount(position, weights=counts)
            types = np.bincount(position).astype(np.float64)
            self.levels.append(
                (
                    _Table(keys, counts.astype(np.float64)),
                    _Table(context_keys, totals),
                    _Table(context_keys, types),
                    discount,
                )
            )
        self.levels.reverse()

    def probabilities(self, documents: Documents) -> np.ndarray:
        """The probability of every predicted token of ``documents``, in order."""
        return self.probability(*targets_and_contexts(documents, self.order))

    def distribution(self, context: np.ndarray) -> np.ndarray:
        """<float64>[257]: the next token's distribution after ``context`` (``order - 1`` ids)."""
        targets = np.arange(VOCAB_SIZE)
        return self.probability(targets, np.tile(context, (VOCAB_SIZE, 1)))

    def probability(self, targets: np.ndarray, contexts: np.ndarray) -> np.ndarray:
        """<float64>[N]: p(targets | contexts), ``contexts`` <int64>[N, order - 1]."""
        p = np.full(len(targets), 1.0 / VOCAB_SIZE)
        for k in range(1, self.order + 1):
            grams, totals, types, discount = self.levels[k - 1]
            context = _ids(contexts[:, self.order - k :]) if k > 1 else np.zeros_like(targets)
            count = grams.lookup(context * VOCAB_SIZE + targets)
            total = totals.lookup(context)
            seen = total > 0
            safe = np.where(seen, total, 1.0)
            backoff = discount * types.lookup(context) / safe
            p = np.where(seen, np.maximum(count - discount, 0.0) / safe + backoff * p, p)
        return p

    def bits_per_character(self, documents: Documents) -> float:
        return bits(self.probabilities(documents))


def prefix(documents: Documents, characters: int) -> Documents:
    """The first reviews of ``documents`` that hold ``characters`` predicted tokens.

    All of them if they hold fewer.
    """
    tokens = np.cumsum(documents.lengths() + 1)
    count = int(np.searchsorted(tokens, characters)) + 1
    return documents.subset(np.arange(min(count, len(documents))))


def uniform() -> float:
    """Bits per token of the uniform distribution over the 257 tokens."""
    return math.log2(VOCAB_SIZE)


VERSION = 1  # Of the table below: a stored table of another version is counted again.


def table(read, orders: tuple[int, ...], characters: int) -> list[dict]:
    """Every baseline's validation and test bits per character, as the study's table lists them.

    Args:
      read: the reviews' text (``rnn_jax.data.text.ReviewText``).
      orders: the Kneser-Ney orders to count.
      characters: the runs' budget: each order is also counted on the training reviews that
        hold this many characters (what one run trains on).

    Returns:
      Rows of ``model``, ``order`` (None for the add-k models), ``counted_on`` (characters of
      training text), ``validation_bpc`` and ``test_bpc``.
    """
    seen = prefix(read.train, characters)
    everything = read.train.predicted_tokens
    rows = [
        {"model": "uniform over 257 tokens", "order": 0, "counted_on": 0}
        | {"validation_bpc": uniform(), "test_bpc": uniform()},
        {
            "model": f"unigram, add-{ADD_K:g}",
            "order": 1,
            "counted_on": everything,
            "validation_bpc": unigram(read.train, read.validation),
            "test_bpc": unigram(read.train, read.test),
        },
        {
            "model": f"bigram, add-{ADD_K:g}",
            "order": 2,
            "counted_on": everything,
            "validation_bpc": bigram(read.train, read.validation),
            "test_bpc": bigram(read.train, read.test),
        },
    ]
    for order in orders:
        for counted in (read.train, seen):
            model = KneserNey(counted, order)
            rows.append(
                {
                    "model": f"interpolated Kneser-Ney, order {order}",
                    "order": order,
                    "counted_on": counted.predicted_tokens,
                    "validation_bpc": model.bits_per_character(read.validation),
                    "test_bpc": model.bits_per_character(read.test),
                }
            )
    return rows
