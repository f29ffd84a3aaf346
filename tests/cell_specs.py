"""What only a reference can tell about each built-in cell: one ``CellSpec`` per name in ``CELLS``.

``rnn_jax.testing.check_cell`` proves what every cell must do (the contract, the layer equal to
a Python loop of its own steps, gradients, padding, ...), for any cell, built in or not. It
cannot tell whether a cell computes the right equations: that needs a reference written apart
from the code under test. A built-in cell's spec is that reference, in one place:

- ``reference``: its equations transcribed from the paper or Keras's docs, in NumPy float64,
  written here without calling rnn_jax (``tests/test_cells.py`` compares values and
  finite-difference gradients with it; ``tests/test_models.py`` a whole classifier);
- ``param_count``: Keras's parameter count of one layer, ``d`` inputs and ``u`` units (for a
  cell Keras lacks, what its equations give); every total the tests print is derived from it;
- ``keras_layer``: the Keras layer it must match number for number, if Keras has one;
- ``initial_decay``: for a cell linear in h, the per-unit decay of its state at zero input
  (and the biases that start at 0), read off its initial parameters by its paper's equations;
- ``variants``: its other conventions (constructor keyword arguments) that every per-cell test
  also runs, e.g. the GRU's ``reset_after=False``.

``reference`` and ``param_count`` take the cell's constructor keyword arguments too (e.g.
``reset_after``). A built-in cell without a spec here fails
``tests/test_cells.py::test_every_built_in_cell_has_a_spec``, naming it.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.cells import CELLS

SPEC_FILE = "tests/cell_specs.py"


@dataclasses.dataclass(frozen=True)
class CellSpec:
    """What the tests know about one built-in cell from outside rnn_jax (module docstring)."""

    # reference(x <[B, T, in]>, **cell_params, act=, gate=, **cell_kwargs) -> (outputs, carry).
    reference: Callable[..., tuple]
    # param_count(d, u, **cell_kwargs): the parameters of one layer, d inputs, u units.
    param_count: Callable[..., int]
    keras_layer: str | None = None  # The keras.layers class of the same equations.
    # initial_decay(params, u) -> (decay <[u]>, the biases that start at 0): linear in h only.
    initial_decay: Callable[[dict, int], tuple] | None = None
    variants: tuple[tuple[str, dict], ...] = ()  # (id suffix, constructor kwargs).
    # The cell's parameters drawn at random at init (the rest start at constants).
    random_params: tuple[str, ...] = ("kernel", "recurrent_kernel")


def built_in_cells() -> list[str]:
    """The registered names whose class is the package's own (not one a test registered)."""
    return sorted(n for n, cls in CELLS.items() if cls.__module__.split(".")[0] == "rnn_jax")


# --------------------------------------------------------------------------- NumPy references


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


def _np_gru(*args, reset_after=True, **kwargs):
    """np_gru with the cell's default convention (Keras 2+: reset after the matmul)."""
    return np_gru(*args, **kwargs, reset_after=reset_after)


# --------------------------------------------------------------------------- initial decays


def _min_gru_decay(params, u):
    """minGRU's a = 1 - z at zero input; the candidate's bias is 0."""
    return 1 - sigmoid(np.asarray(params["bias"][:u], np.float64)), params["bias"][u:]


def _min_lstm_decay(params, u):
    """minLSTM's f' = f / (f + i) at zero input; the candidate's bias is 0."""
    b = np.asarray(params["bias"], np.float64)
    f, i = sigmoid(b[:u]), sigmoid(b[u : 2 * u])
    return f / (f + i), b[2 * u :]


def _rg_lru_decay(params, u):
    """RG-LRU: recurrentgemma starts sigmoid(Lambda), the decay at r = 1/c; every bias is 0."""
    del u
    return sigmoid(np.asarray(params["decay_logit"], np.float64)), params["bias"]


# --------------------------------------------------------------------------- the specs


def _gru_count(d, u, reset_after=True):
    """Keras GRU: reset_after keeps a second (recurrent) bias per gate."""
    return 3 * (u * (d + u) + 2 * u) if reset_after else 3 * (u * (d + u) + u)


SPECS: dict[str, CellSpec] = {
    "rnn": CellSpec(np_simple_rnn, lambda d, u: u * (d + u) + u, keras_layer="SimpleRNN"),
    "lstm": CellSpec(np_lstm, lambda d, u: 4 * (u * (d + u) + u), keras_layer="LSTM"),
    "gru": CellSpec(
        _np_gru, _gru_count, keras_layer="GRU", variants=(("reset_before", {"reset_after": False}),)
    ),
    "mgu": CellSpec(np_mgu, lambda d, u: 2 * (u * (d + u) + u)),  # No Keras layer.
    # Linear in h: no recurrent kernel. The RG-LRU also learns Lambda, one per unit.
    # Their gate biases hold the initial decays, drawn per unit.
    "mingru": CellSpec(
        np_min_gru,
        lambda d, u: 2 * (d * u + u),
        initial_decay=_min_gru_decay,
        random_params=("kernel", "bias"),
    ),
    "minlstm": CellSpec(
        np_min_lstm,
        lambda d, u: 3 * (d * u + u),
        initial_decay=_min_lstm_decay,
        random_params=("kernel", "bias"),
    ),
    "rglru": CellSpec(
        np_rg_lru,
        lambda d, u: 3 * (d * u + u) + u,
        initial_decay=_rg_lru_decay,
        random_params=("kernel", "decay_logit"),
    ),
}


# (name, the cell's function, the NumPy transcription): each cell must use what it is given.
ACTIVATION_CASES = {
    "tanh/sigmoid": (jnp.tanh, jax.nn.sigmoid, np.tanh, sigmoid),
    "relu/hard_sigmoid": (jax.nn.relu, jax.nn.hard_sigmoid, relu, hard_sigmoid),
    "relu/sigmoid": (jax.nn.relu, jax.nn.sigmoid, relu, sigmoid),  # config.activation='relu'.
}


def reference_outputs(name, kwargs, x, params, activations="tanh/sigmoid"):
    """``SPECS[name].reference`` on a ``Recurrence``'s parameters ``params`` (``{"cell": ...}``)."""
    _, _, act, gate = ACTIVATION_CASES[activations]
    # By name: kernel, recurrent_kernel (absent in a cell linear in h), bias, decay_logit, ...
    cell_params = {k: np.asarray(v) for k, v in params["cell"].items()}
    return SPECS[name].reference(x, **cell_params, act=act, gate=gate, **kwargs)
