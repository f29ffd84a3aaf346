"""Sequence models from the same blocks as the classifier: a regressor and a per-step tagger."""

import flax.linen as nn
import jax

from rnn_jax.layers import RecurrenceOptions, RecurrentStack
from rnn_jax.models.cell_stack import make_cells

Array = jax.Array


class SequenceRegressor(nn.Module):
    """Float sequences -> recurrent stack -> Dense(out_features): e.g. next value of a series.

    Attributes:
      cell: registered cell name.
      hidden_size: hidden size of every layer.
      out_features: size of the prediction.
      num_layers: stacked recurrent layers.
      activation: the cells' activation, by name.
    """

    cell: str
    hidden_size: int
    out_features: int = 1
    num_layers: int = 1
    activation: str = "tanh"  # The time-series study's candidate, for every cell alike.

    @nn.compact
    def __call__(self, inputs: Array, mask: Array | None = None) -> Array:
        """Maps <float32>[batch, time, features] to <float32>[batch, out_features]."""
        cells = make_cells(self.cell, self.hidden_size, self.num_layers, activation=self.activation)
        features = RecurrentStack(cells, name="recurrent")(inputs, mask)
        return nn.Dense(self.out_features, name="head")(features)


class SequenceTagger(nn.Module):
    """Tokens or float sequences -> recurrent stack -> Dense(out_features) at every step.

    The input is embedded (tokens) or projected (floats) to ``hidden_size``, runs through
    ``num_layers`` recurrent layers of ``cell``, and every step gets a prediction; the caller
    scores the steps it wants (the cell lab, ``experiments.lab``).

    Attributes:
      cell: a registered cell name or ``package.module:ClassName``.
      hidden_size: hidden size of every layer (and of the embedding or input projection).
      out_features: predictions per step (classes, or 1 for a regression).
      num_layers: stacked recurrent layers.
      vocab_size: token vocabulary of an embedding; None reads float features through a Dense.
      residual: pre-norm residual connections between layers (``RecurrentStack.residual``).
      options: how every layer's recurrence is evaluated.
      cell_kwargs: the cell's constructor arguments as a JSON object ('' for none).
    """

    cell: str
    hidden_size: int
    out_features: int
    num_layers: int = 1
    vocab_size: int | None = None
    residual: bool = False
    options: RecurrenceOptions = RecurrenceOptions()
    cell_kwargs: str = ""

    @nn.compact
    def __call__(self, inputs: Array, mask: Array | None = None) -> Array:
        """Predicts at every step.

        Args:
          inputs: <int32>[batch, time] tokens if ``vocab_size`` is set, else
            <float32>[batch, time, features].
          mask: <bool>[batch, time], True on real steps (padding leaves the state unchanged).

        Returns:
          <float32>[batch, time, out_features] (zeros through the stack on padded steps).
        """
        if self.vocab_size is None:
            x = nn.Dense(self.hidden_size, name="input_projection")(inputs)
        else:
            x = nn.Embed(self.vocab_size, self.hidden_size, name="embedding")(inputs)
        cells = make_cells(
            self.cell, self.hidden_size, self.num_layers, cell_kwargs=self.cell_kwargs
        )
        x = RecurrentStack(
            cells,
            return_sequences=True,
            residual=self.residual,
            options=self.options,
            name="recurrent",
        )(x, mask)
        return nn.Dense(self.out_features, name="head")(x)
