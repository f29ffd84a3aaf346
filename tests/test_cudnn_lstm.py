"""The cuDNN LSTM path on CPU: the weight mapping, and cudnn_lstm == Recurrence via lstm_ref."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import rnn

from rnn_jax.cells import GRUCell, LSTMCell
from rnn_jax.cells.cudnn_lstm import cudnn_lstm, cudnn_weights, lstm_ref_with_flat_weights
from rnn_jax.layers import LSTM_BACKENDS, Recurrence, RecurrenceOptions, length_mask, resolve
from tests.helpers import assert_trees_close, random_params

BATCH, TIME, IN_FEATURES, HIDDEN = 4, 6, 3, 5
LENGTHS = jnp.array([TIME, 3, 1, 0])  # A full row, a middle one, length 1, and no real step.
TIGHT = {"rtol": 1e-10, "atol": 1e-10}


def normal(shape, seed, scale=1.0, dtype=jnp.float64):
    return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape), dtype)


def make_mask(kind):
    """<bool>[BATCH, TIME] of LENGTHS, or None; "mixed" alternates post- and pre-padded rows."""
    if kind == "none":
        return None
    if kind in ("post", "pre"):
        return length_mask(LENGTHS, TIME, kind)
    post, pre = length_mask(LENGTHS, TIME, "post"), length_mask(LENGTHS, TIME, "pre")
    return jnp.where((jnp.arange(BATCH) % 2 == 0)[:, None], post, pre)


def make_inputs(mask, seed=1, dtype=jnp.float64):
    """<float>[BATCH, TIME, IN] with large garbage on padded steps (it must not leak in)."""
    x = normal((BATCH, TIME, IN_FEATURES), seed, dtype=dtype)
    if mask is None:
        return x
    return jnp.where(mask[..., None], x, normal(x.shape, seed + 1, 1e3, dtype))


def lstm_params(seed=0):
    """Random Keras-layout LSTMCell params (float64); every bias nonzero."""
    layer = Recurrence(LSTMCell(HIDDEN, param_dtype=jnp.float64))
    return random_params(layer, jnp.zeros((BATCH, TIME, IN_FEATURES), jnp.float64), seed=seed)


def unpacked_weights(params):
    flat = cudnn_weights(params["kernel"], params["recurrent_kernel"], params["bias"])
    return rnn.unpack_lstm_weights(flat, IN_FEATURES, HIDDEN, 1, False)


# --------------------------------------------------------------------------- the mapping


def test_backend_names():
    assert LSTM_BACKENDS == ("auto", "scan", "cudnn")


def test_cudnn_weights_unpack_to_transposed_keras_weights_in_pytorch_gate_order(x64):
    params = lstm_params()["cell"]
    w_ih, w_hh, b_ih, b_hh = unpacked_weights(params)
    flat = cudnn_weights(params["kernel"], params["recurrent_kernel"], params["bias"])
    assert flat.shape == (rnn.get_num_params_in_lstm(IN_FEATURES, HIDDEN, 1, False),)
    # PyTorch's W_ih stacks the gates i, f, g, o on its rows; Keras's kernel on its columns.
    for gate in range(4):
        rows = slice(gate * HIDDEN, (gate + 1) * HIDDEN)
        np.testing.assert_array_equal(w_ih[0][rows], params["kernel"][:, rows].T)
        np.testing.assert_array_equal(w_hh[0][rows], params["recurrent_kernel"][:, rows].T)
    np.testing.assert_array_equal(b_ih[0], params["bias"])
    np.testing.assert_array_equal(b_hh[0], np.zeros(4 * HIDDEN))


@pytest.mark.parametrize("padded", [False, True], ids=["full", "post-padded"])
def test_lstm_ref_with_mapped_weights_is_recurrence(x64, padded):
    """lstm_ref on the mapped weights is the Keras-layout LSTM, outputs and final (h, c)."""
    lengths = jnp.array([TIME, 4, 2, 1]) if padded else jnp.full((BATCH,), TIME)
    mask = length_mask(lengths, TIME, "post")
    x = make_inputs(mask)
    params = lstm_params()
    w_ih, w_hh, b_ih, b_hh = unpacked_weights(params["cell"])
    zero = jnp.zeros((1, BATCH, HIDDEN), jnp.float64)
    seq_lengths = lengths.astype(jnp.int32)
    y, h_n, c_n = rnn.lstm_ref(
        x, zero, zero, w_ih, w_hh, b_ih, b_hh, seq_lengths, IN_FEATURES, HIDDEN, 1, 0.0, False
    )
    layer = Recurrence(LSTMCell(HIDDEN, param_dtype=jnp.float64), return_sequences=True)
    (c, h), outputs = layer.apply({"params": params}, x, mask)
    assert_trees_close((y, h_n[0], c_n[0]), (outputs, h, c), **TIGHT)


# --------------------------------------------------------------------------- cudnn_lstm


VARIANTS = [(reverse, sequences) for reverse in (False, True) for sequences in (True, False)]


def both_paths(params, x, mask, cotangents, reverse, return_sequences):
    """Both paths' ``((final_carry, outputs), vjp)``, the VJP w.r.t. params and inputs."""
    cell = LSTMCell(HIDDEN, param_dtype=jnp.float64)
    layer = Recurrence(cell, return_sequences, reverse=reverse)

    def scan(p, x):
        return layer.apply({"params": p}, x, mask)

    def cudnn(p, x):
        kwargs = {"reverse": reverse, "return_sequences": return_sequences}
        return cudnn_lstm(p["cell"], x, mask, lstm=lstm_ref_with_flat_weights, **kwargs)

    results = []
    for path in (scan, cudnn):
        primal, vjp = jax.vjp(path, params, x)
        results.append((primal, vjp(cotangents)))
    return results


def cotangents(return_sequences):
    carry = (normal((BATCH, HIDDEN), 10), normal((BATCH, HIDDEN), 11))
    return carry, normal((BATCH, TIME, HIDDEN) if return_sequences else (BATCH, HIDDEN), 12)


@jax.jit
def run_variants(params, x, mask):
    """``both_paths`` for every (reverse, return_sequences), as one compiled program."""
    return {v: both_paths(params, x, mask, cotangents(v[1]), *v) for v in VARIANTS}


@functools.cache
def all_variants(mask_kind):
    """``run_variants`` on ``make_mask(mask_kind)``, cached: compiling is most of this file's
    time, one program compiles in half the time of four, and "post", "pre" and "mixed" share
    it (the mask is an argument).
    """
    mask = make_mask(mask_kind)
    x, params = make_inputs(mask), lstm_params()
    # XLA's optimizations take longer than these tiny shapes gain (imagenet's train_test too).
    optimizing = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        return mask, jax.block_until_ready(run_variants(params, x, mask))
    finally:
        jax.config.update("jax_disable_most_optimizations", optimizing)


@pytest.mark.slow  # Every mask, direction and output mode.
@pytest.mark.parametrize("return_sequences", [True, False], ids=["sequences", "last"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("mask_kind", ["none", "post", "pre", "mixed"])
def test_cudnn_lstm_is_recurrence(x64, mask_kind, reverse, return_sequences):
    """Outputs, final carry and gradients (params and inputs) equal the scan path's."""
    mask, results = all_variants(mask_kind)
    (scan, scan_grads), (cudnn, cudnn_grads) = results[reverse, return_sequences]
    assert_trees_close(cudnn, scan, **TIGHT)
    assert_trees_close(cudnn_grads, scan_grads, **TIGHT)
    if mask is not None:
        # The reference itself: nothing happens on padding, and an empty row stays at zero.
        np.testing.assert_array_equal(np.asarray(scan_grads[1])[~np.asarray(mask)], 0.0)
        for leaf in jax.tree.leaves(scan):
            np.testing.assert_array_equal(leaf[LENGTHS == 0], 0.0)


def test_cudnn_lstm_float32_matches_recurrence():
    """The dtype the GPU path really runs in: float32 in, float32 out, close to the scan."""
    mask = make_mask("mixed")
    x = make_inputs(mask, dtype=jnp.float32)
    layer = Recurrence(LSTMCell(HIDDEN), return_sequences=True, reverse=True)
    params = random_params(layer, x, mask)
    kwargs = {"reverse": True, "return_sequences": True, "lstm": lstm_ref_with_flat_weights}

    @jax.jit
    def run(params, x, mask):
        expected = layer.apply({"params": params}, x, mask)
        return cudnn_lstm(params["cell"], x, mask, **kwargs), expected

    actual, expected = run(params, x, mask)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(actual))
    assert_trees_close(actual, expected, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- eligibility


@pytest.mark.parametrize(
    "cell, kwargs, words",
    [
        (GRUCell(HIDDEN), {}, "GRUCell"),
        (nn.LSTMCell(HIDDEN), {}, "flax.linen"),
        (LSTMCell(HIDDEN, activation=jax.nn.relu), {}, "activation is not tanh"),
        (
            LSTMCell(HIDDEN, recurrent_activation=jax.nn.hard_sigmoid),
            {},
            "recurrent_activation is not sigmoid",
        ),
        (LSTMCell(HIDDEN), {"dtype": jnp.bfloat16}, "bfloat16"),
        (LSTMCell(HIDDEN, dtype=jnp.bfloat16), {}, "bfloat16"),
        (LSTMCell(HIDDEN), {"has_initial_carry": True}, "initial carry"),
        (type("MyLSTMCell", (LSTMCell,), {})(HIDDEN), {}, "subclass"),
    ],
    ids=[
        "gru",
        "flax-lstm",
        "relu",
        "hard_sigmoid",
        "bfloat16",
        "cell-bfloat16",
        "initial-carry",
        "subclass",
    ],
)
def test_a_layer_that_cannot_take_the_fused_path_says_why(cell, kwargs, words):
    kwargs = {"dtype": jnp.float32, "has_initial_carry": False, **kwargs}
    plan = resolve(cell, RecurrenceOptions(), backend="gpu", **kwargs)
    assert plan.path != "fused" and words in plan.why and words in plan.describe()
    with pytest.raises(ValueError, match=f"^lstm_backend='cudnn' is not allowed: .*{words}"):
        resolve(cell, RecurrenceOptions(lstm_backend="cudnn"), backend="gpu", **kwargs)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.dtype("float32"), None])
def test_a_default_lstm_takes_the_fused_path_on_a_gpu_only(dtype):
    plan = resolve(LSTMCell(HIDDEN), RecurrenceOptions(), dtype=dtype, backend="gpu")
    assert plan.path == "fused" and "cuDNN" in plan.describe()
    assert resolve(LSTMCell(HIDDEN), RecurrenceOptions(), dtype=dtype, backend="cpu").path == "scan"
    never = RecurrenceOptions(lstm_backend="scan")
    assert resolve(LSTMCell(HIDDEN), never, dtype=dtype, backend="gpu").path == "scan"
    with pytest.raises(ValueError, match="the backend is cpu, not a GPU"):
        resolve(LSTMCell(HIDDEN), RecurrenceOptions(lstm_backend="cudnn"), backend="cpu")


def test_a_layer_computing_in_float64_is_not_fused(monkeypatch):
    # The layer's own dtype decides (float64 inputs, float32 parameters): cuDNN is float32 only.
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    monkeypatch.setattr(rnn, "lstm", lambda *args: pytest.fail("the fused kernel was called"))
    layer = Recurrence(LSTMCell(HIDDEN), True)
    with jax.enable_x64(True):
        x = make_inputs(None, dtype=jnp.float64)
        params = layer.init(jax.random.key(0), x)
        _, outputs = layer.apply(params, x)
    assert outputs.dtype == jnp.float64


@pytest.mark.parametrize("reverse", [False, True])
def test_recurrence_routes_an_eligible_lstm_to_its_fused_kernel(monkeypatch, reverse):
    # On a "GPU" whose cuDNN call is lstm_ref: the layer must take the cell's fused path (the
    # fake kernel is called) and return what the scan returns.
    calls = []

    def fake_cudnn(*args):
        calls.append(args)
        return lstm_ref_with_flat_weights(*args)

    mask = length_mask(LENGTHS, TIME)
    x = make_inputs(mask, dtype=jnp.float32)
    scan = Recurrence(LSTMCell(HIDDEN), True, reverse, RecurrenceOptions(lstm_backend="scan"))
    params = random_params(scan, x, mask)
    expected = scan.apply({"params": params}, x, mask)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    monkeypatch.setattr(rnn, "lstm", fake_cudnn)
    fused = scan.clone(options=RecurrenceOptions(lstm_backend="cudnn"))
    actual = fused.apply({"params": params}, x, mask)
    assert len(calls) == 1
    assert_trees_close(actual, expected, rtol=1e-5, atol=1e-5)
