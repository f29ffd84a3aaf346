"""The classic cells, non-linear in h, written as their equations (Keras layout).

The contract (``project_inputs`` / ``step``, Flax's cell interface) and the parameter layout:
``rnn_jax.cells.base``. Keras's gate order in every fused parameter: LSTM i, f, c, o; GRU z, r, h.
Initializers default to Keras's, with the LSTM forget-gate bias 1.

To add a cell: write one class with ``step`` (and ``num_gates``) and register it
(``rnn_jax.cells.registry``). A cell whose gates read x_t only (so that h_t = a_t h_{t-1} + b_t)
is better written as an ``rnn_jax.cells.linear.LinearRecurrentCell``: then the recurrence can
also be evaluated in parallel over time.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from rnn_jax.cells.base import Array, Initializer, RecurrentCell
from rnn_jax.cells.cudnn_lstm import cudnn_lstm


class SimpleRNNCell(RecurrentCell):
    """Elman cell (Keras ``SimpleRNN``): ``h' = tanh(x W + b + h U)``. Carry and output: ``h``."""

    num_gates = 1
    label = "SimpleRNN"

    def step(self, h: Array, xw: Array) -> tuple[Array, Array]:
        h = self.activation(xw + h @ self.recurrent_kernel)
        return h, h


class LSTMCell(RecurrentCell):
    """Keras ``LSTM`` cell. Carry ``(c, h)`` (cell state first, as in Flax); output ``h``.

    Gates (order i, f, c, o in every fused parameter)::

        i = sigmoid(x W_i + h U_i + b_i)      input gate
        f = sigmoid(x W_f + h U_f + b_f)      forget gate
        g = tanh(x W_c + h U_c + b_c)         candidate cell state
        o = sigmoid(x W_o + h U_o + b_o)      output gate
        c' = f * c + i * g
        h' = o * tanh(c')

    Attributes:
      forget_bias: initial value of ``b_f`` (Keras ``unit_forget_bias=True`` means 1.0: the cell
        starts out remembering, Jozefowicz et al. 2015).
    """

    forget_bias: float = 1.0
    num_gates = 4
    label = "LSTM"

    def bias_initializer(self) -> Initializer:
        def init(key, shape, dtype=jnp.float32):
            bias = self.bias_init(key, shape, dtype)
            return bias.at[self.features : 2 * self.features].set(self.forget_bias)

        return init

    def step(self, carry: tuple[Array, Array], xw: Array) -> tuple[tuple[Array, Array], Array]:
        c, h = carry
        i, f, g, o = jnp.split(xw + h @ self.recurrent_kernel, 4, axis=-1)
        gate = self.recurrent_activation
        c = gate(f) * c + gate(i) * self.activation(g)
        h = gate(o) * self.activation(c)
        return (c, h), h

    @nn.nowrap
    def output_of(self, carry: tuple[Array, Array]) -> Array:
        """``h`` of the carry ``(c, h)``."""
        return carry[1]

    @nn.nowrap
    def why_not_fused(self, *, dtype, has_initial_carry: bool) -> str | None:
        """Why a layer of this cell cannot run through cuDNN's fused LSTM; None when it can.

        The evaluation hook ``rnn_jax.layers.evaluation.resolve`` asks (with ``fused_sequence``).

        Args:
          dtype: the dtype the layer computes in; the cell's own ``dtype`` overrides it when
            set; when both are None, ``param_dtype``.
          has_initial_carry: the caller passes its own initial carry (cuDNN starts at zero).
        """
        if type(self) is not LSTMCell:
            name = type(self).__name__
            return f"cell is {name}, a subclass of LSTMCell that may change its equations"
        if self.activation is not jnp.tanh:
            return "activation is not tanh"
        if self.recurrent_activation is not jax.nn.sigmoid:
            return "recurrent_activation is not sigmoid"
        # The cell's own dtype, when set, is what its scan computes in, whatever the layer says.
        candidates = (self.dtype, dtype, self.param_dtype, jnp.float32)
        compute = jnp.dtype(next(d for d in candidates if d is not None))
        if compute != jnp.float32:
            return f"computes in {compute.name}, cuDNN path is float32 only"
        if has_initial_carry:
            return "a custom initial carry is given"
        return None

    def fused_sequence(
        self, inputs: Array, mask: Array | None, *, reverse: bool, return_sequences: bool
    ):
        """The whole sequence through cuDNN (``rnn_jax.cells.cudnn_lstm``): as ``Recurrence``.

        Args:
          inputs: <float32>[batch, time, in].
          mask: <bool>[batch, time], one contiguous run of real steps per row, or None.
          reverse: run each row's real steps last to first.
          return_sequences: every step's output instead of the last real one.
        """
        self.project_inputs(inputs[:1, :1])  # Creates (or binds) the parameters.
        return cudnn_lstm(
            self.variables["params"],
            inputs,
            mask,
            reverse=reverse,
            return_sequences=return_sequences,
        )

    @nn.nowrap
    def initialize_carry(self, rng: Array, input_shape: tuple[int, ...]) -> tuple[Array, Array]:
        """Zero ``(c, h)``, each <[*batch, H]>."""
        h = super().initialize_carry(rng, input_shape)
        return h, h


class GRUCell(RecurrentCell):
    """Keras ``GRU`` cell. Carry and output: ``h``. Gate order z, r, h in every fused parameter.

    With ``reset_after=True`` (Keras 2+/cuDNN default) the reset gate multiplies the recurrent
    projection, and input and recurrent projections each have a bias (``bias`` <[2, 3H]>)::

        z  = sigmoid(x W_z + b_z + h U_z + b'_z)     update gate
        r  = sigmoid(x W_r + b_r + h U_r + b'_r)     reset gate
        h~ = tanh(x W_h + b_h + r * (h U_h + b'_h))  candidate
        h' = z * h + (1 - z) * h~

    With ``reset_after=False`` (the original GRU) the reset gate multiplies ``h`` before its
    matmul, and there is a single bias <[3H]>: ``h~ = tanh(x W_h + b_h + (r * h) U_h)``.
    """

    reset_after: bool = True
    num_gates = 3
    label = "GRU"

    @property
    def bias_shape(self) -> tuple[int, ...]:
        return (2, 3 * self.features) if self.reset_after else (3 * self.features,)

    def input_bias(self, bias: Array) -> Array:
        return bias[0] if self.reset_after else bias

    def step(self, h: Array, xw: Array) -> tuple[Array, Array]:
        x_z, x_r, x_h = jnp.split(xw, 3, axis=-1)
        u = self.recurrent_kernel
        if self.reset_after:
            h_z, h_r, h_h = jnp.split(h @ u + self.bias[1], 3, axis=-1)
            z = self.recurrent_activation(x_z + h_z)
            r = self.recurrent_activation(x_r + h_r)
            candidate = self.activation(x_h + r * h_h)
        else:
            h_z, h_r = jnp.split(h @ u[:, : 2 * self.features], 2, axis=-1)
            z = self.recurrent_activation(x_z + h_z)
            r = self.recurrent_activation(x_r + h_r)
            candidate = self.activation(x_h + (r * h) @ u[:, 2 * self.features :])
        h = z * h + (1.0 - z) * candidate
        return h, h


class MinimalGatedCell(RecurrentCell):
    """f = sigmoid(x W_f + h U_f + b_f); h' = (1 - f) * h + f * tanh(x W_h + (f * h) U_h + b_h)."""

    num_gates = 2
    label = "MGU"

    def step(self, h, xw):
        x_f, x_h = jnp.split(xw, 2, axis=-1)
        u_f, u_h = jnp.split(self.recurrent_kernel, 2, axis=-1)
        f = self.recurrent_activation(x_f + h @ u_f)
        h = (1 - f) * h + f * self.activation(x_h + (f * h) @ u_h)
        return h, h
