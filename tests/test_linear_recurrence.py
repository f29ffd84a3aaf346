"""Cells linear in h: the parallel (associative) scan equals the sequential one in values and
gradients, the choice of evaluation is checked, and long parallel scans stay finite.

``check_cell`` proves the rest for every cell linear in h (tests/test_check_cell.py): both
evaluations equal a loop of the cell's steps (masked, both directions, from a given state, a row
without real steps keeping it), the state is affine in the initial one, 10,000 steps stay
finite in the default (sequential, on CPU) evaluation; the NumPy references from the papers,
parameter counts and initial decays are each cell's spec (tests/cell_specs.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax.cells import CELLS, LINEAR_CELLS
from rnn_jax.layers import (
    Recurrence,
    RecurrenceOptions,
    bidirectional,
    length_mask,
    linear_recurrence,
    resolve,
)
from rnn_jax.training.configuration import ConfigError, validate
from tests.cell_specs import SPECS
from tests.helpers import assert_trees_close, random_params

IN_FEATURES, HIDDEN = 3, 4


def normal(shape, seed, dtype=jnp.float64):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def test_the_linear_cells_are_the_ones_whose_spec_gives_an_initial_decay():
    with_decay = {name for name, spec in SPECS.items() if spec.initial_decay is not None}
    assert {name for name in LINEAR_CELLS if name in SPECS} == with_decay
    assert with_decay, "no cell linear in h: the tests below would run on nothing"


def test_linear_recurrence_is_the_first_order_recurrence_in_both_evaluations(x64):
    # h_t = a_t h_{t-1} + b_t written out by hand for three steps, forward and reversed.
    a, b, h0 = normal((3, 2, 1), 1), normal((3, 2, 1), 2), normal((2, 1), 3)
    h1 = a[0] * h0 + b[0]
    h2 = a[1] * h1 + b[1]
    forward = jnp.stack([h1, h2, a[2] * h2 + b[2]])
    g2 = a[2] * h0 + b[2]
    g1 = a[1] * g2 + b[1]
    backward = jnp.stack([a[0] * g1 + b[0], g1, g2])
    for parallel in (False, True):
        for reverse, expected in ((False, forward), (True, backward)):
            states = linear_recurrence(a, b, h0, parallel=parallel, reverse=reverse)
            np.testing.assert_allclose(states, expected, rtol=1e-12, atol=1e-15)


# 1, and lengths that are not powers of two (37 compiles a deeper associative scan: slow).
@pytest.mark.parametrize(
    "time", [1, pytest.param(7, marks=pytest.mark.slow), pytest.param(37, marks=pytest.mark.slow)]
)
@pytest.mark.parametrize("name", LINEAR_CELLS)
def test_parallel_equals_sequential_with_masks_reverse_and_gradients(name, time, x64):
    x = normal((3, time, IN_FEATURES), 4)
    length = jnp.array([max(time - 3, 1)])
    # Rows: post-padded, pre-padded, and one without any real step.
    mask = jnp.concatenate(
        [
            length_mask(length, time, "post"),
            length_mask(length, time, "pre"),
            jnp.zeros((1, time), bool),
        ]
    )
    cell = CELLS[name](features=HIDDEN, param_dtype=jnp.float64)
    layers = {
        mode: bidirectional(cell, True, RecurrenceOptions(time_parallel=mode))
        for mode in ("sequential", "parallel")
    }
    params = random_params(layers["sequential"], x, mask, seed=5)

    def loss(params, x, mode):
        carries, outputs = layers[mode].apply({"params": params}, x, mask)
        return jnp.sum(jnp.sin(outputs)) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carries))

    results = {mode: jax.value_and_grad(loss, argnums=(0, 1))(params, x, mode) for mode in layers}
    assert abs(results["sequential"][0]) > 1e-3
    assert_trees_close(results["parallel"], results["sequential"], rtol=1e-11, atol=1e-13)
    for mode in layers:  # The last-output form agrees too (the row without real steps: zeros).
        layer = Recurrence(cell, options=RecurrenceOptions(time_parallel=mode))
        carry, last = layer.apply({"params": params["forward"]}, x, mask)
        np.testing.assert_array_equal(last[2], 0.0)
        np.testing.assert_allclose(last[:2], carry[:2], rtol=0, atol=0)


# check_cell runs 10,000 steps in the default evaluation (sequential on CPU); this one is the
# parallel one's, with the inputs' gradient too.
@pytest.mark.slow  # 10,000 steps, gradients included.
@pytest.mark.parametrize("name", LINEAR_CELLS)
def test_ten_thousand_parallel_steps_stay_finite_forward_and_backward(name):
    x = normal((2, 10_000, IN_FEATURES), 9, jnp.float32)
    layer = Recurrence(
        CELLS[name](features=HIDDEN), True, options=RecurrenceOptions(time_parallel="parallel")
    )
    params = layer.init(jax.random.key(0), x[:, :2])["params"]

    def loss(params, x):
        return jnp.mean(layer.apply({"params": params}, x)[1] ** 2)

    value, (grads, x_grads) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)
    assert np.isfinite(value) and value > 0
    for leaf in [*jax.tree.leaves(grads), x_grads]:
        assert np.all(np.isfinite(leaf))
    assert np.abs(x_grads[:, 0]).max() > 0  # The first step still reaches the loss.


@pytest.mark.parametrize("backend, parallel", [("cpu", False), ("gpu", True), ("tpu", True)])
def test_time_parallel_auto_is_chosen_by_backend(monkeypatch, backend, parallel):
    monkeypatch.setattr(jax, "default_backend", lambda: backend)
    cell = CELLS["mingru"](features=2)

    def plan(mode, cell=cell):
        return resolve(cell, RecurrenceOptions(time_parallel=mode))

    assert plan("auto").path == "linear" and plan("auto").parallel is parallel
    assert plan("parallel").parallel and not plan("sequential").parallel
    # The other cells are always sequential under 'auto'.
    assert plan("auto", CELLS["lstm"](features=2)).path in ("scan", "fused")


def test_parallel_for_a_cell_not_linear_in_h_is_one_line_naming_the_cells_that_allow_it():
    layer = Recurrence(
        CELLS["lstm"](features=2), options=RecurrenceOptions(time_parallel="parallel")
    )
    with pytest.raises(ValueError) as info:
        layer.init(jax.random.key(0), jnp.zeros((1, 3, 2)))
    message = str(info.value)
    assert "\n" not in message and "time_parallel='parallel'" in message and "LSTMCell" in message
    assert all(name in message for name in LINEAR_CELLS)
    with pytest.raises(ValueError, match="time_parallel=.chunked. is not allowed: one of auto"):
        RecurrenceOptions(time_parallel="chunked")


def test_the_config_refuses_parallel_for_a_classic_cell():
    from configs import default

    config = default.get_config()
    config.time_parallel = "parallel"
    with pytest.raises(ConfigError) as info:
        validate(config, None)
    message = str(info.value)
    assert message.startswith("config.time_parallel='parallel' is not allowed")
    assert "LSTMCell is not" in message and all(name in message for name in LINEAR_CELLS)
    config.cell = "rglru"
    validate(config, None)
    config.time_parallel = "sideways"
    with pytest.raises(ConfigError, match="one of auto, sequential, parallel"):
        validate(config, None)
