"""The recurrence layers: shapes, scan == Python loop, unroll, jit, masking and gradients."""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax.cells import CELLS
from rnn_jax.recurrence import (
    Bidirectional,
    Recurrence,
    RecurrentStack,
    length_mask,
    projects_before_scan,
)
from tests.helpers import NAMES, VARIANTS, assert_trees_close, random_params

IN_FEATURES, HIDDEN = 4, 5


def make_cell(name, kwargs, hidden=HIDDEN, dtype=jnp.float32):
    return CELLS[name](features=hidden, param_dtype=dtype, **kwargs)


def normal(shape, seed, scale=1.0, dtype=jnp.float32):
    return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape), dtype)


def assert_trees_equal(actual, expected):
    assert_trees_close(actual, expected, rtol=0, atol=0)


def tree_vdot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def mixed_mask(time, length):
    """Row 0 post-padded, row 1 pre-padded, both ``length`` real steps out of ``time``."""
    lengths = jnp.array([length])
    return jnp.concatenate(
        [length_mask(lengths, time, "post"), length_mask(lengths, time, "pre")], axis=0
    )


def pad(sequences, time, padding, seed, garbage=1e3):
    """Stacks <[L_b, in]> sequences into <[B, time, in]>, padded positions filled with garbage."""
    x = np.array(normal((len(sequences), time, sequences[0].shape[-1]), seed, garbage))
    for row, seq in enumerate(sequences):
        start = 0 if padding == "post" else time - len(seq)
        x[row, start : start + len(seq)] = seq
    return jnp.asarray(x)


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    "batch, time, features, hidden", [(1, 1, 4, 5), (2, 3, 4, 5), (3, 7, 2, 6)]
)
@pytest.mark.parametrize("name, kwargs", VARIANTS)
def test_layer_shapes(name, kwargs, batch, time, features, hidden):
    cell = make_cell(name, kwargs, hidden)
    x = jax.ShapeDtypeStruct((batch, time, features), jnp.float32)
    mask = jax.ShapeDtypeStruct((batch, time), jnp.bool_)
    carry_structure = jax.tree.structure(cell.initialize_carry(None, (batch, features)))

    def output_shapes(module):
        return jax.eval_shape(
            lambda x, m: module.init_with_output(jax.random.key(0), x, m)[0], x, mask
        )

    def check_carry(carry):
        assert jax.tree.structure(carry) == carry_structure
        for leaf in jax.tree.leaves(carry):
            assert (leaf.shape, leaf.dtype) == ((batch, hidden), jnp.float32)

    for sequences in (True, False):
        expected = (batch, time) if sequences else (batch,)
        carry, outputs = output_shapes(Recurrence(cell, return_sequences=sequences))
        check_carry(carry)
        assert (outputs.shape, outputs.dtype) == ((*expected, hidden), jnp.float32)

        carries, outputs = output_shapes(Bidirectional(cell, return_sequences=sequences))
        assert len(carries) == 2
        for carry in carries:
            check_carry(carry)
        assert outputs.shape == (*expected, 2 * hidden)

        for bidirectional in (False, True):
            top = make_cell(name, kwargs, hidden + 1)
            stack = RecurrentStack([cell, top], bidirectional, return_sequences=sequences)
            outputs = output_shapes(stack)
            assert outputs.shape == (*expected, (hidden + 1) * (2 if bidirectional else 1))


# --------------------------------------------------------------------------- scan == Python loop


def python_loop(cell, cell_params, x, mask=None, carry=None, reverse=False):
    """The reference: the cell called step by step, masked steps frozen (state) / zero (output).

    Returns ``(final_carry, outputs <[B, T, H]>, last real output <[B, H]>)``.
    """
    batch, time = x.shape[:2]
    if carry is None:
        carry = cell.initialize_carry(None, x[:, 0].shape)
    if mask is None:
        mask = jnp.ones((batch, time), bool)
    last = jnp.zeros((batch, cell.features), x.dtype)
    outputs = [None] * time
    for t in reversed(range(time)) if reverse else range(time):
        new_carry, y = cell.apply({"params": cell_params}, carry, x[:, t])
        keep = mask[:, t, None]
        carry = jax.tree.map(lambda new, old, k=keep: jnp.where(k, new, old), new_carry, carry)
        last = jnp.where(keep, y, last)
        outputs[t] = jnp.where(keep, y, 0.0)
    return carry, jnp.stack(outputs, axis=1), last


@pytest.mark.parametrize("projection", ["before_scan", "in_step"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("name, kwargs", VARIANTS)
def test_scan_equals_python_loop(name, kwargs, reverse, projection, x64):
    time = 5
    cell = make_cell(name, kwargs, dtype=jnp.float64)
    x = normal((2, time, IN_FEATURES), seed=1, dtype=jnp.float64)
    mask = mixed_mask(time, 3)
    initial = jax.tree.map(
        lambda c: normal(c.shape, seed=3, scale=0.5, dtype=jnp.float64),
        cell.initialize_carry(None, x[:, 0].shape),
    )
    sequences = Recurrence(
        cell, return_sequences=True, reverse=reverse, input_projection=projection
    )
    last_only = Recurrence(
        cell, return_sequences=False, reverse=reverse, input_projection=projection
    )
    params = random_params(sequences, x, seed=2)
    assert set(params) == {"cell"}
    variables = {"params": params}

    def run(variables):
        return {
            "default": sequences.apply(variables, x),  # no mask, zero initial carry.
            "masked": sequences.apply(variables, x, mask, initial),
            "masked_last": last_only.apply(variables, x, mask, initial),
        }

    got = jax.jit(run)(variables)

    carry, outputs, last = python_loop(cell, params["cell"], x, reverse=reverse)
    assert_trees_close(got["default"], (carry, outputs), rtol=0, atol=1e-12)
    np.testing.assert_allclose(last, outputs[:, 0 if reverse else -1], rtol=0, atol=0)

    carry, outputs, last = python_loop(cell, params["cell"], x, mask, initial, reverse)
    assert_trees_close(got["masked"], (carry, outputs), rtol=0, atol=1e-12)
    assert_trees_close(got["masked_last"], (carry, last), rtol=0, atol=1e-12)

    # Without jit: the same numbers.
    eager = sequences.apply(variables, x, mask, initial)
    assert_trees_close(eager, got["masked"], rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- gradients


class Problem(NamedTuple):
    params: Any
    x: jax.Array
    mask: jax.Array
    value_and_grad: Any  # jitted, d/d(params, x)


@functools.cache
def masked_recurrence_problem(name, kwargs_items, unroll, projection="auto"):
    """A float64 loss through a masked ``Recurrence``: all outputs and the final carry.

    Rows: post-padded, pre-padded (3 real steps of 5) and one without any real step. Cached, so
    the gradient tests share the compiled functions.
    """
    with jax.enable_x64(True):
        time = 5
        x = normal((3, time, IN_FEATURES), seed=60, dtype=jnp.float64)
        mask = jnp.concatenate([mixed_mask(time, 3), jnp.zeros((1, time), bool)])
        cell = make_cell(name, dict(kwargs_items), dtype=jnp.float64)
        layer = Recurrence(cell, return_sequences=True, unroll=unroll, input_projection=projection)
        params = random_params(layer, x, mask, seed=61)
        weights = normal((3, time, HIDDEN), seed=62, dtype=jnp.float64)

        def loss(params, x):
            carry, outputs = layer.apply({"params": params}, x, mask)
            return jnp.sum(jnp.sin(outputs) * weights) + sum(
                jnp.sum(c**2) for c in jax.tree.leaves(carry)
            )

        grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        return Problem(params, x, mask, grad)


@pytest.mark.parametrize("projection", ["before_scan", "in_step"])
@pytest.mark.parametrize("name, kwargs", VARIANTS)
def test_gradient_matches_finite_differences(name, kwargs, projection, x64):
    problem = masked_recurrence_problem(name, tuple(kwargs.items()), 1, projection)
    params, x = problem.params, problem.x
    _, (grads, _) = problem.value_and_grad(params, x)
    for leaf in jax.tree.leaves(grads):
        assert np.all(np.isfinite(leaf))  # also with a row that has no real step.
    rng = np.random.default_rng(63)
    eps = 1e-6
    for _ in range(3):
        direction = jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape)), params)
        plus = jax.tree.map(lambda p, d: p + eps * d, params, direction)
        minus = jax.tree.map(lambda p, d: p - eps * d, params, direction)
        # The values of the compiled value_and_grad (no second compilation for the loss alone).
        loss_plus, _ = problem.value_and_grad(plus, x)
        loss_minus, _ = problem.value_and_grad(minus, x)
        numeric = (loss_plus - loss_minus) / (2 * eps)
        analytic = tree_vdot(grads, direction)
        assert abs(analytic) > 1e-2  # a meaningful derivative, not 0 == 0.
        assert abs(numeric - analytic) / abs(analytic) < 1e-6, (numeric, analytic)


@pytest.mark.parametrize("name", NAMES)
def test_unroll_matches_unroll_1(name, x64):
    kwargs = {}
    # time 5 is not a multiple of the unroll 3.
    one = masked_recurrence_problem(name, tuple(kwargs.items()), unroll=1)
    three = masked_recurrence_problem(name, tuple(kwargs.items()), unroll=3)
    assert_trees_equal(three.params, one.params)
    value_1, grads_1 = one.value_and_grad(one.params, one.x)
    value_3, grads_3 = three.value_and_grad(one.params, one.x)
    np.testing.assert_allclose(value_3, value_1, rtol=1e-12)
    assert_trees_close(grads_3, grads_1, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_reaches_first_real_step(name):
    time, length = 6, 3
    x = normal((2, time, IN_FEATURES), seed=70)
    mask = mixed_mask(time, length)  # row 0 post-padded, row 1 pre-padded.
    layer = Recurrence(make_cell(name, {}))  # only the last real output enters the loss.
    params = random_params(layer, x, mask, seed=71)
    weights = normal((2, HIDDEN), seed=72)

    def loss(x):
        _, last = layer.apply({"params": params}, x, mask)
        return jnp.sum(last * weights)

    grad = np.asarray(jax.jit(jax.grad(loss))(x))
    assert np.abs(grad[0, 0]).max() > 1e-6  # post-padded: step 0 is the first real step.
    first = time - length
    assert np.abs(grad[1, first]).max() > 1e-6  # pre-padded: the first real step...
    np.testing.assert_array_equal(grad[1, :first], 0.0)  # ...and exactly nothing before it.
    np.testing.assert_array_equal(grad[0, length:], 0.0)  # nothing from post-padding either.


# --------------------------------------------------------------------------- masking


def test_length_mask_exact():
    lengths = jnp.array([0, 2, 4, 1])
    post = [[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    pre = [[0, 0, 0, 0], [0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1]]
    for padding, expected in [("post", post), ("pre", pre)]:
        mask = length_mask(lengths, 4, padding)
        assert mask.dtype == jnp.bool_
        np.testing.assert_array_equal(mask, np.array(expected, bool))
    np.testing.assert_array_equal(length_mask(lengths, 4), np.array(post, bool))
    with pytest.raises(ValueError, match="pre"):
        length_mask(lengths, 4, "middle")


@pytest.mark.parametrize("name", NAMES)
def test_padding_side_values_and_batch_do_not_matter(name):
    """Pre-padded, post-padded and unpadded copies agree; the padding's values do not matter.

    Runs a ``Bidirectional`` layer: its forward half is a plain ``Recurrence``, its backward half
    a ``reverse=True`` one. One batch mixes lengths 4, 2 and 0 (of 6), post- and pre-padded;
    each sequence is also run alone (batch 1, its own length, no padding, no mask).
    """
    time, lengths = 6, (4, 2, 0)
    sequences = [np.asarray(normal((n, IN_FEATURES), seed=10 + n)) for n in lengths]

    def padded_batch(seed):  # rows 0-2 post-padded, rows 3-5 pre-padded; garbage in the padding.
        x = jnp.concatenate([pad(sequences, time, "post", seed), pad(sequences, time, "pre", seed)])
        mask = jnp.concatenate([length_mask(jnp.array(lengths), time, p) for p in ("post", "pre")])
        return x, mask

    x, mask = padded_batch(seed=20)
    cell = make_cell(name, {})
    layers = [Bidirectional(cell, return_sequences=s) for s in (True, False)]
    variables = {"params": random_params(layers[0], x, mask, seed=11)}
    runs = [jax.jit(functools.partial(layer.apply, variables)) for layer in layers]
    (carries, outputs), (last_carries, last) = (run(x, mask) for run in runs)

    assert_trees_equal(last_carries, carries)
    for leaf in jax.tree.leaves((carries, outputs, last)):
        assert np.all(np.isfinite(leaf))
    outputs, mask_np = np.asarray(outputs), np.asarray(mask)
    np.testing.assert_array_equal(outputs[~mask_np], 0.0)  # masked steps output zero.

    for b, seq in enumerate(sequences):
        rows = (b, b + len(sequences))  # the post- and the pre-padded copy.
        if len(seq) == 0:  # no real step: zero outputs, the initial (zero) carry, no NaN.
            for leaf in jax.tree.leaves((carries, last)):
                np.testing.assert_array_equal(np.asarray(leaf)[list(rows)], 0.0)
            continue
        alone_carries, alone_outputs = runs[0](jnp.asarray(seq[None]), None)
        # Feature order [forward, backward]: the halves are the two directions' own loops.
        for half, direction, reverse in [
            (slice(None, HIDDEN), "forward", False),
            (slice(HIDDEN, None), "backward", True),
        ]:
            cell_params = variables["params"][direction]["cell"]
            _, loop_outputs, _ = python_loop(cell, cell_params, seq[None], reverse=reverse)
            np.testing.assert_allclose(alone_outputs[..., half], loop_outputs, atol=1e-6)
        alone_last = jnp.concatenate([alone_outputs[0, -1, :HIDDEN], alone_outputs[0, 0, HIDDEN:]])
        for row in rows:
            np.testing.assert_allclose(outputs[row][mask_np[row]], alone_outputs[0], atol=1e-6)
            np.testing.assert_allclose(last[row], alone_last, atol=1e-6)
            assert_trees_close(
                jax.tree.map(lambda c, r=row: c[r], carries),
                jax.tree.map(lambda c: c[0], alone_carries),
                rtol=1e-6,
                atol=1e-6,
            )

    # Other garbage in the padding: bitwise the same results.
    x2, mask2 = padded_batch(seed=30)
    assert not np.allclose(x2, x)
    np.testing.assert_array_equal(mask2, mask)
    assert_trees_equal(runs[0](x2, mask), (carries, outputs))
    assert_trees_equal(runs[1](x2, mask), (last_carries, last))


@pytest.mark.parametrize("name", sorted(CELLS))
def test_float64_inputs_with_float32_params(name, x64):
    """numpy float64 inputs (x64 on) run through float32 parameters without a carry-type error."""
    layer = Recurrence(CELLS[name](features=5), return_sequences=True)
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    variables = layer.init(jax.random.key(0), x)
    _, outputs = layer.apply(variables, x)
    assert outputs.shape == (2, 3, 5) and bool(jnp.all(jnp.isfinite(outputs)))


def test_input_projection_auto_is_chosen_by_backend():
    # Measured (experiments/benchmark.py): in the step on CPU, one matmul before the scan else.
    assert projects_before_scan("auto") == (jax.default_backend() != "cpu")
    assert projects_before_scan("before_scan") and not projects_before_scan("in_step")
    with pytest.raises(ValueError, match="input_projection must be one of auto, before_scan"):
        projects_before_scan("hoisted")


@pytest.mark.parametrize("name", NAMES)
def test_input_projection_before_scan_and_in_step_agree(name, x64):
    before = masked_recurrence_problem(name, (), 1, "before_scan")
    in_step = masked_recurrence_problem(name, (), 1, "in_step")
    # Both place the cell's parameters alike (a checkpoint of one restores into the other).
    assert_trees_equal(in_step.params, before.params)
    value, grads = before.value_and_grad(before.params, before.x)
    value_in_step, grads_in_step = in_step.value_and_grad(before.params, before.x)
    np.testing.assert_allclose(value_in_step, value, rtol=1e-12)
    assert_trees_close(grads_in_step, grads, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_a_given_initial_carry_is_where_the_scan_starts(name):
    layer = Recurrence(CELLS[name](features=3), return_sequences=True)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 5)), jnp.float32)
    params = layer.init(jax.random.key(0), x)["params"]
    start = jax.tree.map(lambda c: c + 0.5, layer.cell.initialize_carry(None, (2, 5)))
    _, outputs = layer.apply({"params": params}, x, initial_carry=start)
    carry = start  # The cell stepped by hand from the same carry.
    for t in range(4):
        carry, expected = layer.cell.apply({"params": params["cell"]}, carry, x[:, t])
        np.testing.assert_allclose(outputs[:, t], expected, rtol=1e-5, atol=1e-6)


def test_a_float32_initial_carry_runs_a_bfloat16_cell():
    layer = Recurrence(CELLS["lstm"](features=3, dtype=jnp.bfloat16))
    x = jnp.ones((2, 4, 5))
    params = layer.init(jax.random.key(0), x)["params"]
    start = (jnp.zeros((2, 3), jnp.float32), jnp.zeros((2, 3), jnp.float32))
    carry, output = layer.apply({"params": params}, x, initial_carry=start)
    assert output.dtype == jnp.bfloat16 and carry[0].dtype == jnp.bfloat16
