"""Cells whose recurrence is linear in the state: ``h_t = a_t * h_{t-1} + b_t``.

Their gates read ``x_t`` only, never ``h_{t-1}``, so every step's coefficients ``(a_t, b_t)``
<[batch, H]> are known before the recurrence runs: one matmul ``x W`` for all steps, then
element-wise math (``coefficients``). The recurrence left over is a first-order linear one, which
``rnn_jax.layers.Recurrence`` evaluates either step by step (``lax.scan``) or with
``jax.lax.associative_scan`` in O(log T) depth (``time_parallel``), because composing two steps is
again such a step: ``(a_1, b_1)`` then ``(a_2, b_2)`` is ``(a_2 a_1, a_2 b_1 + b_2)``. The
non-linearity that these cells lack within a layer lives between stacked layers.

The cells keep the whole ``RecurrentCell`` contract (``project_inputs`` / ``step`` / Flax's
``__call__``), so they also run one step at a time in a Python loop or in ``flax.linen.RNN``.
They have no ``recurrent_kernel``: ``kernel`` <[in, G*H]> and ``bias`` hold the gates' weights.

Initialization: with Keras's zero biases a gate starts at 1/2, and a state that halves at every
step remembers a few tokens. Each cell here therefore starts with its per-unit decay ``a`` (at
zero input) spread over ``decay_range``, as Griffin does for its RG-LRU (De et al. 2024: a in
[0.9, 0.999]); the minGRU and minLSTM papers prescribe no initialization, and the same range is
used for them.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from rnn_jax.cells.base import ACTIVATIONS, Array, Initializer, RecurrentCell

identity = ACTIVATIONS["linear"]


def logit(p: Array) -> Array:
    """The inverse of the sigmoid."""
    return jnp.log(p) - jnp.log1p(-p)


def uniform_decay(key: Array, features: int, decay_range: tuple[float, float], dtype) -> Array:
    """<[features]> decays drawn uniformly in ``decay_range``."""
    low, high = decay_range
    return jax.random.uniform(key, (features,), dtype, low, high)


class LinearRecurrentCell(RecurrentCell):
    """A cell with ``h' = a * h + b``, where ``a, b = coefficients(project_inputs(x))``.

    A subclass writes ``coefficients``; the carry and the output are ``h`` <[batch, H]>.

    Attributes:
      decay_range: the interval the initial per-unit decay ``a`` (at zero input) is drawn from.
    """

    decay_range: tuple[float, float] = (0.9, 0.999)

    def make_recurrent_params(self) -> None:
        """None: the gates read x_t only (a subclass may add per-unit parameters)."""

    def coefficients(self, xw: Array) -> tuple[Array, Array]:
        """``(a, b)`` of ``h' = a * h + b`` from ``x W + b`` <[..., G*H]>, each <[..., H]>."""
        raise NotImplementedError

    def step(self, h: Array, xw: Array) -> tuple[Array, Array]:
        a, b = self.coefficients(xw)
        h = a * h + b
        return h, h


class MinGRUCell(LinearRecurrentCell):
    """minGRU (Feng et al. 2024, "Were RNNs All We Needed?", arXiv:2410.01201, Algorithm 1).

    Gate order z, h in ``kernel`` <[in, 2H]> and ``bias`` <[2H]>::

        z  = sigmoid(x W_z + b_z)     update gate (x only)
        h~ = act(x W_h + b_h)         candidate (the paper's is linear: act = identity)
        h' = (1 - z) * h + z * h~     so a = 1 - z, b = z * h~

    ``activation`` is the paper's identity by default (``--config.activation=linear``); the
    configs choose it on validation. The paper's log-space evaluation (its "g" activation keeps
    h~ positive for a ``log``) is not needed here: ``(a, b)`` are scanned as they are, and
    ``a`` lies in (0, 1).
    """

    activation: Callable[[Array], Array] = identity  # As in the paper.
    num_gates = 2
    label = "minGRU"

    def bias_initializer(self) -> Initializer:
        def init(key, shape, dtype=jnp.float32):
            # a = 1 - sigmoid(b_z) = sigmoid(-b_z) at zero input.
            decay = uniform_decay(key, self.features, self.decay_range, dtype)
            return jnp.zeros(shape, dtype).at[: self.features].set(-logit(decay))

        return init

    def coefficients(self, xw: Array) -> tuple[Array, Array]:
        x_z, x_h = jnp.split(xw, 2, axis=-1)
        z = self.recurrent_activation(x_z)
        candidate = self.activation(x_h)
        return 1.0 - z, z * candidate


class MinLSTMCell(LinearRecurrentCell):
    """minLSTM (Feng et al. 2024, arXiv:2410.01201, Algorithm 3, length-independent scaling).

    Gate order f, i, h in ``kernel`` <[in, 3H]> and ``bias`` <[3H]>::

        f  = sigmoid(x W_f + b_f),  i = sigmoid(x W_i + b_i)
        f' = f / (f + i),           i' = i / (f + i)
        h~ = act(x W_h + b_h)       candidate (the paper's is linear: act = identity)
        h' = f' * h + i' * h~       so a = f', b = i' * h~

    At zero input ``b_f = logit(a0)`` and ``b_i = -logit(a0)`` give ``f' = a0``, the decay
    drawn in ``decay_range``. The gates must be positive (sigmoid) for ``f + i > 0``.
    """

    activation: Callable[[Array], Array] = identity  # As in the paper.
    num_gates = 3
    label = "minLSTM"

    def bias_initializer(self) -> Initializer:
        def init(key, shape, dtype=jnp.float32):
            forget = logit(uniform_decay(key, self.features, self.decay_range, dtype))
            bias = jnp.zeros(shape, dtype).at[: self.features].set(forget)
            return bias.at[self.features : 2 * self.features].set(-forget)

        return init

    def coefficients(self, xw: Array) -> tuple[Array, Array]:
        x_f, x_i, x_h = jnp.split(xw, 3, axis=-1)
        f, i = self.recurrent_activation(x_f), self.recurrent_activation(x_i)
        candidate = self.activation(x_h)
        total = f + i
        return f / total, i / total * candidate


class RGLRUCell(LinearRecurrentCell):
    """Griffin's real-gated linear recurrent unit (De et al. 2024, arXiv:2402.19427, eq. 1-4).

    Gate order r, i, x in ``kernel`` <[in, 3H]> and ``bias`` <[3H]>, and a learned per-unit
    ``decay_logit`` Lambda <[H]>::

        r = sigmoid(x W_a + b_a)              recurrence gate
        i = sigmoid(x W_x + b_x)              input gate
        a = sigmoid(Lambda) ** (c * r)        c = 8
        h' = a * h + sqrt(1 - a**2) * (i * (x W_in + b_in))

    In Griffin the unit reads the output of a linear layer; here that layer is the cell's third
    kernel block (with its bias), so the input size may differ from H. ``log a = -c r
    softplus(-Lambda)`` and ``1 - a**2 = -expm1(2 log a)`` are computed in log space, so neither
    rounds to 0 or 1 for a near 1. ``sigmoid(Lambda)`` starts on a ring in ``decay_range`` as in
    recurrentgemma (``sigmoid(Lambda)**2`` uniform in [0.9**2, 0.999**2]). ``activation`` is not
    used: the unit has no candidate non-linearity.
    """

    c: float = 8.0
    num_gates = 3
    label = "RG-LRU"

    def make_recurrent_params(self) -> None:
        def init(key, shape, dtype=jnp.float32):
            low, high = self.decay_range
            squared = jax.random.uniform(key, shape, dtype, low**2, high**2)
            return logit(jnp.sqrt(squared))

        self.param("decay_logit", init, (self.features,), self.param_dtype)

    def coefficients(self, xw: Array) -> tuple[Array, Array]:
        x_r, x_i, x_in = jnp.split(xw, 3, axis=-1)
        r, i = self.recurrent_activation(x_r), self.recurrent_activation(x_i)
        decay_logit = self.read_param("decay_logit")
        log_a = -self.c * r * jax.nn.softplus(-decay_logit)
        return jnp.exp(log_a), jnp.sqrt(-jnp.expm1(2.0 * log_a)) * (i * x_in)
