"""The contract every cell here follows, and the initializers and activations configs name.

Every cell follows Flax's cell contract (``flax.linen.RNNCellBase``): ``__call__(carry, x_t) ->
(new_carry, y_t)``, ``initialize_carry(rng, input_shape)`` and ``num_feature_axes``, so it also
runs inside ``flax.linen.RNN``; and ``rnn_jax.layers.Recurrence`` runs Flax's own cells. A
cell here splits its call in two halves:

* ``project_inputs(x)`` -- the input half, ``x @ kernel + bias``. It has no recurrence, so the
  recurrence layer can apply it to all time steps at once (one large matmul) before the scan,
  or inside each step, per backend (``rnn_jax.layers``).
* ``step(carry, projected_x_t)`` -- the recurrent half: ``h @ recurrent_kernel`` and the gate math.

``__call__`` is just ``step(carry, project_inputs(x_t))``, so a cell used on its own (or in a
Python loop) computes exactly what the scanned layer computes.

Parameters follow Keras (the layout the course teaches, and whose ``model.summary()`` counts it
quotes): ``kernel`` <[in, G*H]>, ``recurrent_kernel`` <[H, G*H]> and ``bias``, with the G gates
fused along the last axis. Initializers default to Keras's: glorot_uniform kernels, orthogonal
recurrent kernels, zero biases. The cells themselves: ``rnn_jax.cells`` (the classic, non-linear
ones and the registry) and ``rnn_jax.cells.linear`` (those whose recurrence is linear in h).
"""

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
Initializer = Callable[..., Array]

glorot_uniform = nn.initializers.glorot_uniform
orthogonal = nn.initializers.orthogonal
zeros = nn.initializers.zeros_init


class RecurrentCell(nn.Module):
    """Shared fields, parameters and the Flax cell contract; subclasses write the equations.

    A subclass sets ``num_gates`` and writes the recurrent half,
    ``step(carry, xw_t) -> (new_carry, y_t)`` with ``xw_t`` <float>[batch, G*H] (the output of
    ``project_inputs``) and ``y_t`` <float>[batch, H]. It may override ``bias_shape``,
    ``bias_initializer`` and ``input_bias`` when its bias is not a plain <[G*H]> vector.

    Attributes:
      features: hidden size H.
      activation: the candidate/output nonlinearity (Keras ``activation``), tanh by default.
      recurrent_activation: the gate nonlinearity (Keras ``recurrent_activation``), sigmoid.
      kernel_init: initializer of ``kernel`` <[in, G*H]>.
      recurrent_kernel_init: initializer of ``recurrent_kernel`` <[H, G*H]>.
      bias_init: initializer of ``bias``.
      param_dtype: dtype of the parameters (float64 in the gradient-check tests).
      dtype: dtype the cell computes in, e.g. bfloat16 (mixed precision: parameters stay in
        ``param_dtype`` and are cast where used, so gradients and updates keep their precision);
        None computes in the dtype of the inputs and parameters.
    """

    features: int
    activation: Callable[[Array], Array] = jnp.tanh
    recurrent_activation: Callable[[Array], Array] = jax.nn.sigmoid
    kernel_init: Initializer = glorot_uniform()
    recurrent_kernel_init: Initializer = orthogonal()
    bias_init: Initializer = zeros()
    param_dtype: Any = jnp.float32
    dtype: Any = None

    num_gates = 1  # G: how many H-wide blocks the fused kernels hold.
    label = "cell"  # How tables and figures name the cell.

    @property
    def bias_shape(self) -> tuple[int, ...]:
        return (self.num_gates * self.features,)

    def bias_initializer(self) -> Initializer:
        return self.bias_init

    def input_bias(self, bias: Array) -> Array:
        """The part of ``bias`` added to ``x W`` (all of it, unless a cell splits its bias)."""
        return bias

    @nn.compact
    def project_inputs(self, x: Array) -> Array:
        """The input half of the cell, for any number of leading axes.

        Creates all the cell's parameters (this is the only method that sees ``in_features``).

        Args:
          x: <float>[..., in_features].

        Returns:
          <float>[..., G*H]: ``x W + b``, the gates' input contributions.
        """
        gates = self.num_gates * self.features
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], gates), self.param_dtype)
        self.make_recurrent_params()
        bias = self.param("bias", self.bias_initializer(), self.bias_shape, self.param_dtype)
        return self._in_dtype(x) @ self._in_dtype(kernel) + self._in_dtype(self.input_bias(bias))

    def make_recurrent_params(self) -> None:
        """Creates the parameters ``step`` reads: here ``recurrent_kernel`` <[H, G*H]>."""
        self.param(
            "recurrent_kernel",
            self.recurrent_kernel_init,
            (self.features, self.num_gates * self.features),
            self.param_dtype,
        )

    @property
    def recurrent_kernel(self) -> Array:
        """<float>[H, G*H], created by ``project_inputs`` (in ``dtype`` if that is set)."""
        return self.read_param("recurrent_kernel")

    @property
    def bias(self) -> Array:
        return self.read_param("bias")

    def read_param(self, name: str) -> Array:
        """The parameter ``name`` (created by ``project_inputs``), in ``dtype`` if that is set.

        How ``step`` reads a parameter of its own (``make_recurrent_params`` creates it).
        """
        return self._in_dtype(self.get_variable("params", name))

    def _in_dtype(self, value: Array) -> Array:
        """``value`` cast to ``dtype``; unchanged when that is None (then ops promote as usual)."""
        return value if self.dtype is None else value.astype(self.dtype)

    def __call__(self, carry, x_t: Array):
        """One time step: ``(carry, <float>[batch, in]) -> (new_carry, <float>[batch, H])``."""
        return self.step(carry, self.project_inputs(x_t))

    @nn.nowrap
    def output_of(self, carry):
        """The output ``y_t`` that ``step`` returns with ``carry``: here the carry itself, ``h``."""
        return carry

    @nn.nowrap
    def initialize_carry(self, rng: Array, input_shape: tuple[int, ...]):
        """Zero hidden state <[*batch, H]> for inputs of shape ``(*batch, in_features)``."""
        del rng  # Keras and Flax start from zeros; the argument keeps Flax's signature.
        return jnp.zeros((*input_shape[:-1], self.features), self.dtype or self.param_dtype)

    @property
    def num_feature_axes(self) -> int:
        """Feature axes of ``x_t`` (Flax's ``RNNCellBase`` field, read by ``flax.linen.RNN``)."""
        return 1


def get_initializer(spec: str) -> Initializer:
    """Parses an initializer name as configs spell it.

    Args:
      spec: one of ``INITIALIZERS`` (``"glorot_uniform"``, ``"orthogonal"``, ...) or
        ``"random_normal:STDDEV"`` (Keras ``RandomNormal(stddev=STDDEV)``, e.g. the course's
        ``"random_normal:0.001"``).

    Raises:
      ValueError: unknown name or malformed stddev.
    """
    name, _, arg = spec.partition(":")
    if name == "random_normal" and arg:
        try:
            return nn.initializers.normal(stddev=float(arg))
        except ValueError:
            pass
    elif name in INITIALIZERS and not arg:
        return INITIALIZERS[name]
    raise ValueError(
        f"unknown initializer {spec!r}; allowed: {', '.join(sorted(INITIALIZERS))}, "
        "or random_normal:STDDEV"
    )


INITIALIZERS: dict[str, Initializer] = {
    "glorot_uniform": glorot_uniform(),
    "glorot_normal": nn.initializers.glorot_normal(),
    "lecun_normal": nn.initializers.lecun_normal(),
    "he_normal": nn.initializers.he_normal(),
    "orthogonal": orthogonal(),
    "zeros": zeros(),
}

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "hard_sigmoid": jax.nn.hard_sigmoid,
    "linear": lambda x: x,
}
