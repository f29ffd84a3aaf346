"""The cell lab (experiments.lab): its tasks against a plain recomputation, its model, protocol.

Every generator is checked example by example against a second implementation written from the
task's definition with Python loops (not the vectorized code), so a generator that scores the
wrong step or computes the wrong answer fails here.
"""

import numpy as np
import pytest

from experiments.lib import lab_tasks
from experiments.lib.lab_tasks import TASKS


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def check_scored_at_last(batch, answer_of) -> None:
    """Each row: only its last real step is scored, with ``answer_of(real_symbols)``."""
    for row in range(len(batch.lengths)):
        n = int(batch.lengths[row])
        symbols = [int(s) for s in batch.inputs[row][:n]]
        assert list(np.flatnonzero(batch.mask[row])) == [n - 1]
        assert int(batch.targets[row][n - 1]) == answer_of(symbols)
        assert all(int(s) == 0 for s in batch.inputs[row][n:]), "padding reads as token 0"


def test_adding_targets_are_the_sum_of_the_two_marked_values():
    batch = lab_tasks.adding(rng(), 32, 50)
    assert batch.inputs.shape == (32, 50, 2) and batch.targets.shape == (32, 50)
    for row in range(32):
        values, markers = batch.inputs[row, :, 0], batch.inputs[row, :, 1]
        marked = [t for t in range(50) if markers[t] == 1.0]
        assert len(marked) == 2 and marked[0] < 25 <= marked[1], "one marker in each half"
        assert all(markers[t] == 0.0 for t in range(50) if t not in marked)
        assert all(0.0 <= v < 1.0 for v in values)
        assert batch.targets[row, 49] == pytest.approx(values[marked[0]] + values[marked[1]])
        assert list(np.flatnonzero(batch.mask[row])) == [49]


def test_adding_trivial_baseline_is_a_sixth():
    batch = lab_tasks.adding(rng(), 20000, 10)
    mse_of_one = float(np.mean((batch.targets[:, -1] - 1.0) ** 2))
    assert mse_of_one == pytest.approx(TASKS["adding"].chance, abs=0.006)


def test_selective_copy_targets_are_the_data_tokens_in_order():
    k, blanks = lab_tasks.COPY_TOKENS, 12
    batch = lab_tasks.selective_copy(rng(), 16, blanks)
    time = blanks + 2 * k
    assert batch.inputs.shape == (16, time)
    for row in range(16):
        data = [int(t) for t in batch.inputs[row][: blanks + k] if t != 0]
        assert len(data) == k and all(2 <= t < 16 for t in data)
        assert [int(t) for t in batch.inputs[row][blanks + k :]] == [1] * k
        scored = [t for t in range(time) if batch.mask[row][t]]
        assert scored == list(range(blanks + k, time))
        assert [int(batch.targets[row][t]) for t in scored] == data


def test_mqar_targets_are_the_queried_keys_values():
    pairs = 6
    batch = lab_tasks.mqar(rng(), 16, pairs)
    assert batch.inputs.shape == (16, 8 * pairs)
    for row in range(16):
        tokens = [int(t) for t in batch.inputs[row]]
        memory = {}
        for i in range(pairs):
            key, value = tokens[2 * i], tokens[2 * i + 1]
            assert 1 <= key < 64 <= value < 128 and key not in memory
            memory[key] = value
        queried = []
        for t in range(2 * pairs, 8 * pairs):
            if tokens[t] != 0:
                assert (t - 2 * pairs) % 2 == 0, "queries sit at even offsets"
                assert batch.mask[row][t] and int(batch.targets[row][t]) == memory[tokens[t]]
                queried.append(tokens[t])
            else:
                assert not batch.mask[row][t]
        assert sorted(queried) == sorted(memory), "every key is queried once"
        assert not batch.mask[row][: 2 * pairs].any()


def parity_of(bits: list[int]) -> int:
    ones = 0
    for bit in bits:
        ones += bit
    return ones % 2


def cycle_state_of(actions: list[int]) -> int:
    state = 0
    for action in actions:
        state = (state + {0: -1, 1: 0, 2: 1}[action]) % 5
    return state


@pytest.mark.parametrize(
    "generate, answer_of, symbols",
    [
        (lab_tasks.parity, parity_of, {0, 1}),
        (lab_tasks.cycle_navigation, cycle_state_of, {0, 1, 2}),
    ],
)
def test_state_tracking_targets(generate, answer_of, symbols):
    train = generate(rng(), 64)  # Training: every length in 1..40, post-padded to 40.
    assert train.inputs.shape == (64, lab_tasks.TRAIN_MAX_LENGTH)
    assert 1 <= train.lengths.min() and train.lengths.max() <= lab_tasks.TRAIN_MAX_LENGTH
    assert len(set(train.lengths.tolist())) > 10
    check_scored_at_last(train, answer_of)
    test = generate(rng(1), 8, 100)
    assert test.inputs.shape == (8, 100) and set(test.lengths.tolist()) == {100}
    check_scored_at_last(test, answer_of)
    assert set(np.unique(test.inputs).tolist()) == symbols


@pytest.mark.parametrize("name", ["selective_copy", "mqar", "parity", "cycle_navigation"])
def test_chance_is_the_accuracy_of_guessing(name):
    """A uniform guess over the answers the task can ask for scores its stated chance."""
    task = TASKS[name]
    batch = task.generate(rng(), 4000, task.dials[0])
    answers = {
        "selective_copy": range(2, 16),
        "mqar": range(64, 128),
        "parity": range(2),
        "cycle_navigation": range(5),
    }[name]
    scored = batch.targets[batch.mask]
    assert set(np.unique(scored).tolist()) == set(answers)
    guesses = rng(7).choice(list(answers), scored.shape)
    assert np.mean(guesses == scored) == pytest.approx(task.chance, abs=0.02)


@pytest.mark.parametrize("name", list(TASKS))
def test_generators_are_deterministic_per_seed(name):
    task = TASKS[name]
    a, b = (task.train_batch(rng(3), 8, task.dials[1]) for _ in range(2))
    c = task.train_batch(rng(4), 8, task.dials[1])
    for field in ("inputs", "targets", "mask", "lengths"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.inputs, c.inputs)


def test_pass_direction():
    assert TASKS["adding"].passes(0.005) and not TASKS["adding"].passes(0.1)
    assert TASKS["parity"].passes(0.95) and not TASKS["parity"].passes(0.6)
