"""Cells: the registry contract, shapes, initial values, parameter counts and numerical parity.

Parity is checked twice: against NumPy transcriptions of the Keras equations (float64, written
here without calling rnn_jax) and against Keras itself (float32).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax.cells import CELLS, LSTMCell, get_cell_class, is_linear
from rnn_jax.cells.base import INITIALIZERS, RecurrentCell, get_initializer
from rnn_jax.layers.recurrence import Recurrence
from tests.helpers import (
    VARIANTS,
    assert_trees_close,
    random_params,
)


def variant_id(name, kwargs):
    return "gru-reset_before" if kwargs.get("reset_after") is False else name


# --------------------------------------------------------------------------- registry contract


@pytest.mark.parametrize("name, kwargs", VARIANTS)
def test_registry_contract(name, kwargs):
    cls = CELLS[name]
    assert get_cell_class(name) is cls
    assert issubclass(cls, RecurrentCell)
    for method in ("project_inputs", "step", "initialize_carry"):
        assert callable(getattr(cls, method, None)), f"{name} lacks {method}"

    cell = cls(features=5, **kwargs)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 4)), jnp.float32)
    params = random_params(cell, cell.initialize_carry(None, x.shape), x)
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


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("batch, in_features, hidden", [(1, 4, 5), (2, 3, 6), (3, 1, 2)])
@pytest.mark.parametrize("name, kwargs", VARIANTS)
def test_cell_shapes(name, kwargs, batch, in_features, hidden):
    cell = CELLS[name](features=hidden, **kwargs)
    x = jnp.zeros((batch, in_features))
    carry = cell.initialize_carry(jax.random.key(0), x.shape)
    for leaf in jax.tree.leaves(carry):
        assert leaf.shape == (batch, hidden)
        assert leaf.dtype == jnp.float32
    (new_carry, y), _ = jax.eval_shape(lambda: cell.init_with_output(jax.random.key(0), carry, x))
    assert jax.tree.structure(new_carry) == jax.tree.structure(carry)
    for leaf in jax.tree.leaves(new_carry):
        assert (leaf.shape, leaf.dtype) == ((batch, hidden), jnp.float32)
    assert (y.shape, y.dtype) == ((batch, hidden), jnp.float32)
    # Extra leading axes in input_shape become extra carry axes.
    for leaf in jax.tree.leaves(cell.initialize_carry(None, (batch, 3, in_features))):
        assert leaf.shape == (batch, 3, hidden)


# --------------------------------------------------------------------------- initial values


@pytest.mark.parametrize("name, kwargs", VARIANTS)
def test_initial_values_follow_keras_and_the_seed(name, kwargs):
    in_features, hidden = 6, 8
    cell = CELLS[name](features=hidden, **kwargs)
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
    if name in INITIAL_DECAY:
        decays = [INITIAL_DECAY[name](p, hidden)[0] for p in (params, other)]
        assert not np.allclose(*decays), "the initial decay did not change with the seed"

    kernel = np.asarray(params["kernel"])
    assert kernel.shape == (in_features, gates)
    bound = np.sqrt(6.0 / (in_features + gates))  # glorot_uniform limit.
    assert np.abs(kernel).max() <= bound
    assert np.abs(kernel).max() > 0.5 * bound  # really spread over the range, not tiny.

    if name in INITIAL_DECAY:  # Linear in h: the decay starts in Griffin's [0.9, 0.999].
        decay, zero_biases = INITIAL_DECAY[name](params, hidden)
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


def _min_lstm_decay(params, u):
    """minLSTM's f' = f / (f + i) at zero input; the candidate's bias is 0."""
    b = np.asarray(params["bias"], np.float64)
    f, i = sigmoid(b[:u]), sigmoid(b[u : 2 * u])
    return f / (f + i), b[2 * u :]


# The cells linear in h: (per-unit decay of the state at zero input, the biases that start at 0),
# from each paper's equations. minGRU: h' = (1 - z) h + z h~; RG-LRU: recurrentgemma starts
# sigmoid(Lambda), the decay at r = 1/c, on a ring in [0.9, 0.999].
INITIAL_DECAY = {
    "mingru": lambda p, u: (1 - sigmoid(np.asarray(p["bias"][:u], np.float64)), p["bias"][u:]),
    "minlstm": _min_lstm_decay,
    "rglru": lambda p, u: (sigmoid(np.asarray(p["decay_logit"], np.float64)), p["bias"]),
}


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

# A new cell's table entries all live in this file: its parameter-count formula and two literal
# counts below, and its NumPy transcription in NUMPY_REFERENCES.
# Parameter counts of one recurrent layer (d inputs, u units): Keras's model.summary() for the
# cells Keras has; for a cell of ones own, the count its equations give.
KERAS_PARAM_FORMULAS = {
    "rnn": lambda d, u: u * (d + u) + u,
    "lstm": lambda d, u: 4 * (u * (d + u) + u),
    "gru": lambda d, u: 3 * (u * (d + u) + 2 * u),
    "gru-reset_before": lambda d, u: 3 * (u * (d + u) + u),
    "mgu": lambda d, u: 2 * (u * (d + u) + u),
    # Linear in h: no recurrent kernel. The RG-LRU also learns Lambda, one per unit.
    "mingru": lambda d, u: 2 * (d * u + u),
    "minlstm": lambda d, u: 3 * (d * u + u),
    "rglru": lambda d, u: 3 * (d * u + u) + u,
}

# The same numbers as Keras's model.summary() prints them, for d=100, u=256 and d=8, u=16.
KERAS_PARAM_LITERALS = {
    "rnn": (91_392, 400),
    "lstm": (365_568, 1_600),
    "gru": (274_944, 1_248),
    "gru-reset_before": (274_176, 1_200),
    "mgu": (182_784, 800),  # No Keras layer: what the formula gives.
    "mingru": (51_712, 288),
    "minlstm": (77_568, 432),
    "rglru": (77_824, 448),
}


def cell_param_count(cell, in_features):
    x = jax.ShapeDtypeStruct((1, 1, in_features), jnp.float32)
    shapes = jax.eval_shape(lambda x: Recurrence(cell).init(jax.random.key(0), x), x)
    return sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes))


@pytest.mark.parametrize("name, kwargs", VARIANTS)
def test_param_count_equals_keras(name, kwargs):
    key = variant_id(name, kwargs)
    assert key in KERAS_PARAM_FORMULAS, f"add the Keras parameter formula of {key!r}"
    for (d, u), literal in zip([(100, 256), (8, 16)], KERAS_PARAM_LITERALS[key], strict=True):
        count = cell_param_count(CELLS[name](features=u, **kwargs), d)
        assert count == KERAS_PARAM_FORMULAS[key](d, u)
        assert count == literal


# --------------------------------------------------------------------------- NumPy reference


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def hard_sigmoid(x):
    """Keras 3 / JAX: relu6(x + 3) / 6."""
    return np.clip((x + 3.0) / 6.0, 0.0, 1.0)


def relu(x):
    return np.maximum(x, 0.0)


# The references take the candidate activation ``act`` (Keras ``activation``) and the gate
# activation ``gate`` (Keras ``recurrent_activation``) as arguments.


def np_simple_rnn(x, kernel, recurrent_kernel, bias, act=np.tanh, gate=sigmoid):
    """Keras SimpleRNN: h' = act(x W + b + h U)."""
    h = np.zeros((x.shape[0], recurrent_kernel.shape[0]))
    outputs = []
    for t in range(x.shape[1]):
        h = act(x[:, t] @ kernel + bias + h @ recurrent_kernel)
        outputs.append(h)
    return np.stack(outputs, axis=1), h


def np_lstm(x, kernel, recurrent_kernel, bias, act=np.tanh, gate=sigmoid):
    """Keras LSTM, gate order i, f, c, o; carry (c, h) as rnn_jax orders it."""
    units = recurrent_kernel.shape[0]
    w_i, w_f, w_c, w_o = (kernel[:, k * units : (k + 1) * units] for k in range(4))
    u_i, u_f, u_c, u_o = (recurrent_kernel[:, k * units : (k + 1) * units] for k in range(4))
    b_i, b_f, b_c, b_o = (bias[k * units : (k + 1) * units] for k in range(4))
    h = np.zeros((x.shape[0], units))
    c = np.zeros_like(h)
    outputs = []
    for t in range(x.shape[1]):
        x_t = x[:, t]
        i = gate(x_t @ w_i + h @ u_i + b_i)
        f = gate(x_t @ w_f + h @ u_f + b_f)
        c = f * c + i * act(x_t @ w_c + h @ u_c + b_c)
        o = gate(x_t @ w_o + h @ u_o + b_o)
        h = o * act(c)
        outputs.append(h)
    return np.stack(outputs, axis=1), (c, h)


def np_gru(x, kernel, recurrent_kernel, bias, act=np.tanh, gate=sigmoid, *, reset_after):
    """Keras GRU, gate order z, r, h; h' = z * h + (1 - z) * hh."""
    units = recurrent_kernel.shape[0]
    w_z, w_r, w_h = (kernel[:, k * units : (k + 1) * units] for k in range(3))
    u_z, u_r, u_h = (recurrent_kernel[:, k * units : (k + 1) * units] for k in range(3))
    if reset_after:  # bias [2, 3u]: row 0 input bias, row 1 recurrent bias.
        b_z, b_r, b_h = (bias[0, k * units : (k + 1) * units] for k in range(3))
        c_z, c_r, c_h = (bias[1, k * units : (k + 1) * units] for k in range(3))
    else:
        b_z, b_r, b_h = (bias[k * units : (k + 1) * units] for k in range(3))
    h = np.zeros((x.shape[0], units))
    outputs = []
    for t in range(x.shape[1]):
        x_t = x[:, t]
        if reset_after:
            z = gate(x_t @ w_z + b_z + h @ u_z + c_z)
            r = gate(x_t @ w_r + b_r + h @ u_r + c_r)
            hh = act(x_t @ w_h + b_h + r * (h @ u_h + c_h))
        else:
            z = gate(x_t @ w_z + b_z + h @ u_z)
            r = gate(x_t @ w_r + b_r + h @ u_r)
            hh = act(x_t @ w_h + b_h + (r * h) @ u_h)
        h = z * h + (1.0 - z) * hh
        outputs.append(h)
    return np.stack(outputs, axis=1), h


def np_mgu(x, kernel, recurrent_kernel, bias, act=np.tanh, gate=sigmoid):
    """Minimal gated unit, transcribed from Zhou et al. 2016 (arXiv:1603.09420), gate
    order f, h: f = sigmoid(W_f [h, x] + b_f), hh = tanh(W_h [f * h, x] + b_h),
    h' = (1 - f) * h + f * hh."""
    units = recurrent_kernel.shape[0]
    w_f, w_h = kernel[:, :units], kernel[:, units:]
    u_f, u_h = recurrent_kernel[:, :units], recurrent_kernel[:, units:]
    b_f, b_h = bias[:units], bias[units:]
    h = np.zeros((x.shape[0], units))
    outputs = []
    for t in range(x.shape[1]):
        f = gate(x[:, t] @ w_f + h @ u_f + b_f)
        hh = act(x[:, t] @ w_h + (f * h) @ u_h + b_h)
        h = (1.0 - f) * h + f * hh
        outputs.append(h)
    return np.stack(outputs, axis=1), h


def np_min_gru(x, kernel, bias, act=None, gate=sigmoid):
    """minGRU, transcribed from Feng et al. 2024 (arXiv:2410.01201), gate order z, h:
    z = sigmoid(Linear_z(x)), hh = Linear_h(x) (here act(Linear_h(x)); the paper's act is the
    identity), h' = (1 - z) * h + z * hh."""
    act = act or (lambda v: v)
    units = kernel.shape[1] // 2
    h = np.zeros((x.shape[0], units))
    outputs = []
    for t in range(x.shape[1]):
        z = gate(x[:, t] @ kernel[:, :units] + bias[:units])
        hh = act(x[:, t] @ kernel[:, units:] + bias[units:])
        h = (1.0 - z) * h + z * hh
        outputs.append(h)
    return np.stack(outputs, axis=1), h


def np_min_lstm(x, kernel, bias, act=None, gate=sigmoid):
    """minLSTM, transcribed from Feng et al. 2024, gate order f, i, h: f, i = sigmoid(Linear(x)),
    f' = f / (f + i), i' = i / (f + i), hh = Linear_h(x) (act: as np_min_gru),
    h' = f' * h + i' * hh."""
    act = act or (lambda v: v)
    units = kernel.shape[1] // 3
    w_f, w_i, w_h = (kernel[:, k * units : (k + 1) * units] for k in range(3))
    b_f, b_i, b_h = (bias[k * units : (k + 1) * units] for k in range(3))
    h = np.zeros((x.shape[0], units))
    outputs = []
    for t in range(x.shape[1]):
        f, i = gate(x[:, t] @ w_f + b_f), gate(x[:, t] @ w_i + b_i)
        h = f / (f + i) * h + i / (f + i) * act(x[:, t] @ w_h + b_h)
        outputs.append(h)
    return np.stack(outputs, axis=1), h


def np_rg_lru(x, kernel, bias, decay_logit, act=None, gate=sigmoid, c=8.0):
    """Griffin's RG-LRU, transcribed from De et al. 2024 (arXiv:2402.19427, eq. 1-4), gate order
    r, i, input: r = sigmoid(W_a x + b_a), i = sigmoid(W_x x + b_x), a = sigmoid(Lambda)^(c r),
    h' = a * h + sqrt(1 - a^2) * (i * x_in), x_in = W_in x + b_in (the linear layer Griffin puts
    before the unit). No candidate activation: ``act`` is unused."""
    del act
    units = kernel.shape[1] // 3
    w_a, w_x, w_in = (kernel[:, k * units : (k + 1) * units] for k in range(3))
    b_a, b_x, b_in = (bias[k * units : (k + 1) * units] for k in range(3))
    h = np.zeros((x.shape[0], units))
    outputs = []
    for t in range(x.shape[1]):
        r, i = gate(x[:, t] @ w_a + b_a), gate(x[:, t] @ w_x + b_x)
        a = sigmoid(decay_logit) ** (c * r)
        h = a * h + np.sqrt(1.0 - a**2) * (i * (x[:, t] @ w_in + b_in))
        outputs.append(h)
    return np.stack(outputs, axis=1), h


NUMPY_REFERENCES = {
    "rnn": np_simple_rnn,
    "lstm": np_lstm,
    "gru": lambda *a, **k: np_gru(*a, **k, reset_after=True),
    "gru-reset_before": lambda *a, **k: np_gru(*a, **k, reset_after=False),
    "mgu": np_mgu,
    "mingru": np_min_gru,
    "minlstm": np_min_lstm,
    "rglru": np_rg_lru,
}

# (name, the cell's function, the NumPy transcription): each cell must use what it is given.
ACTIVATION_CASES = {
    "tanh/sigmoid": (jnp.tanh, jax.nn.sigmoid, np.tanh, sigmoid),
    "relu/hard_sigmoid": (jax.nn.relu, jax.nn.hard_sigmoid, relu, hard_sigmoid),
    "relu/sigmoid": (jax.nn.relu, jax.nn.sigmoid, relu, sigmoid),  # config.activation='relu'.
}


def reference_outputs(name, kwargs, x, params, activations="tanh/sigmoid"):
    key = variant_id(name, kwargs)
    assert key in NUMPY_REFERENCES, f"add a NumPy reference implementation of {key!r}"
    _, _, act, gate = ACTIVATION_CASES[activations]
    # By name: kernel, recurrent_kernel (absent in a cell linear in h), bias, decay_logit, ...
    cell_params = {k: np.asarray(v) for k, v in params["cell"].items()}
    return NUMPY_REFERENCES[key](x, **cell_params, act=act, gate=gate)


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
@pytest.mark.parametrize("name, kwargs", VARIANTS)
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


@pytest.mark.parametrize("name, kwargs", VARIANTS)
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
KERAS_LAYERS = {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}


@pytest.mark.parametrize("name, kwargs", [v for v in VARIANTS if v.values[0] in KERAS_LAYERS])
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

    keras_layer = getattr(keras.layers, KERAS_LAYERS[name])(
        hidden, return_sequences=True, return_state=True, **kwargs
    )
    keras_layer.build((None, time, in_features))
    assert [w.shape for w in keras_layer.get_weights()] == [w.shape for w in weights]
    keras_layer.set_weights(weights)
    assert keras_layer.count_params() == sum(w.size for w in weights)

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
