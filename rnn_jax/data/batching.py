"""Padding and batching of prepared arrays: fixed shapes, masks, and each host's share.

Plain numpy rather than ``tf.data``, so the order of examples is a pure function of
``(seed, epoch)`` and a run can resume in the middle of an epoch::

    for batch in train_batches(data.train, 64, seed=0, epoch=epoch):
        ...
    for batch in eval_batches(data.validation, 256):
        ...  # weigh every per-example metric by batch["mask"]
"""

import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from rnn_jax.data.vocabulary import PAD_ID

MODES = ("pre", "post")


def check_mode(argument: str, value: str) -> None:
    if value not in MODES:
        allowed = " or ".join(repr(m) for m in MODES)
        raise ValueError(f"{argument}={value!r} is not supported; use {allowed}")


def check_int(argument: str, value: int, minimum: int = 1) -> int:
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
    """Pads and truncates id sequences to one length, as Keras's ``pad_sequences`` does.

    Keras's defaults are kept ("pre" for both): padding goes in front, and a long sequence keeps
    its end. Note that "pre" truncation therefore drops ``START_ID`` from long reviews, exactly as
    in the course; ``length`` still says how many real tokens a row holds.

    Args:
        seqs: N sequences of token ids (lists or 1-d arrays, possibly empty).
        max_len: length of every output row.
        padding: "pre" puts the ``PAD_ID``s in front of the tokens, "post" behind them.
        truncating: "pre" drops tokens from the start of a sequence longer than ``max_len``,
            "post" drops them from the end.

    Returns:
        ``(token_ids <int32>[N, max_len], length <int32>[N])`` with
        ``length[i] = min(len(seqs[i]), max_len)``.

    Raises:
        ValueError: for a ``padding`` or ``truncating`` other than "pre"/"post", or ``max_len < 1``.
    """
    check_mode("padding", padding)
    check_mode("truncating", truncating)
    max_len = check_int("max_len", max_len)
    token_ids = np.full((len(seqs), max_len), PAD_ID, dtype=np.int32)
    length = np.zeros(len(seqs), dtype=np.int32)
    for i, seq in enumerate(seqs):
        seq = np.asarray(seq, dtype=np.int32)
        if seq.ndim != 1:
            raise ValueError(f"sequence {i} must be 1-d, got shape {seq.shape}")
        kept = seq[-max_len:] if truncating == "pre" else seq[:max_len]
        k = len(kept)
        if padding == "pre":
            # ``max_len - k``, not ``-k``: for k == 0 the slice ``[-0:]`` would be the whole row.
            token_ids[i, max_len - k :] = kept
        else:
            token_ids[i, :k] = kept
        length[i] = k
    return token_ids, length


def length_statistics(lengths: np.ndarray) -> dict:
    """Summary of sequence lengths, to choose ``max_len`` from (e.g. p95 covers 95% of reviews).

    Args:
        lengths: ``<int>[N]`` full lengths, before any truncation.

    Returns:
        ``{"count", "mean", "median", "p90", "p95", "p99", "min", "max"}`` as Python numbers.

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


def format_stats(stats: Mapping) -> str:
    return (
        f"n={stats['count']} mean={stats['mean']:.1f} median={stats['median']:.0f} "
        f"p90={stats['p90']:.0f} p95={stats['p95']:.0f} p99={stats['p99']:.0f} "
        f"max={stats['max']}"
    )


# --------------------------------------------------------------------------------------------
# Batches.


def _num_rows(data: Mapping[str, np.ndarray]) -> int:
    sizes = {k: len(v) for k, v in data.items()}
    if not sizes:
        raise ValueError("data has no arrays")
    if len(set(sizes.values())) != 1:
        raise ValueError(f"arrays of data differ in length: {sizes}")
    return next(iter(sizes.values()))


def num_train_batches(num_examples: int, batch_size: int) -> int:
    """Batches per training epoch: the remainder is dropped (it changes with every reshuffle)."""
    batch_size = check_int("batch_size", batch_size)
    return num_examples // batch_size


def num_eval_batches(num_examples: int, batch_size: int) -> int:
    """Batches ``eval_batches`` yields: the last one is padded, so this rounds up."""
    batch_size = check_int("batch_size", batch_size)
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

    The order is ``np.random.default_rng([seed, epoch]).permutation(N)``, so it depends on nothing
    but its arguments: every host of a multi-host run draws the same global batches, and a run
    restarted at ``(epoch, start_batch)`` sees exactly the batches it would have seen.

    Length bucketing (``bucket_width > 0``): within each run of ``BUCKET_CHUNK_BATCHES`` batches of
    the permutation, rows are sorted by length before they are cut into batches, the batches are
    shuffled, and each batch's ``token_ids`` are cut to its longest review rounded up to a multiple
    of ``bucket_width`` (at most ``T`` columns), dropping only padding. So a batch of short reviews
    costs short scans, and there are at most ``ceil(T / bucket_width)`` batch shapes (one
    compilation each). Only a model that masks padding computes the same for the cut rows.

    Args:
        data: ``{"token_ids": <int32>[N, T], "length": <int32>[N], "label": <int32>[N]}`` (any
            arrays sharing the leading dimension N are batched alike).
        batch_size: rows per batch; the last ``N % batch_size`` rows of the permutation are left
            out of this epoch.
        seed: run seed (non-negative).
        epoch: epoch number (non-negative); each epoch has its own permutation.
        start_batch: skip this many batches (already trained on); nothing is gathered for them.
        bucket_width: 0 for fixed-shape batches in plain permutation order, else the length
            bucketing above.
        padding: where ``data``'s padding is, ``'pre'`` or ``'post'`` (which columns bucketing
            cuts).

    Yields:
        Dicts with the keys of ``data``, e.g. ``token_ids <int32>[batch_size, T]`` (``T`` or less
        with bucketing).

    Raises:
        ValueError: (when the first batch is asked for, as this is a generator) if
            ``N < batch_size`` (an epoch would have no batch), ``start_batch`` is outside
            ``[0, num_train_batches(N, batch_size)]``, or an argument is negative.
    """
    n = _num_rows(data)
    num_batches = num_train_batches(n, batch_size)
    if num_batches == 0:
        raise ValueError(f"batch_size={batch_size} exceeds the {n} training examples")
    if not 0 <= start_batch <= num_batches:
        raise ValueError(f"start_batch={start_batch} outside [0, {num_batches}]")
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be non-negative, got seed={seed}, epoch={epoch}")
    bucket_width = check_int("bucket_width", bucket_width, minimum=0)
    check_mode("padding", padding)
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
    """Rows of ``batches`` <int>[num_batches, batch] regrouped by length, batch order shuffled."""
    num_batches, batch_size = batches.shape
    rows = batches.reshape(-1)
    chunk = BUCKET_CHUNK_BATCHES * batch_size
    parts = [rows[i : i + chunk] for i in range(0, len(rows), chunk)]
    rows = np.concatenate([p[np.argsort(lengths[p], kind="stable")] for p in parts])
    return rows.reshape(num_batches, batch_size)[rng.permutation(num_batches)]


def cut_padding(
    batch: dict[str, np.ndarray], bucket_width: int, padding: str
) -> dict[str, np.ndarray]:
    """``batch`` with ``token_ids`` cut to the longest ``length``, rounded up to ``bucket_width``.

    Args:
        batch: ``{"token_ids": <int32>[B, T], "length": <int32>[B], ...}``.
        bucket_width: positive; the kept width is a multiple of it (or ``T``).
        padding: ``'pre'`` (padding in the first columns, which are cut) or ``'post'``.

    Returns:
        The batch with ``token_ids <int32>[B, W]``, ``W <= T``; only padding columns were removed.
    """
    bucket_width = check_int("bucket_width", bucket_width)
    time = batch["token_ids"].shape[1]
    longest = max(int(batch["length"].max()), 1)
    width = min(time, -(-longest // bucket_width) * bucket_width)
    columns = slice(time - width, time) if padding == "pre" else slice(0, width)
    return {**batch, "token_ids": batch["token_ids"][:, columns]}


def eval_batches(
    data: Mapping[str, np.ndarray], batch_size: int, bucket_width: int = 0, padding: str = "pre"
) -> Iterator[dict[str, np.ndarray]]:
    """Yields every row once, in fixed-size batches with a ``mask``.

    The last batch is filled up with copies of its first row (a real review, so models never see
    a zero-length or otherwise unusual row) whose ``mask`` is False; weigh per-example metrics by
    ``mask`` and every example counts exactly once.

    Args:
        data: as in ``train_batches``.
        batch_size: rows per batch.
        bucket_width: 0 visits the rows in order, in ``[batch_size, T]`` batches. > 0 visits them
            shortest first and cuts each batch's padding as ``train_batches`` does (sums over the
            split are the same, up to float rounding; far fewer padded steps are computed).
        padding: where ``data``'s padding is, ``'pre'`` or ``'post'``.

    Yields:
        Dicts with the keys of ``data`` (``[batch_size, ...]``) plus ``mask <bool>[batch_size]``.
    """
    batch_size = check_int("batch_size", batch_size)
    bucket_width = check_int("bucket_width", bucket_width, minimum=0)
    check_mode("padding", padding)
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
        batch: global batch, every array ``[global_batch, ...]``.
        process_index: this host, ``jax.process_index()``.
        process_count: hosts, ``jax.process_count()``.

    Returns:
        Rows ``[process_index * B / P, (process_index + 1) * B / P)`` of every array.

    Raises:
        ValueError: if the global batch size is not divisible by ``process_count``, or
            ``process_index`` is not in ``[0, process_count)``.
    """
    process_count = check_int("process_count", process_count)
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
