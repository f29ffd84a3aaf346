"""The cell lab (experiments.lab): its tasks against a plain recomputation, its model, protocol.

Every generator is checked example by example against a second implementation written from the
task's definition with Python loops (not the vectorized code), so a generator that scores the
wrong step or computes the wrong answer fails here.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from experiments.lib.lab import tasks as lab_tasks
from experiments.lib.lab.tasks import TASKS
from rnn_jax.cells import LinearRecurrentCell


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


# ----------------------------------------------------------------------------------------------
# The model and the memoryless control.


def tagger_outputs(cell: str, inputs, lengths, **kwargs):
    import jax
    import jax.numpy as jnp

    from rnn_jax.layers import length_mask
    from rnn_jax.models import SequenceTagger

    model = SequenceTagger(cell=cell, hidden_size=8, **kwargs)
    mask = length_mask(jnp.asarray(lengths), inputs.shape[1])
    params = model.init(jax.random.key(0), inputs, mask)
    return model.apply(params, inputs, mask)


@pytest.mark.parametrize("cell", ["lstm", "mingru", "experiments.lib.lab.control:MemorylessCell"])
def test_tagger_predicts_every_step_and_a_row_is_its_own_sequence(cell):
    """A row's real steps are scored the same padded in a batch or run alone, unpadded.

    Post-padding cannot reach a real step of a causal model; running each row alone at its
    own length also catches anything that mixes rows or reads the padded time axis.
    """
    from rnn_jax.layers import RecurrenceOptions

    tokens = lab_tasks.parity(rng(), 4, 12).inputs
    lengths = np.array([12, 7, 3, 1])
    kwargs = dict(
        out_features=5, vocab_size=2, num_layers=2, residual=True, options=RecurrenceOptions(2)
    )
    outputs = np.asarray(tagger_outputs(cell, tokens, lengths, **kwargs))
    assert outputs.shape == (4, 12, 5) and np.isfinite(outputs).all()
    other_padding = tokens.copy()
    for row, n in enumerate(lengths):
        other_padding[row, n:] = 1
    changed = np.asarray(tagger_outputs(cell, other_padding, lengths, **kwargs))
    for row, n in enumerate(lengths):
        np.testing.assert_allclose(changed[row, :n], outputs[row, :n], rtol=1e-6)
        alone = tagger_outputs(cell, tokens[row : row + 1, :n], [n], **kwargs)
        np.testing.assert_allclose(np.asarray(alone)[0], outputs[row, :n], rtol=1e-5, atol=1e-6)


def test_tagger_reads_float_features():
    batch = lab_tasks.adding(rng(), 3, 10)
    outputs = tagger_outputs("rnn", batch.inputs, batch.lengths, out_features=1)
    assert outputs.shape == (3, 10, 1)


def test_control_cell_passes_the_cell_contract():
    from experiments.lib.lab.control import MemorylessCell
    from rnn_jax.testing import check_cell

    assert "float64 gradients" in check_cell(MemorylessCell)


def test_the_negative_decay_minGRU_is_a_cell_linear_in_h_whose_decay_can_flip_sign():
    import jax.numpy as jnp

    from experiments.lib.lab.variants import NegativeDecayMinGRUCell
    from rnn_jax import MinGRUCell
    from rnn_jax.testing import check_cell

    assert "linear in h" in check_cell(NegativeDecayMinGRUCell)
    # Gate pre-activations from closed to open: the minGRU's decay 1 - z stays in (0, 1), the
    # variant's 1 - 2z spans (-1, 1) with the same offset b.
    xw = jnp.concatenate([jnp.linspace(-30.0, 30.0, 7), jnp.ones(7)])[None]
    a, b = NegativeDecayMinGRUCell(7).apply({}, xw, method="coefficients")
    a_min, b_min = MinGRUCell(7).apply({}, xw, method="coefficients")
    np.testing.assert_allclose(a, 2.0 * a_min - 1.0)
    np.testing.assert_array_equal(b, b_min)
    assert float(a.min()) < -0.99 and float(a.max()) > 0.99 and float(a_min.min()) >= 0.0


def test_control_step_sees_only_its_own_input():
    """A change at step 2 reaches the control's output at step 2 only; the GRU's at every later."""
    from experiments.lib.lab.control import cell_spec

    tokens = lab_tasks.parity(rng(), 2, 6).inputs
    edited = tokens.copy()
    edited[:, 2] = 1 - edited[:, 2]
    for cell, reaches_later in [("control", False), ("gru", True)]:
        a, b = (
            np.asarray(tagger_outputs(cell_spec(cell), t, [6, 6], out_features=2, vocab_size=2))
            for t in (tokens, edited)
        )
        np.testing.assert_array_equal(a[:, :2], b[:, :2])
        assert not np.allclose(a[:, 2], b[:, 2])
        assert (not np.allclose(a[:, 3:], b[:, 3:])) == reaches_later


def test_the_attention_control_reads_every_earlier_token_and_no_later_one():
    """A change at step 2 reaches the attention's outputs at step 2 and after, never before;
    padding (beyond a row's length) changes nothing."""
    import jax

    from experiments.lib.lab.control import AttentionTagger

    model = AttentionTagger(hidden_size=8, out_features=2, vocab_size=4)
    tokens = lab_tasks.parity(rng(), 2, 6).inputs
    edited = tokens.copy()
    edited[:, 2] = 1 - edited[:, 2]
    mask = np.arange(6)[None, :] < np.array([[6], [4]])
    params = model.init(jax.random.key(0), tokens, mask)
    a, b = (np.asarray(model.apply(params, t, mask)) for t in (tokens, edited))
    np.testing.assert_array_equal(a[:, :2], b[:, :2])
    assert not np.allclose(a[:, 2:4], b[:, 2:4])
    padded = tokens.copy()
    padded[1, 4:] = 3  # Beyond row 1's length.
    c = np.asarray(model.apply(params, padded, mask))
    np.testing.assert_allclose(c[1, :4], a[1, :4], rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# The protocol, with a runner whose pass table is known.


def fake_runner(passes, asked):
    """A runner whose run passes where ``passes(difficulty, rate, seed)``; records each key."""
    from experiments.lib.lab.runs import FULL, evaluated_dials

    def runner(key):
        asked.append(key)
        dials = evaluated_dials(key, FULL)
        passed = {d: passes(d, key.learning_rate, key.seed) for d in dials}
        return {
            **key.__dict__,
            "passed": passed,
            "metrics": {d: 1.0 if ok else 0.0 for d, ok in passed.items()},
            "steps": 100 if key.learning_rate == 3e-3 else 500,
        }

    return runner


# The adding task's difficulties the protocol tests walk (pinned: the task's own may change).
DIALS = (32, 64, 128, 256, 512)


def frontier_passes(dial, rate, seed):
    """A pass table: 3e-3 passes up to 128 and seed 0 alone at 256; 1e-3 only the base."""
    if rate == 1e-2:
        return False
    if rate == 1e-3:
        return dial == 32
    return dial <= 128 or (dial == 256 and seed == 0)


def test_doubling_spends_seeds_only_at_the_frontier():
    from experiments.lib.lab.protocol import card

    asked = []
    result = card("lstm", "adding", fake_runner(frontier_passes, asked), dials=DIALS)
    assert result.learning_rate == 3e-3  # Passes the base in fewer steps than 1e-3.
    assert result.horizon == 128
    seeds_at = {}
    for key in asked:
        seeds_at.setdefault((key.difficulty, key.learning_rate), []).append(key.seed)
    assert seeds_at == {
        (32, 1e-3): [0],
        (32, 1e-2): [0],
        (32, 3e-3): [0],
        (64, 3e-3): [0],
        (128, 3e-3): [0, 1],  # The horizon: 2 of 3, the third seed not needed.
        (256, 3e-3): [0, 1, 2],  # Seed 0 passes, 1 fails: seed 2 decides (fails).
        # Failed at 3e-3, a difficulty is tried at the other rates before it is given up.
        (256, 1e-3): [0, 1],
        (256, 1e-2): [0, 1],
        (512, 3e-3): [0, 1],  # Seeds 0 and 1 fail: the doubling stops here ...
        (512, 1e-3): [0, 1],  # ... once no rate holds.
        (512, 1e-2): [0, 1],
    }
    assert result.rates == {32: 3e-3, 64: 3e-3, 128: 3e-3}
    assert len(result.runs) == len(asked)


def test_a_difficulty_fails_only_when_every_rate_fails_there():
    """The issue's case: at T=16 the rate 1e-3 read just above the line on one machine, so the
    sweep chose 3e-3, which fails at T=32 where 1e-3 passes. The frontier tries 1e-3 there."""
    from experiments.lib.lab.protocol import card

    def passes(dial, rate, seed):
        if rate == 1e-3:
            return 32 <= dial <= 128  # Just misses the base, then goes further.
        return dial == 16 if rate == 3e-3 else False

    dials = (16, 32, 64, 128, 256)
    result = card("rnn", "adding", fake_runner(passes, []), (1e-3, 3e-3, 1e-2), dials)
    assert result.learning_rate == 3e-3  # The sweep's best: it passes the base.
    assert result.horizon == 128
    assert result.rates == {16: 3e-3, 32: 1e-3, 64: 1e-3, 128: 1e-3}


def test_the_grid_agrees_where_the_shortcuts_lose_nothing():
    from experiments.lib.lab.protocol import grid_card

    asked = []
    result = grid_card("lstm", "adding", fake_runner(frontier_passes, asked), dials=DIALS)
    assert (result.horizon, result.learning_rate) == (128, 3e-3)
    assert len(asked) == len(set(asked)) == 3 * 5 * 3  # Every rate, difficulty and seed once.


def test_the_grid_finds_what_the_doubling_misses():
    from experiments.lib.lab.protocol import card, grid_card

    # 3e-3 passes the base first but nothing longer; 1e-3 passes up to 128: the frontier's
    # other rates find it too.
    def slow_rate_goes_further(dial, rate, seed):
        return dial == 32 if rate == 3e-3 else dial <= 128

    # Every seed fails at 64 at every rate but passes 128: the doubling stops at 64.
    def a_hole_at_64(dial, rate, seed):
        return dial != 64 and dial <= 128

    rates = (3e-3, 1e-3)
    for passes, protocol, grid in [(slow_rate_goes_further, 128, 128), (a_hole_at_64, 32, 128)]:
        runner = fake_runner(passes, [])
        assert card("gru", "adding", runner, rates, DIALS).horizon == protocol
        assert grid_card("gru", "adding", runner, rates, DIALS).horizon == grid


def test_a_seed_that_fails_alone_does_not_stop_the_doubling():
    from experiments.lib.lab.protocol import card

    def passes(dial, rate, seed):
        return dial <= 64 and not (dial == 32 and seed == 0)

    result = card("gru", "adding", fake_runner(passes, []), learning_rates=(3e-3,), dials=DIALS)
    assert result.horizon == 64


def test_nothing_passes_is_no_horizon():
    from experiments.lib.lab.protocol import card

    result = card("rnn", "mqar", fake_runner(lambda *_: False, []), learning_rates=(3e-3,))
    assert result.horizon is None


def test_a_task_that_extrapolates_trains_once_per_seed():
    from experiments.lib.lab.protocol import card

    longest = {0: 128, 1: 64, 2: 256}  # Seed -> longest test length it passes.
    asked = []
    result = card(
        "rnn", "parity", fake_runner(lambda d, rate, seed: d <= longest[seed], asked), (3e-3,)
    )
    assert result.horizon == 128  # Seeds 0 and 2 pass 128; only seed 2 passes 256.
    assert [(k.difficulty, k.seed) for k in asked] == [(None, 0), (None, 1), (None, 2)]


def test_a_run_stops_when_it_passes_and_is_read_back(tmp_path, monkeypatch):
    import dataclasses

    from experiments.lib.lab import runs as lab_runs

    budget = dataclasses.replace(lab_runs.QUICK, steps=40, eval_every=5)
    key = lab_runs.RunKey("rnn", "adding", 32, 3e-3, 0)
    easy = dataclasses.replace(TASKS["adding"], threshold=1e9)  # Any MSE passes.
    monkeypatch.setitem(TASKS, "adding", easy)
    record = lab_runs.run(key, budget, tmp_path)
    assert record["steps"] == 5 and record["passed"] == {32: True}
    assert [p["step"] for p in record["curve"]] == [5]
    monkeypatch.setitem(TASKS, "adding", dataclasses.replace(easy, threshold=-1.0))
    monkeypatch.setattr(lab_runs, "train", lambda *a: pytest.fail("a finished run retrained"))
    # Read back (dials as ints again), the verdict recomputed with today's threshold.
    assert lab_runs.run(key, budget, tmp_path) == {**record, "passed": {32: False}}
    monkeypatch.undo()
    other = dataclasses.replace(budget, eval_every=20)  # Another budget: trained again.
    again = lab_runs.run(key, other, tmp_path)
    assert again["steps"] == 40 and again["passed"] == {32: False}


def test_a_stored_run_of_another_key_or_version_is_trained_again(tmp_path, monkeypatch):
    import dataclasses
    import json

    from experiments.lib.lab import runs as lab_runs

    budget = dataclasses.replace(lab_runs.QUICK, steps=10, eval_every=5)
    key = lab_runs.RunKey("rnn", "adding", 16, 3e-3, 0)
    path = tmp_path / key.file_name()
    stored = lab_runs.run(key, budget, tmp_path)
    trained = []
    monkeypatch.setattr(lab_runs, "train", lambda k, b: trained.append(k) or stored)
    for change in ({"cell": "rnn_"}, {"version": 1}, {"metrics": {"32": 0.1}}):
        path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
        lab_runs.run(key, budget, tmp_path)
    assert trained == [key] * 3  # A colliding file name, old rules, other difficulties.


def test_the_verdict_is_the_final_parameters_on_an_independent_draw(monkeypatch):
    import dataclasses

    from experiments.lib.lab import runs as lab_runs

    watched, confirm = (
        lab_runs.held_out("parity", 64, 64, seed)
        for seed in (lab_runs.EVAL_SEED, lab_runs.CONFIRM_SEED)
    )
    assert not np.array_equal(watched["inputs"], confirm["inputs"])
    seen = []
    real = lab_runs.held_out

    def spy(task, difficulty, examples, seed=lab_runs.EVAL_SEED):
        seen.append(seed)
        return real(task, difficulty, examples, seed)

    monkeypatch.setattr(lab_runs, "held_out", spy)
    budget = dataclasses.replace(lab_runs.QUICK, steps=10, eval_every=5, early_stop=False)
    record = lab_runs.train(lab_runs.RunKey("rnn", "parity", None, 3e-3, 0), budget)
    dials = TASKS["parity"].dials[: budget.max_dials]
    # Two watched evaluations (steps 5 and 10), then the confirmation, at every test length.
    assert seen == [lab_runs.EVAL_SEED] * 2 * len(dials) + [lab_runs.CONFIRM_SEED] * len(dials)
    assert record["steps"] == 10 and not record["diverged"]
    assert record["metrics"] != record["curve"][-1]["metrics"]  # Another draw, another score.


def test_the_learning_rate_of_a_run_is_the_one_adam_applies():
    """Adam's first update is lr * g / (|g| + eps): every moved parameter moves by about lr."""
    import dataclasses

    import jax

    from experiments.lib.lab import runs as lab_runs

    budget = dataclasses.replace(lab_runs.QUICK, width=4)
    init, optimizer, train_step, _ = lab_runs.compiled("gru", "parity", budget)
    batch = lab_runs.as_arrays(TASKS["parity"].generate(rng(), 8, 16))
    mask = np.arange(16)[None, :] < np.asarray(batch["lengths"])[:, None]
    params = init(jax.random.key(0), batch["inputs"], mask)
    for rate in (1e-3, 1e-2):
        moved, _, _ = train_step(params, lab_runs.optimizer_state(optimizer, params, rate), batch)
        differences = jax.tree.map(lambda a, b: np.abs(np.ravel(a - b)), moved, params)
        steps = np.concatenate(jax.tree.leaves(differences))
        steps = steps[steps > rate / 100]  # Parameters with a gradient of any size.
        np.testing.assert_allclose(steps, rate, rtol=0.02)


def test_rows_right_of_a_regression_are_rows_within_the_threshold():
    import dataclasses

    import jax

    from experiments.lib.lab import runs as lab_runs

    budget = dataclasses.replace(lab_runs.QUICK, width=4)
    init, _, _, evaluate = lab_runs.compiled("rnn", "adding", budget)
    batch = lab_runs.as_arrays(TASKS["adding"].generate(rng(), 64, 16))
    params = init(jax.random.key(0), batch["inputs"], np.ones((64, 16), bool))
    metric, rows = evaluate(params, batch)
    model = lab_runs.make_model("rnn", TASKS["adding"], budget)
    prediction = np.asarray(model.apply({"params": params}, batch["inputs"]))[:, -1, 0]
    error = (prediction - np.asarray(batch["targets"])[:, -1]) ** 2
    np.testing.assert_allclose(metric, error.mean(), rtol=1e-5)
    assert rows == pytest.approx(np.mean(error <= TASKS["adding"].threshold))


def test_a_horizon_at_the_last_dial_says_nothing_longer_was_tried():
    from experiments.lib.lab.report import horizon_text

    assert horizon_text("adding", 256) == "≥ 256"
    assert horizon_text("adding", 64) == "64"
    assert horizon_text("parity", None) is None


# ----------------------------------------------------------------------------------------------
# Gradient horizons at initialization: how far back the untrained model's last output feels x_t.

DECAY = 0.9


class FixedDecayCell(LinearRecurrentCell):
    """``h_t = 0.9 h_{t-1} + x_t W + b``: the state decays by a known constant, nothing else.

    The lab's model around it is linear too (input projection, this cell, readout), so the norm
    of ``d y_T / d x_{T-k}`` is exactly a constant times ``0.9^k``.
    """

    def coefficients(self, xw):
        return jnp.full_like(xw, DECAY), xw


def tiny_budget():
    import dataclasses

    from experiments.lib.lab.runs import QUICK

    return dataclasses.replace(QUICK, batch=2, width=4)


def test_the_vanished_rule_on_hand_made_norms():
    from experiments.gradients import decay_row
    from experiments.lib.gradient_decay import steps_to_vanish, vanish_text

    assert steps_to_vanish(np.array([2.0, 1.0, 0.03, 0.019, 0.0])) == 3  # 0.019 < 1% of 2.
    assert steps_to_vanish(np.array([1.0, 0.0])) == 1
    for never in ([1.0, 0.5, 0.01], [1.0, 2.0, 4.0], [0.0, 0.0, 0.0]):  # 0.01 is not below 1%.
        assert steps_to_vanish(np.array(never)) is None
        assert vanish_text(None, len(never)) == "> 2"
    assert vanish_text(3, 5) == "3"
    # experiments.gradients keeps its table: the step it vanishes at, or "> T-1" (never).
    assert decay_row("rnn", "untrained", np.array([1.0, 0.5, 0.001]))["steps_to_vanish"] == "2"
    assert decay_row("rnn", "untrained", np.array([1.0, 0.5, 0.01]))["steps_to_vanish"] == "> 2"


def test_the_memoryless_control_has_a_gradient_horizon_of_one_step():
    from experiments.lib.lab import gradients as lab_gradients

    norms = lab_gradients.step_gradient_norms("control", tiny_budget(), 8)
    assert norms.shape == (8,) and norms[0] > 0  # Its last output reads its last input...
    np.testing.assert_array_equal(norms[1:], 0.0)  # ...and nothing before it.
    horizon = lab_gradients.gradient_horizon("control", tiny_budget(), 8)
    assert (horizon["steps_back"], horizon["text"], horizon["length"]) == (1, "1", 8)
    assert horizon["trained"] is False


def test_a_state_that_decays_by_0_9_has_the_horizon_0_9_gives():
    from experiments.lib.lab import gradients as lab_gradients

    length, cell = 64, f"{__name__}:FixedDecayCell"
    expected = next(k for k in range(length) if DECAY**k < 0.01)
    assert expected == 44
    norms = lab_gradients.step_gradient_norms(cell, tiny_budget(), length)
    np.testing.assert_allclose(norms / norms[0], DECAY ** np.arange(length), rtol=1e-4)
    horizon = lab_gradients.gradient_horizon(cell, tiny_budget(), length)
    assert (horizon["steps_back"], horizon["text"]) == (expected, str(expected))
    shorter = lab_gradients.gradient_horizon(cell, tiny_budget(), expected)  # Ends at k = 43.
    assert (shorter["steps_back"], shorter["text"]) == (None, f"> {expected - 1}")


def test_gradient_horizons_join_the_horizons_table_and_results():
    from experiments.lib.lab import gradients as lab_gradients
    from experiments.lib.lab import report as lab_report
    from experiments.lib.lab.runs import FULL, QUICK

    dials = TASKS["adding"].dials
    assert lab_gradients.measured_length(FULL) == dials[-1]  # The adding task's last dial...
    assert lab_gradients.measured_length(QUICK) == dials[1]  # ...within --quick's two dials.
    gradients = {"rnn": {"steps_back": None, "text": "> 511", "length": 512}}
    columns = lab_report.task_columns(["adding"], 512)
    assert columns[-1].header == "gradient horizon at init (adding inputs, T=512)"
    assert [c.key for c in lab_report.task_columns(["adding"])] == ["cell", "adding"]
    rows = lab_report.horizon_rows({"rnn": {"adding": None}}, gradients)
    assert rows == [{"cell": "SimpleRNN", "adding": None, columns[-1].key: "> 511"}]
    assert lab_report.results([], FULL, (), gradients)["gradient_horizons"] == gradients


# ----------------------------------------------------------------------------------------------
# The command.

CUSTOM_CELL = "experiments.lib.lab.control:MemorylessCell"  # A cell named module:Class.


@pytest.mark.slow
def test_quick_lab_writes_the_report_and_resumes(tmp_path):
    import json

    from experiments import lab
    from experiments.lib.lab.runs import QUICK

    out = tmp_path / "lab"
    cells, tasks = ["rnn", CUSTOM_CELL, "attention"], ["adding", "parity", "mqar"]
    argv = ["--cells", ",".join(cells), "--tasks", ",".join(tasks), "--quick", "--exhaustive"]
    lab.main([*argv, "--out", str(out), "--workers", "2"])  # Two worker processes.
    for name in ("report.md", "horizons.md", "rates.md", "runs.md", "shortcuts.md", "horizons.png"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    assert set(results["horizons"]) == set(results["grid_horizons"]) == set(cells)
    assert set(results["gradient_horizons"]) == set(cells)
    assert set(results["passing_rates"]) == set(cells)
    assert results["gradient_horizons"][CUSTOM_CELL]["steps_back"] == 1  # Memoryless.
    walked = {name: TASKS[name].dials[: QUICK.max_dials] for name in tasks}
    length = walked["adding"][-1]
    assert (
        f"gradient horizon at init (adding inputs, T={length})" in (out / "horizons.md").read_text()
    )
    for cell, horizons in results["horizons"].items():
        # The positive control runs recall only.
        assert set(horizons) == ({"mqar"} if cell == "attention" else set(tasks)), cell
        assert all(h in (None, *walked[name]) for name, h in horizons.items())
    assert "not run" in (out / "horizons.md").read_text()
    files = sorted((out / "runs").glob("*.json"))
    assert len(files) >= (2 * 3 + 1) * 2  # Two seeds at least per card.
    # The grid's runs train their whole budget, kept apart from the protocol's.
    whole = sorted((out / "grid_runs").glob("*.json"))
    assert len(files) + len(whole) == len(results["runs"])
    assert all(json.loads(f.read_text())["steps"] == QUICK.steps for f in whole)
    assert all(run["steps"] <= lab.lab_runs.QUICK.steps for run in results["runs"])
    assert (out / "curves.png").stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "SimpleRNN" in report and "control (no recurrence)" in report
    assert "attention (2 layers, positive control)" in report
    # A rerun (in this process) reads every finished run; one lost in flight is trained again,
    # alone, to the same numbers as in the worker.
    stamps = {f.name: f.stat().st_mtime_ns for f in files}
    lost = files[0]
    before = json.loads(lost.read_text())
    lost.unlink()
    lab.main([*argv, "--out", str(out)])
    after = json.loads(lost.read_text())
    assert {**after, "seconds": 0} == {**before, "seconds": 0}
    again = json.loads((out / "results.json").read_text())
    assert again["horizons"] == results["horizons"]
    changed = [
        f.name
        for f in sorted((out / "runs").glob("*.json"))
        if f.stat().st_mtime_ns != stamps.get(f.name)
    ]
    assert changed == [lost.name]


def test_unknown_cell_or_task_stops_with_one_line(capsys):
    from experiments import lab

    with pytest.raises(SystemExit):
        lab.main(["--cells", "nosuchcell", "--quick"])
    assert "unknown cell 'nosuchcell'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        lab.main(["--tasks", "adding,juggling", "--quick"])
    assert "unknown task(s) juggling" in capsys.readouterr().err


def test_budget_flags_change_every_run_and_take_positive_integers(capsys):
    from experiments import lab
    from experiments.lib.lab.runs import FULL, QUICK

    args = lab.parse_args(
        ["--steps", "500", "--layers", "3", "--max-dials", "1", "--no-early-stop"]
    )
    budget = lab.budget_of(args)
    assert (budget.steps, budget.layers, budget.max_dials, budget.early_stop) == (500, 3, 1, False)
    assert (budget.batch, budget.width) == (FULL.batch, FULL.width)
    assert lab.budget_of(lab.parse_args(["--quick"])) == QUICK
    for value in ("0", "-2", "many"):
        with pytest.raises(SystemExit):
            lab.parse_args(["--steps", value])
        assert f"'{value}' is not allowed: a positive integer" in capsys.readouterr().err


def test_a_replay_of_recorded_runs_bounds_the_horizon_where_runs_are_missing(tmp_path):
    """Replayed on every run of a lab, the protocol gives that lab's horizon; without the runs
    of the rates it never tried at the frontier, it gives bounds around it."""
    import dataclasses
    import json

    from experiments.lib.lab import replay
    from experiments.lib.lab.protocol import card
    from experiments.lib.lab.runs import FULL

    asked = []
    full = card("lstm", "adding", fake_runner(frontier_passes, asked), dials=TASKS["adding"].dials)
    runner = fake_runner(frontier_passes, [])
    records = []
    for key in asked:
        passed = runner(key)["passed"]
        records.append(
            runner(key)
            | {
                "metrics": {d: 0.0 if ok else 1.0 for d, ok in passed.items()},  # MSE: 0 passes.
                "rows_right": dict.fromkeys(passed, 0.0),
                "curve": [],
                "budget": dataclasses.asdict(FULL),
            }
        )
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"runs": records}))
    (row,) = replay.replay(path, ["lstm"], ["adding"], (1e-3, 3e-3, 1e-2), FULL)
    assert row["decided"] and row["low"] == full.horizon and not row["missing"]
    # Without the other rates' runs at the frontier: the old rule's lab.
    kept = [r for r in records if r["learning_rate"] == 3e-3 or r["difficulty"] == 16]
    path.write_text(json.dumps({"runs": kept}))
    (row,) = replay.replay(path, ["lstm"], ["adding"], (1e-3, 3e-3, 1e-2), FULL)
    assert row["missing"] and row["low"] <= full.horizon <= row["high"]
