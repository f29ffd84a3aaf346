"""A sequence model from the same blocks as the classifier: float sequences in, a prediction out."""

import flax.linen as nn
import jax

from rnn_jax.layers import RecurrentStack
from rnn_jax.models.cell_stack import make_cells

Array = jax.Array


class SequenceRegressor(nn.Module):
    """Float sequences -> recurrent stack -> Dense(out_features): e.g. next value of a series.

    Attributes:
      cell: registered cell name.
      hidden_size: hidden size of every layer.
      out_features: size of the prediction.
      num_layers: stacked recurrent layers.
    """

    cell: str
    hidden_size: int
    out_features: int = 1
    num_layers: int = 1

    @nn.compact
    def __call__(self, inputs: Array, mask: Array | None = None) -> Array:
        """Maps <float32>[batch, time, features] to <float32>[batch, out_features]."""
        cells = make_cells(self.cell, self.hidden_size, self.num_layers)
        features = RecurrentStack(cells, name="recurrent")(inputs, mask)
        return nn.Dense(self.out_features, name="head")(features)
