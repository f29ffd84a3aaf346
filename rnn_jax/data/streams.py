"""Streams of whole reviews for truncated backpropagation through time, cut into chunks.

A stream is reviews laid end to end, each starting with its ``BOUNDARY`` token
(``rnn_jax.data.text``). A model reads B streams side by side, ``length`` tokens at a time, and
hands its state from one chunk to the next; the state is reset where a review starts (the layer
does it, at every ``BOUNDARY``), so a review's predictions do not depend on what came before it.
A chunk is ``{"tokens": <int32>[B, length + 1]}``: the model reads ``tokens[:, :-1]`` and predicts
``tokens[:, 1:]``, so consecutive chunks overlap by one token.

**Training.** Each pass over the training text deals the reviews, shuffled by
``(seed, pass)``, to the B streams, whole: each next review goes to the shortest stream so far,
so every stream starts with a review's first token and the streams differ by less than a review.
Every pass is cut to the same number of chunks, ``chunks_per_pass`` (what every stream holds
whatever the shuffle), so step ``g`` of a run is chunk ``g % P`` of pass ``g // P``: the batches
are a function of the seed and the step alone, and a run resumes at any step. The tokens past
the cut are not trained on in that pass: up to the longest review and a chunk per stream, about
1.4% of the training text with ``configs/lm_lstm.py``'s 32 streams, other reviews' tails in
every pass.

**Evaluation.** Every review once, dealt longest first (so the streams end close together and
little of the last chunks is padding); each stream ends with one more ``BOUNDARY`` (the last
review's end) and is padded after it; ``mask`` <bool>[B, length] marks the predicted positions
that are real. Every review starts from a reset, so the dealing changes no score.
"""

import heapq
from collections.abc import Iterator

import numpy as np

from rnn_jax.data.text import BOUNDARY, Documents


class TextTooShortError(ValueError):
    """The text does not fill one chunk of every stream."""


def deal(lengths: np.ndarray, streams: int) -> list[list[int]]:
    """Reviews (in the given order) to streams: each to the shortest stream so far.

    Args:
      lengths: <int>[reviews], tokens each review takes in a stream.
      streams: B.

    Returns:
      For each stream, the indices of its reviews, in order.
    """
    heap = [(0, s) for s in range(streams)]  # (tokens so far, stream); ties to the lower stream.
    dealt = [[] for _ in range(streams)]
    for index, length in enumerate(lengths):
        total, stream = heapq.heappop(heap)
        dealt[stream].append(index)
        heapq.heappush(heap, (total + int(length), stream))
    return dealt


def stream_tokens(documents: Documents, order: list[int], end: bool = False) -> np.ndarray:
    """<uint16>[tokens]: ``BOUNDARY`` and the review, for each review of ``order``.

    ``end``: one more ``BOUNDARY`` after the last (the end the last review's last byte predicts).
    """
    lengths = documents.lengths()[order] + 1
    tokens = np.full(int(lengths.sum()) + int(end), BOUNDARY, np.uint16)
    position = 0
    for index, length in zip(order, lengths, strict=True):
        tokens[position + 1 : position + length] = documents.review(index)
        position += length
    return tokens


def chunks_per_pass(documents: Documents, streams: int, length: int) -> int:
    """Chunks every stream of any pass holds: ``P``.

    Dealing to the shortest stream leaves each stream at least ``total / B - longest`` tokens,
    whatever the order; a chunk needs ``length`` tokens, plus one to predict after the last.

    Raises:
      TextTooShortError: not one chunk per stream.
    """
    tokens = documents.lengths() + 1
    least = int(tokens.sum()) // streams - int(tokens.max(initial=0))
    count = (least - 1) // length
    if count < 1:
        raise TextTooShortError(
            f"{len(documents)} reviews ({len(documents.data):,} bytes) do not fill one chunk of "
            f"{length} tokens in each of {streams} streams"
        )
    return count


def training_pass(documents: Documents, streams: int, length: int, seed: int, index: int):
    """<uint16>[streams, P * length + 1]: pass ``index``'s streams, cut to ``chunks_per_pass``."""
    order = np.random.default_rng([seed, index]).permutation(len(documents))
    dealt = deal(documents.lengths()[order] + 1, streams)
    width = chunks_per_pass(documents, streams, length) * length + 1
    return np.stack([stream_tokens(documents, order[d].tolist())[:width] for d in dealt])


def train_chunks(
    documents: Documents, streams: int, length: int, *, seed: int, start: int, stop: int
) -> Iterator[dict[str, np.ndarray]]:
    """The chunks of global steps ``start .. stop - 1`` (see the module docstring).

    Yields:
      ``{"tokens": <int32>[streams, length + 1]}``.
    """
    per_pass = chunks_per_pass(documents, streams, length)
    current, tokens = None, None
    for step in range(start, stop):
        index, chunk = divmod(step, per_pass)
        if index != current:
            current, tokens = index, training_pass(documents, streams, length, seed, index)
        window = tokens[:, chunk * length : (chunk + 1) * length + 1]
        yield {"tokens": window.astype(np.int32)}


def eval_streams(documents: Documents, streams: int) -> list[np.ndarray]:
    """Every review once, dealt longest first to ``streams``; each ends with ``BOUNDARY``."""
    order = np.argsort(-documents.lengths(), kind="stable")
    dealt = deal(documents.lengths()[order] + 1, streams)
    return [stream_tokens(documents, order[d].tolist(), end=bool(d)) for d in dealt]


def num_eval_chunks(documents: Documents, streams: int, length: int) -> int:
    longest = max(len(s) for s in eval_streams(documents, streams))
    return -(-(longest - 1) // length)


def eval_chunks(documents: Documents, streams: int, length: int) -> Iterator[dict[str, np.ndarray]]:
    """Every review's tokens predicted once (see the module docstring).

    Yields:
      ``{"tokens": <int32>[streams, length + 1], "mask": <bool>[streams, length]}``; the
      first chunk starts every stream at a review's ``BOUNDARY``.
    """
    parts = eval_streams(documents, streams)
    chunks = -(-(max(len(s) for s in parts) - 1) // length)
    width = chunks * length + 1
    tokens = np.full((streams, width), BOUNDARY, np.int32)
    real = np.zeros((streams, width), bool)
    for row, part in enumerate(parts):
        tokens[row, : len(part)] = part
        real[row, : len(part)] = True
    for chunk in range(chunks):
        columns = slice(chunk * length, (chunk + 1) * length + 1)
        # A target is real when it is a token of the stream (the first never is a target).
        yield {"tokens": tokens[:, columns], "mask": real[:, columns][:, 1:]}
