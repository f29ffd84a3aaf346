"""The recurrence layers: shapes, unroll, masking, gradients, Flax's cells, stacks and options.

That each cell's layer equals a Python loop of its steps (every evaluation path, both directions,
masked, from a given carry), jit == eager, its float64 finite-difference gradients, padding
invariance, nn.RNN and 10,000 finite steps are ``check_cell``'s, run on every registered cell
by tests/test_check_cell.py. Here: what check_cell does not run (Bidirectional, RecurrentStack,
return_sequences=False, unroll, remat, the mask helper, Flax's own cells).
"""

import functools
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax.cells import CELLS
from rnn_jax.layers import (
    Recurrence,
    RecurrenceOptions,
    RecurrentStack,
    bidirectional,
    length_mask,
    resolve,
)
from tests.helpers import (
    NAMES,
    VARIANTS,
    assert_trees_close,
    random_params,
)

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

        carries, outputs = output_shapes(bidirectional(cell, sequences))
        assert len(carries) == 2
        for carry in carries:
            check_carry(carry)
        assert outputs.shape == (*expected, 2 * hidden)

        for both_ways in (False, True):
            top = make_cell(name, kwargs, hidden + 1)
            stack = RecurrentStack([cell, top], both_ways, return_sequences=sequences)
            outputs = output_shapes(stack)
            assert outputs.shape == (*expected, (hidden + 1) * (2 if both_ways else 1))


# --------------------------------------------------------------------------- Python loop


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
        options = RecurrenceOptions(unroll=unroll, input_projection=projection)
        layer = Recurrence(cell, return_sequences=True, options=options)
        params = random_params(layer, x, mask, seed=61)
        weights = normal((3, time, HIDDEN), seed=62, dtype=jnp.float64)

        def loss(params, x):
            carry, outputs = layer.apply({"params": params}, x, mask)
            return jnp.sum(jnp.sin(outputs) * weights) + sum(
                jnp.sum(c**2) for c in jax.tree.leaves(carry)
            )

        grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        return Problem(params, x, mask, grad)


# The gradient's values are checked against finite differences of the NumPy equations, which
# share no code with the layer: tests/test_cells.py.


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
    layers = [bidirectional(cell, s) for s in (True, False)]
    variables = {"params": random_params(layers[0], x, mask, seed=11)}
    runs = [jax.jit(functools.partial(layer.apply, variables)) for layer in layers]
    (carries, outputs), (last_carries, last) = (run(x, mask) for run in runs)

    # Two programs (with and without the output sequence): equal up to float rounding.
    assert_trees_close(last_carries, carries, rtol=1e-6, atol=1e-7)
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
    variables = jax.jit(layer.init)(jax.random.key(0), x)
    _, outputs = jax.jit(layer.apply)(variables, x)
    assert outputs.shape == (2, 3, 5) and bool(jnp.all(jnp.isfinite(outputs)))


@pytest.mark.parametrize("backend, before", [("cpu", False), ("gpu", True), ("tpu", True)])
def test_input_projection_auto_is_chosen_by_backend(monkeypatch, backend, before):
    # The rule (rnn_jax/layers/evaluation.py; CPU numbers in experiments/results/benchmark/).
    monkeypatch.setattr(jax, "default_backend", lambda: backend)
    cell = CELLS["gru"](features=2)  # An LSTM on a GPU would take its fused kernel.

    def plan(projection, cell=cell):
        return resolve(cell, RecurrenceOptions(input_projection=projection))

    assert plan("auto").project_before_scan is before
    assert plan("before_scan").project_before_scan and not plan("in_step").project_before_scan
    # A Flax cell cannot project its inputs apart: always in the step.
    assert not plan("before_scan", nn.LSTMCell(2)).project_before_scan
    with pytest.raises(ValueError, match="input_projection='hoisted' is not allowed: one of auto"):
        RecurrenceOptions(input_projection="hoisted")


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


def test_a_float32_initial_carry_runs_a_bfloat16_cell():
    layer = Recurrence(CELLS["lstm"](features=3, dtype=jnp.bfloat16))
    x = jnp.ones((2, 4, 5))
    params = layer.init(jax.random.key(0), x)["params"]
    start = (jnp.zeros((2, 3), jnp.float32), jnp.zeros((2, 3), jnp.float32))
    carry, output = layer.apply({"params": params}, x, initial_carry=start)
    assert output.dtype == jnp.bfloat16 and carry[0].dtype == jnp.bfloat16


# --------------------------------------------------------------------------- Flax's contract


@pytest.mark.parametrize("flax_cell", ["LSTMCell", "OptimizedLSTMCell", "GRUCell", "SimpleCell"])
def test_flax_cells_run_in_recurrence_with_masks_as_in_flax_rnn(flax_cell):

    cell = getattr(nn, flax_cell)(features=HIDDEN)
    x = normal((3, 7, IN_FEATURES), seed=4)
    lengths = jnp.array([7, 4, 1])
    reference = nn.RNN(cell, return_carry=True)
    params = random_params(reference, x)
    flax_carry, flax_outputs = reference.apply({"params": params}, x, seq_lengths=lengths)
    # Recurrence honours both padding sides: the valid steps of post-padded rows, moved to the
    # end of pre-padded rows, give the same final carry.
    for padding in ("post", "pre"):
        shifted = jnp.stack(
            [
                jnp.roll(x[b], 7 - int(n), axis=0) if padding == "pre" else x[b]
                for b, n in enumerate(lengths)
            ]
        )
        mask = length_mask(lengths, 7, padding)
        carry, outputs = Recurrence(cell, return_sequences=True).apply(
            {"params": params}, shifted, mask
        )
        assert_trees_close(carry, flax_carry, rtol=1e-6, atol=1e-6)
        if padding == "post":
            valid = np.asarray(mask)
            np.testing.assert_allclose(
                np.asarray(outputs)[valid], np.asarray(flax_outputs)[valid], rtol=1e-6, atol=1e-6
            )


# --------------------------------------------------------------------------- stacks


@pytest.mark.parametrize(
    "name, bidirectional", [(n, False) for n in NAMES] + [("lstm", True)]
)  # Both directions of each layer share Recurrence's masking: one cell suffices there.
def test_a_masked_pre_padded_stack_equals_each_sequence_alone(name, bidirectional):
    """Two layers, random (non-zero) biases: padding moves no layer's state, not only layer 0's."""
    time, lengths = 6, (4, 1)
    sequences = [np.asarray(normal((n, IN_FEATURES), seed=40 + n)) for n in lengths]
    x = pad(sequences, time, "pre", seed=41)
    mask = length_mask(jnp.array(lengths), time, "pre")
    stack = RecurrentStack([make_cell(name, {}), make_cell(name, {}, hidden=3)], bidirectional)
    params = random_params(stack, x, mask, seed=42)
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if "bias" in jax.tree_util.keystr(path):
            assert np.abs(np.asarray(leaf)).min() > 0  # Every bias moves a padded state.
    apply = jax.jit(stack.apply)  # Compiled per shape: faster than op by op.
    batched = apply({"params": params}, x, mask)
    for row, seq in enumerate(sequences):
        alone = apply({"params": params}, jnp.asarray(seq[None]))
        np.testing.assert_allclose(batched[row], alone[0], rtol=1e-5, atol=1e-6)


def test_dropout_between_layers_drops_and_scales_the_lower_layers_outputs():
    """Layer 1 reads layer 0's output sequence with each entry zeroed with probability p and the
    rest scaled by 1 / (1 - p); without ``train`` it reads it unchanged."""

    rate = 0.5
    x = normal((4, 6, IN_FEATURES), seed=50)
    stack = RecurrentStack([make_cell("lstm", {}), make_cell("lstm", {})], dropout_rate=rate)
    params = random_params(stack, x, seed=51)
    seen = {}

    def record(next_fun, args, kwargs, context):
        result = next_fun(*args, **kwargs)
        if isinstance(context.module, Recurrence) and context.method_name == "__call__":
            seen[context.module.name] = args[0]
            seen[f"{context.module.name} output"] = result[1]
        return result

    for train in (True, False):
        seen.clear()
        with nn.intercept_methods(record):
            stack.apply({"params": params}, x, train=train, rngs={"dropout": jax.random.key(3)})
        below, above = np.asarray(seen["layer_0 output"]), np.asarray(seen["layer_1"])
        if not train:
            np.testing.assert_array_equal(above, below)
            continue
        dropped = above == 0
        np.testing.assert_allclose(above[~dropped], below[~dropped] / (1 - rate), rtol=1e-6)
        assert 0.4 < dropped.mean() < 0.6  # 576 entries, p = 0.5.
        np.testing.assert_array_equal(np.asarray(seen["layer_0"]), np.asarray(x))  # Not below.


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_a_residual_stack_adds_each_upper_layers_input_to_its_output(return_sequences, padding):

    time, lengths = 6, (4, 1)
    sequences = [np.asarray(normal((n, HIDDEN), seed=50 + n)) for n in lengths]
    x = pad(sequences, time, padding, seed=51)
    mask = length_mask(jnp.array(lengths), time, padding)
    cells = [make_cell("mingru", {}), make_cell("mingru", {})]
    stack = RecurrentStack(cells, return_sequences=return_sequences, residual=True)
    params = random_params(stack, x, mask, seed=52)
    assert set(params) == {"layer_0", "norm_1", "layer_1"}  # No norm below the first layer.
    batched = stack.apply({"params": params}, x, mask)
    # By hand: h0 = layer_0(x); out = layer_1(LayerNorm(h0)) + h0 (at the last real step).
    _, h0 = Recurrence(cells[0], True).apply({"params": params["layer_0"]}, x, mask)
    normed = nn.LayerNorm().apply({"params": params["norm_1"]}, h0)
    _, top = Recurrence(cells[1], return_sequences).apply(
        {"params": params["layer_1"]}, normed, mask
    )
    last = [time - 1 if padding == "pre" else n - 1 for n in lengths]  # Each row's last real step.
    expected = top + (h0 if return_sequences else h0[jnp.arange(2), jnp.array(last)])
    np.testing.assert_allclose(batched, expected, rtol=1e-5, atol=1e-6)
    for row, seq in enumerate(sequences):  # Padding still changes nothing.
        alone = stack.apply({"params": params}, jnp.asarray(seq[None]))
        start = time - len(seq) if padding == "pre" else 0
        real = slice(start, start + len(seq)) if return_sequences else slice(None)
        np.testing.assert_allclose(batched[row][real], alone[0], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- options, remat


def test_the_generic_layers_name_no_cell():
    # How a cell is evaluated is asked of the cell (rnn_jax/layers/evaluation.py), never decided
    # by its class: no registered cell class, nor the linear family's base, is named there.
    from pathlib import Path

    import rnn_jax.layers
    from rnn_jax.cells import LinearRecurrentCell

    names = {cls.__name__ for cls in CELLS.values()} | {LinearRecurrentCell.__name__}
    for path in Path(rnn_jax.layers.__file__).parent.glob("*.py"):
        named = sorted(name for name in names if name in path.read_text())
        assert not named, f"{path.name} names {named}"


def test_options_come_from_the_config_fields_of_the_same_names():
    from configs import default

    config = default.get_config()
    config.update(unroll=4, input_projection="in_step", remat=True)
    options = RecurrenceOptions.from_config(config)
    assert options == RecurrenceOptions(4, "in_step", "auto", "auto", True)
    for field, bad in [("unroll", 0), ("remat", "yes"), ("lstm_backend", "fast")]:
        with pytest.raises(ValueError, match=f"^{field}={bad!r} is not allowed: "):
            RecurrenceOptions(**{field: bad})


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_remat_recomputes_the_step_and_changes_no_number(name, x64):
    cell = make_cell(name, {}, dtype=jnp.float64)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 7, IN_FEATURES)))
    mask = length_mask(jnp.array([7, 4]), 7)
    plain = Recurrence(cell, return_sequences=True)
    remat = plain.clone(options=RecurrenceOptions(remat=True))
    params = random_params(plain, x, mask)

    def loss(layer, params):
        carry, outputs = layer.apply({"params": params}, x, mask)
        return jnp.sum(outputs**2) + sum(jnp.sum(c) for c in jax.tree.leaves(carry))

    expected = jax.value_and_grad(functools.partial(loss, plain))(params)
    actual = jax.value_and_grad(functools.partial(loss, remat))(params)
    assert_trees_close(actual, expected, rtol=1e-12, atol=1e-12)
    # The backward pass holds a checkpointed (recomputed) step only when asked.
    jaxpr = str(jax.make_jaxpr(jax.grad(functools.partial(loss, remat)))(params))
    assert "checkpoint" in jaxpr or "remat" in jaxpr
    plain_jaxpr = str(jax.make_jaxpr(jax.grad(functools.partial(loss, plain)))(params))
    assert "checkpoint" not in plain_jaxpr and "remat" not in plain_jaxpr
