"""The cell lab's tasks: synthetic problems whose difficulty is a dial, generated from a seed.

Each task draws fresh examples with NumPy from a ``numpy.random.Generator`` (no files) and
returns a ``Batch`` of fixed shape: ``inputs``, ``targets``, ``mask`` (the scored positions)
and ``lengths`` (real steps per example; the full length for fixed-length tasks). The model
reads every position and predicts at every position; only the masked ones are scored.

| task | dial | metric | chance / trivial | pass |
| --- | --- | --- | --- | --- |
| adding | sequence length T | MSE | 0.1667 (predict 1) | MSE <= 0.01 |
| selective copy | blanks L (K = 8 tokens) | per-token accuracy | 1/14 | >= 0.95 |
| MQAR | key-value pairs | accuracy at the queries | 1/64 | >= 0.9 |
| parity | test length (trained on 1-40) | accuracy | 0.5 | >= 0.9 |
| cycle navigation | test length (trained on 1-40) | accuracy | 0.2 | >= 0.9 |

The pass thresholds are this lab's choice (the papers report curves, not a pass line): each
sits far from chance and close to what a cell that has the mechanism reaches.
"""

import dataclasses
from collections.abc import Callable

import numpy as np

# Parity and cycle navigation train on lengths 1..TRAIN_MAX_LENGTH (Deletang et al. 2023).
TRAIN_MAX_LENGTH = 40
COPY_TOKENS = 8  # K, the selective-copying tokens (the MAD suite's default is 16 at vocab 16).
COPY_VOCAB = 16  # blank (0), copy marker (1), 14 data tokens (2..15).
MQAR_KEYS = 64  # keys 1..63, values 64..127 (zoology's split of the vocabulary in halves).
MQAR_VOCAB = 2 * MQAR_KEYS
MQAR_POWER_A = 0.01  # zoology's default power law for the query gaps.
CYCLE = 5


@dataclasses.dataclass(frozen=True)
class Batch:
    """One batch of a task.

    Attributes:
      inputs: <float32>[batch, time, features] (adding) or <int32>[batch, time] tokens.
      targets: <float32>[batch, time] (adding) or <int32>[batch, time] classes (0 where unscored).
      mask: <bool>[batch, time], True at the scored positions.
      lengths: <int32>[batch], real steps (steps from ``lengths`` on are padding).
    """

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray
    lengths: np.ndarray


def adding(rng: np.random.Generator, batch: int, length: int) -> Batch:
    """The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015).

    As state-spaces/s4 ``src/dataloaders/datasets/adding.py``: each step reads
    ``(u_t ~ U[0, 1], marker_t)``; exactly one marker in the first half (``T // 2`` steps) and
    one in the second; the target, scored at the last step with MSE, is the sum of the two
    marked values. Trivial baseline: predicting 1 (the mean) scores Var(u + v) = 1/6 = 0.1667.
    Pass: MSE <= 0.01. Dial: ``length`` T (the delay to bridge).

    Returns:
      inputs <float32>[batch, T, 2]; targets <float32>[batch, T]; the mask is the last step.
    """
    half = length // 2
    values = rng.uniform(0.0, 1.0, (batch, length)).astype(np.float32)
    first = rng.integers(0, half, batch)
    second = half + rng.integers(0, length - half, batch)
    markers = np.zeros((batch, length), np.float32)
    markers[np.arange(batch), first] = 1.0
    markers[np.arange(batch), second] = 1.0
    targets = np.zeros((batch, length), np.float32)
    targets[:, -1] = (values * markers).sum(axis=1)
    mask = np.zeros((batch, length), bool)
    mask[:, -1] = True
    inputs = np.stack([values, markers], axis=-1)
    return Batch(inputs, targets, mask, np.full(batch, length, np.int32))


def selective_copy(rng: np.random.Generator, batch: int, blanks: int) -> Batch:
    """Selective copying (Gu & Dao 2023), as the MAD suite defines it.

    Vocabulary 16: blank 0, copy marker 1, data tokens 2..15. The first ``blanks + K`` steps
    hold K = 8 data tokens at random positions (in order of position) among ``blanks`` blanks;
    then K copy markers; at the i-th marker the target is the i-th data token. Scored per token
    (chance 1/14) and per sequence (all K right; chance 14^-8). Pass: per-token accuracy
    >= 0.95. Dial: ``blanks`` L.

    Returns:
      inputs, targets <int32>[batch, L + 2K]; the mask is the last K steps.
    """
    k, span = COPY_TOKENS, blanks + COPY_TOKENS
    time = span + k
    tokens = rng.integers(2, COPY_VOCAB, (batch, k))
    # K distinct positions per row: the first K of a random permutation, sorted.
    positions = np.sort(np.argsort(rng.random((batch, span)), axis=1)[:, :k], axis=1)
    inputs = np.zeros((batch, time), np.int32)
    np.put_along_axis(inputs, positions, tokens, axis=1)
    inputs[:, span:] = 1
    targets = np.zeros((batch, time), np.int32)
    targets[:, span:] = tokens
    mask = np.zeros((batch, time), bool)
    mask[:, span:] = True
    return Batch(inputs, targets, mask, np.full(batch, time, np.int32))


def mqar(rng: np.random.Generator, batch: int, pairs: int) -> Batch:
    """Multi-query associative recall (Arora et al. 2023), after zoology's ``multiquery_ar.py``.

    Keys 1..63, values 64..127, 0 is the empty token. The first ``2 * pairs`` steps are
    ``k_1 v_1 k_2 v_2 ...`` (distinct keys); the remaining ``6 * pairs`` steps (time is
    ``8 * pairs``) hold each key once more as a query, at even offsets drawn with zoology's
    power law (gap g with probability proportional to ``a * g^(a - 1)``, a = 0.01), zeros
    elsewhere; at a query the target is that key's value (only queries are scored). Chance:
    1/64. Pass: accuracy >= 0.9. Dial: ``pairs``, at the fixed state size of the budget.

    Two choices differ from zoology's function defaults: the filler is 0, as in zoology's
    published configs (``random_non_queries=False``; the function's default fills random
    tokens, which may repeat keys), and the length is tied to the load (8 steps per pair;
    zoology sets length and pairs apart, 16 per pair in its sweeps) so that one dial moves.

    Returns:
      inputs, targets <int32>[batch, 8 * pairs]; the mask is the query positions.
    """
    context, space = 2 * pairs, 3 * pairs
    time = context + 2 * space
    keys = np.argsort(rng.random((batch, MQAR_KEYS - 1)), axis=1)[:, :pairs] + 1
    values = MQAR_KEYS + np.argsort(rng.random((batch, MQAR_KEYS)), axis=1)[:, :pairs]
    p = MQAR_POWER_A * np.arange(1, space + 1) ** (MQAR_POWER_A - 1)
    p /= p.sum()
    gaps = np.stack([rng.choice(space, pairs, replace=False, p=p) for _ in range(batch)])
    inputs = np.zeros((batch, time), np.int32)
    inputs[:, 0:context:2], inputs[:, 1:context:2] = keys, values
    query_positions = context + 2 * gaps
    np.put_along_axis(inputs, query_positions, keys, axis=1)
    targets = np.zeros((batch, time), np.int32)
    np.put_along_axis(targets, query_positions, values, axis=1)
    mask = np.zeros((batch, time), bool)
    np.put_along_axis(mask, query_positions, True, axis=1)
    return Batch(inputs, targets, mask, np.full(batch, time, np.int32))


def _lengths(rng: np.random.Generator, batch: int, length: int | None) -> tuple[np.ndarray, int]:
    """Training draws each length from 1..40 (padded to 40); a test length is every row's."""
    if length is None:
        return rng.integers(1, TRAIN_MAX_LENGTH + 1, batch).astype(np.int32), TRAIN_MAX_LENGTH
    return np.full(batch, length, np.int32), length


def _scored_at_last(symbols: np.ndarray, lengths: np.ndarray, answer: np.ndarray) -> Batch:
    """A batch whose only scored step is each row's last real one."""
    batch, time = symbols.shape
    real = np.arange(time)[None, :] < lengths[:, None]
    inputs = np.where(real, symbols, 0).astype(np.int32)  # Padding reads as token 0.
    mask = np.zeros((batch, time), bool)
    mask[np.arange(batch), lengths - 1] = True
    targets = np.where(mask, answer[:, None], 0).astype(np.int32)
    return Batch(inputs, targets, mask, lengths)


def parity(rng: np.random.Generator, batch: int, length: int | None = None) -> Batch:
    """Parity (Deletang et al. 2023, ``tasks/regular/parity_check.py``).

    A string of bits 0/1; the target, scored at its last step, is the number of 1s mod 2.
    Chance 0.5. Pass: accuracy >= 0.9. Training strings have lengths 1..40 (``length=None``,
    post-padded to 40); the dial is the test length (every row that long).

    Returns:
      inputs, targets <int32>[batch, time]; the mask is each row's last real step.
    """
    lengths, time = _lengths(rng, batch, length)
    bits = rng.integers(0, 2, (batch, time))
    bits = np.where(np.arange(time)[None, :] < lengths[:, None], bits, 0)
    return _scored_at_last(bits, lengths, bits.sum(axis=1) % 2)


def cycle_navigation(rng: np.random.Generator, batch: int, length: int | None = None) -> Batch:
    """Cycle navigation mod 5 (Deletang et al. 2023, ``tasks/regular/cycle_navigation.py``).

    Actions 0, 1, 2 move an agent by -1, 0, +1 on a cycle of 5 states, starting at 0; the
    target, scored at the last step, is the final state ``sum(action - 1) mod 5``. Chance 0.2.
    Pass: accuracy >= 0.9. Lengths and dial as ``parity``.

    Returns:
      inputs, targets <int32>[batch, time]; the mask is each row's last real step.
    """
    lengths, time = _lengths(rng, batch, length)
    actions = rng.integers(0, 3, (batch, time))
    moves = np.where(np.arange(time)[None, :] < lengths[:, None], actions - 1, 0)
    # Padding is action 0 in the inputs but moves nothing: it lies past the scored step.
    return _scored_at_last(actions, lengths, moves.sum(axis=1) % CYCLE)


@dataclasses.dataclass(frozen=True)
class Task:
    """A task as the protocol sees it.

    Attributes:
      name: its name on the command line and in tables.
      generate: ``(rng, batch, difficulty) -> Batch``; for a task that ``extrapolates``,
        ``difficulty=None`` draws training examples (lengths 1..40).
      dials: the difficulties in doubling order (the first is the base).
      vocab_size: token vocabulary, or None for float inputs.
      outputs: classes (1 for a regression).
      metric: what the held-out evaluation reports.
      chance: the metric of chance (or of the trivial prediction).
      threshold: a run passes when its metric reaches this.
      extrapolates: trained on lengths 1..40 whatever the dial; the dial is the test length.
    """

    name: str
    generate: Callable[..., Batch]
    dials: tuple[int, ...]
    vocab_size: int | None
    outputs: int
    metric: str
    chance: float
    threshold: float
    extrapolates: bool = False

    @property
    def regression(self) -> bool:
        return self.vocab_size is None

    def passes(self, metric: float) -> bool:
        """Whether ``metric`` reaches the threshold (lower is better for a regression)."""
        return metric <= self.threshold if self.regression else metric >= self.threshold

    def train_batch(self, rng: np.random.Generator, batch: int, difficulty: int) -> Batch:
        """Training examples: at ``difficulty``, or lengths 1..40 for a task that extrapolates."""
        return self.generate(rng, batch, None if self.extrapolates else difficulty)


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("adding", adding, (16, 32, 64, 128, 256), None, 1, "MSE", 1 / 6, 0.01),
        Task("selective_copy", selective_copy, (16, 32, 64, 128, 256), COPY_VOCAB, COPY_VOCAB,
             "per-token accuracy", 1 / 14, 0.95),
        Task("mqar", mqar, (2, 4, 8, 16, 32), MQAR_VOCAB, MQAR_VOCAB, "query accuracy",
             1 / 64, 0.9),
        Task("parity", parity, (64, 128, 256), 2, 2, "accuracy", 0.5, 0.9, True),
        Task("cycle_navigation", cycle_navigation, (64, 128, 256), 3, CYCLE, "accuracy",
             0.2, 0.9, True),
    )
}  # fmt: skip
