"""Cells: what only a reference can tell: initial values, parameter counts, numerical parity.

What every cell must do (the contract, the layer equal to a loop of its steps, jit, gradients,
padding, reverse, nn.RNN, long sequences, bfloat16, linearity in h) is ``check_cell``'s, run on
every registered cell by tests/test_check_cell.py. Here each built-in cell meets its spec
(tests/cell_specs.py): parity with a NumPy transcription of its equations (float64, written
without calling rnn_jax) and with Keras itself (float32), Keras's parameter count and
initializers, and the initial decay of a cell linear in h.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax.cells import CELLS, LSTMCell, get_cell_class, is_linear
from rnn_jax.cells.base import INITIALIZERS, RecurrentCell, get_initializer
from rnn_jax.layers.recurrence import Recurrence
from tests.cell_specs import (
    ACTIVATION_CASES,
    SPEC_FILE,
    SPECS,
    built_in_cells,
    reference_outputs,
)
from tests.helpers import (
    SPEC_VARIANTS,
    VARIANTS,
    assert_trees_close,
    random_params,
)

# --------------------------------------------------------------------------- registry and specs


def test_every_built_in_cell_has_a_spec():
    """The one test a built-in cell without a spec fails (the others run over the specs)."""
    missing = [name for name in built_in_cells() if name not in SPECS]
    assert not missing, (
        f"no CellSpec for the built-in cell(s) {missing}: add one to SPECS in {SPEC_FILE} (its "
        "NumPy reference, its parameter-count formula, its Keras layer if any, its initial "
        "decay if it is linear in h)"
    )
    unknown = sorted(set(SPECS) - set(built_in_cells()))
    assert not unknown, f"{SPEC_FILE} has specs for {unknown}, which are no built-in cells"


@pytest.mark.parametrize("name, kwargs", VARIANTS)
def test_registry_contract(name, kwargs):
    cls = CELLS[name]
    assert get_cell_class(name) is cls
    assert issubclass(cls, RecurrentCell)
    for method in ("project_inputs", "step", "initialize_carry"):
        assert callable(getattr(cls, method, None)), f"{name} lacks {method}"

    cell = cls(features=5, **kwargs)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 4)), jnp.float32)
    carry = cell.initialize_carry(None, x.shape)
    # One float32 [batch, H] leaf per state (check_cell proves the rest of the contract).
    for leaf in jax.tree.leaves(carry):
        assert (leaf.shape, leaf.dtype) == ((2, 5), jnp.float32)
    params = random_params(cell, carry, x)
    variables = {"params": params}
    gates = cls.num_gates * 5
    assert params["kernel"].shape == (4, gates)
    # A cell linear in h has no recurrent kernel: its gates read x_t only.
    assert ("recurrent_kernel" in params) != is_linear(cls)
    if not is_linear(cls):
        assert params["recurrent_kernel"].shape == (5, gates)

    xw = cell.apply(variables, x, method="project_inputs")
    assert xw.shape == (2, gates)

    # project_inputs works on any leading axes, step by step the same as on one step.
    xs = jnp.asarray(np.random.default_rng(2).standard_normal((2, 3, 4)), jnp.float32)
    xw_all = cell.apply(variables, xs, method="project_inputs")
    assert xw_all.shape == (2, 3, gates)
    for t in range(3):
        np.testing.assert_allclose(
            xw_all[:, t], cell.apply(variables, xs[:, t], method="project_inputs"), atol=1e-6
        )


def test_unknown_cell_name_lists_registered_cells():
    with pytest.raises(ValueError) as info:
        get_cell_class("no_such_cell")
    for name in CELLS:
        assert name in str(info.value)


# --------------------------------------------------------------------------- initial values


@pytest.mark.parametrize("name, kwargs", SPEC_VARIANTS)
def test_initial_values_follow_keras_and_the_seed(name, kwargs):
    in_features, hidden = 6, 8
    cell = CELLS[name](features=hidden, **kwargs)
    initial_decay = SPECS[name].initial_decay
    assert (initial_decay is not None) == is_linear(cell), (
        f"{name} is {'' if is_linear(cell) else 'not '}linear in h: its spec in {SPEC_FILE} "
        f"{'needs' if is_linear(cell) else 'has'} an initial_decay"
    )
    x = jnp.zeros((1, in_features))
    init = jax.jit(lambda key: cell.init(key, cell.initialize_carry(None, x.shape), x)["params"])
    params = init(jax.random.key(0))
    gates = cell.num_gates * hidden

    # A fixed seed gives bitwise identical parameters; another seed other random ones.
    assert_trees_close(init(jax.random.key(0)), params, rtol=0, atol=0)
    other = init(jax.random.key(1))
    changed = {key for key in params if not np.allclose(other[key], params[key])}
    assert "kernel" in changed
    assert "recurrent_kernel" in changed or "recurrent_kernel" not in params
    if initial_decay:
        decays = [initial_decay(p, hidden)[0] for p in (params, other)]
        assert not np.allclose(*decays), "the initial decay did not change with the seed"

    kernel = np.asarray(params["kernel"])
    assert kernel.shape == (in_features, gates)
    bound = np.sqrt(6.0 / (in_features + gates))  # glorot_uniform limit.
    assert np.abs(kernel).max() <= bound
    assert np.abs(kernel).max() > 0.5 * bound  # really spread over the range, not tiny.

    if initial_decay:  # Linear in h: the decay starts in Griffin's [0.9, 0.999].
        decay, zero_biases = initial_decay(params, hidden)
        assert decay.shape == (hidden,)
        assert 0.9 <= decay.min() and decay.max() <= 0.999
        assert decay.max() - decay.min() > 0.01  # Spread over the range, per unit.
        np.testing.assert_array_equal(zero_biases, 0.0)
        return
    # Keras's orthogonal init is on the whole [H, G*H] matrix: its rows are orthonormal.
    recurrent = np.asarray(params["recurrent_kernel"], np.float64)
    assert recurrent.shape == (hidden, gates)
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(hidden), atol=1e-5)

    bias = np.asarray(params["bias"])
    expected = np.zeros(cell.bias_shape)
    if isinstance(cell, LSTMCell):  # Keras unit_forget_bias=True: forget slice (i, f, c, o) is 1.
        expected[hidden : 2 * hidden] = 1.0
    np.testing.assert_array_equal(bias, expected)


def nn_constant(value):
    return lambda key, shape, dtype=jnp.float32: jnp.full(shape, value, dtype)


def test_lstm_forget_bias_is_configurable():
    cell = LSTMCell(features=3, forget_bias=2.5, bias_init=nn_constant(0.25))
    bias = cell.bias_initializer()(jax.random.key(0), cell.bias_shape, jnp.float32)
    np.testing.assert_array_equal(bias, [0.25] * 3 + [2.5] * 3 + [0.25] * 6)


def test_random_normal_initializer_stddev():
    init = get_initializer("random_normal:0.001")
    w = np.asarray(init(jax.random.key(0), (400, 500), jnp.float32))
    assert w.shape == (400, 500)
    assert abs(w.std() - 0.001) < 0.02 * 0.001
    assert abs(w.mean()) < 1e-5


# Keras's definitions at fan_in 400, fan_out 500: the standard deviation each one draws with.
INITIALIZER_STDDEVS = {
    "glorot_uniform": (2 / 900) ** 0.5,
    "glorot_normal": (2 / 900) ** 0.5,  # Truncated, rescaled to keep this deviation.
    "lecun_normal": (1 / 400) ** 0.5,
    "he_normal": (2 / 400) ** 0.5,
    "orthogonal": (1 / 500) ** 0.5,  # Orthonormal rows of length 500.
    "zeros": 0.0,
}


@pytest.mark.parametrize("spec", sorted(INITIALIZERS))
def test_named_initializers_draw_as_keras_defines_them(spec):
    w = np.asarray(get_initializer(spec)(jax.random.key(0), (400, 500), jnp.float32))
    assert w.shape == (400, 500)
    assert abs(w.std() - INITIALIZER_STDDEVS[spec]) <= 0.02 * INITIALIZER_STDDEVS[spec]
    assert abs(w.mean()) < 1e-3
    if spec == "glorot_uniform":
        assert np.abs(w).max() <= (6 / 900) ** 0.5
    if spec == "orthogonal":
        np.testing.assert_allclose(w @ w.T, np.eye(400), atol=1e-5)


@pytest.mark.parametrize(
    "spec", ["no_such_init", "random_normal", "random_normal:abc", "glorot_uniform:2", ""]
)
def test_unknown_initializer_lists_allowed(spec):
    with pytest.raises(ValueError) as info:
        get_initializer(spec)
    for allowed in INITIALIZERS:
        assert allowed in str(info.value)
    assert "random_normal:" in str(info.value)


# --------------------------------------------------------------------------- parameter counts


def cell_param_count(cell, in_features):
    x = jax.ShapeDtypeStruct((1, 1, in_features), jnp.float32)
    shapes = jax.eval_shape(lambda x: Recurrence(cell).init(jax.random.key(0), x), x)
    return sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes))


@pytest.mark.parametrize("name, kwargs", SPEC_VARIANTS)
def test_param_count_equals_keras(name, kwargs):
    for d, u in [(100, 256), (8, 16)]:
        count = cell_param_count(CELLS[name](features=u, **kwargs), d)
        assert count == SPECS[name].param_count(d, u, **kwargs), (d, u)


def test_the_formulas_give_the_counts_keras_prints():
    """Keras's own model.summary() counts, hand-checked, for d=100, u=256 and d=8, u=16: a wrong
    formula fails here, not only where our count is compared with it."""

    def count(name, d, u, **kwargs):
        return SPECS[name].param_count(d, u, **kwargs)

    assert count("rnn", 100, 256) == 91_392  # The README's example: (100 + 256) 256 + 256.
    assert count("lstm", 100, 256) == 365_568
    assert count("gru", 100, 256) == 274_944
    assert count("gru", 100, 256, reset_after=False) == 274_176
    assert [count(n, 8, 16) for n in ("rnn", "lstm", "gru")] == [400, 1_600, 1_248]
    assert count("gru", 8, 16, reset_after=False) == 1_200


# --------------------------------------------------------------------------- NumPy reference


def float64_cell(name, kwargs, hidden, activations):
    """Cell ``name`` in float64 with the activations ``ACTIVATION_CASES[activations]``."""
    activation, recurrent_activation, _, _ = ACTIVATION_CASES[activations]
    return CELLS[name](
        features=hidden,
        param_dtype=jnp.float64,
        activation=activation,
        recurrent_activation=recurrent_activation,
        **kwargs,
    )


@pytest.mark.parametrize("activations", list(ACTIVATION_CASES))
@pytest.mark.parametrize("name, kwargs", SPEC_VARIANTS)
def test_matches_numpy_keras_equations(name, kwargs, activations, x64):
    batch, time, in_features, hidden = 2, 6, 4, 5
    x = np.random.default_rng(3).standard_normal((batch, time, in_features))
    cell = float64_cell(name, kwargs, hidden, activations)
    layer = Recurrence(cell, True)
    # Random weights (not the init): every bias entry is non-zero.
    params = random_params(layer, jnp.asarray(x), seed=4)
    expected_outputs, expected_carry = reference_outputs(name, kwargs, x, params, activations)
    carry, outputs = layer.apply({"params": params}, jnp.asarray(x))
    assert outputs.dtype == jnp.float64
    # Float64 on both sides: equal up to rounding (float32 vs Keras: see test_matches_keras).
    np.testing.assert_allclose(outputs, expected_outputs, rtol=0, atol=1e-10)
    assert_trees_close(carry, expected_carry, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name, kwargs", SPEC_VARIANTS)
def test_gradient_matches_finite_differences_of_the_numpy_equations(name, kwargs, x64):
    """jax.grad through the masked layer == central differences of the NumPy transcription run
    on each sequence's real steps alone (independent of the code under test)."""
    time, in_features, hidden = 6, 3, 4
    x = np.random.default_rng(8).standard_normal((2, time, in_features))
    mask = np.array([[True] * 4 + [False] * 2, [False] * 3 + [True] * 3])  # post, pre.
    cell = float64_cell(name, kwargs, hidden, "tanh/sigmoid")  # The config's activations.
    layer = Recurrence(cell, True)
    params = random_params(layer, jnp.asarray(x), seed=9)
    weights = np.random.default_rng(10).standard_normal((2, time, hidden))

    def numpy_loss(params):
        total = 0.0
        for row in range(2):
            real = mask[row]
            outputs, carry = reference_outputs(name, kwargs, x[row : row + 1, real], params)
            total += np.sum(np.sin(outputs[0]) * weights[row, real])
            total += sum(np.sum(c**2) for c in jax.tree.leaves(carry))
        return total

    def jax_loss(params):
        carry, outputs = layer.apply({"params": params}, jnp.asarray(x), jnp.asarray(mask))
        return jnp.sum(jnp.sin(outputs) * weights) + sum(
            jnp.sum(c**2) for c in jax.tree.leaves(carry)
        )

    np.testing.assert_allclose(jax_loss(params), numpy_loss(params), rtol=1e-12)
    grads = jax.grad(jax_loss)(params)
    rng, eps = np.random.default_rng(11), 1e-6
    for _ in range(3):
        direction = jax.tree.map(lambda p: rng.standard_normal(p.shape), params)
        plus = jax.tree.map(lambda p, d: p + eps * d, params, direction)
        minus = jax.tree.map(lambda p, d: p - eps * d, params, direction)
        numeric = (numpy_loss(plus) - numpy_loss(minus)) / (2 * eps)
        analytic = sum(
            np.vdot(g, d)
            for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(direction), strict=True)
        )
        assert abs(analytic) > 1e-2  # A meaningful derivative, not 0 == 0.
        assert abs(numeric - analytic) / abs(analytic) < 1e-6, (numeric, analytic)


@pytest.mark.parametrize("gate_bias", [-50.0, 50.0])
def test_mgu_gate_keeps_the_state_when_closed_and_takes_the_candidate_when_open(gate_bias):
    # Zhou et al. 2016: f -> 0 keeps h; f -> 1 replaces it by tanh(x W_h + h U_h + b_h). A cell
    # with the gate's two uses swapped (f * h + (1 - f) * candidate) fails both cases.
    cell = CELLS["mgu"](features=3)
    x, h = jnp.full((2, 4), 0.3), jnp.array([[0.5, -0.5, 0.2], [0.1, 0.9, -0.7]])
    params = random_params(cell, h, x, seed=1)
    params["bias"] = params["bias"].at[:3].set(gate_bias)
    new_h, _ = cell.apply({"params": params}, h, x)
    w_h, u_h, b_h = params["kernel"][:, 3:], params["recurrent_kernel"][:, 3:], params["bias"][3:]
    expected = h if gate_bias < 0 else jnp.tanh(x @ w_h + h @ u_h + b_h)
    np.testing.assert_allclose(new_h, expected, atol=1e-6)


# --------------------------------------------------------------------------- real Keras


# The cells Keras has (a cell of one's own is checked against its NumPy reference above).
@pytest.mark.parametrize(
    "name, kwargs", [v for v in SPEC_VARIANTS if SPECS[v.values[0]].keras_layer]
)
def test_matches_keras(name, kwargs):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras  # slow (~5 s), imported once for the whole parametrized test.

    batch, time, in_features, hidden = 3, 5, 4, 6
    rng = np.random.default_rng(5)
    x = rng.standard_normal((batch, time, in_features)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 1, 1, 1]], bool)

    layer = Recurrence(CELLS[name](features=hidden, **kwargs), return_sequences=True)
    params = random_params(layer, jnp.asarray(x), seed=6)
    weights = [np.asarray(params["cell"][k]) for k in ("kernel", "recurrent_kernel", "bias")]

    keras_layer = getattr(keras.layers, SPECS[name].keras_layer)(
        hidden, return_sequences=True, return_state=True, **kwargs
    )
    keras_layer.build((None, time, in_features))
    assert [w.shape for w in keras_layer.get_weights()] == [w.shape for w in weights]
    keras_layer.set_weights(weights)
    assert keras_layer.count_params() == sum(w.size for w in weights)
    assert keras_layer.count_params() == SPECS[name].param_count(in_features, hidden, **kwargs)

    # Unmasked: every output.
    keras_outputs = np.asarray(keras_layer(x)[0])
    _, outputs = layer.apply({"params": params}, jnp.asarray(x))
    np.testing.assert_allclose(outputs, keras_outputs, rtol=0, atol=1e-5)

    # Masked: Keras repeats the previous output on masked steps (rnn_jax writes zeros), so compare
    # the real steps and the final state, which both define as the state after the last real step.
    keras_outputs, *keras_states = (np.asarray(o) for o in keras_layer(x, mask=mask))
    carry, outputs = layer.apply({"params": params}, jnp.asarray(x), jnp.asarray(mask))
    np.testing.assert_allclose(np.asarray(outputs)[mask], keras_outputs[mask], rtol=0, atol=1e-5)
    # Keras's LSTM states are [h, c]; rnn_jax's LSTM carry is (c, h).
    keras_carry = tuple(keras_states[::-1]) if isinstance(carry, tuple) else keras_states[0]
    assert_trees_close(carry, keras_carry, rtol=0, atol=1e-5)
