"""The byte-level language model: an embedding, a recurrent stack of any cell, a softmax.

The model reads a stream of reviews (``rnn_jax.data.streams``) one chunk at a time: it takes
each layer's carry from the previous chunk and returns the carries after this one. Every
``boundary_id`` token restarts every layer from its cell's initial carry (the layer's reset,
``rnn_jax.layers.Recurrence``), so each review is modelled from the same state whatever came
before it in the stream.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rnn_jax.layers import RecurrenceOptions, RecurrentStack
from rnn_jax.models.cell_stack import make_cells

Array = jax.Array


class LanguageModel(nn.Module):
    """Tokens -> Embed -> ``num_layers`` x ``cell`` -> Dense(vocab_size) logits at every step.

    Attributes:
      vocab_size: token ids (256 bytes and the boundary: ``rnn_jax.data.text.VOCAB_SIZE``).
      boundary_id: the token every document starts with; each layer restarts there.
      cell: a registered cell name or ``package.module:ClassName``.
      embed_dim: embedding size.
      hidden_size: hidden size of every layer.
      num_layers: stacked recurrent layers.
      dropout_rate: dropout between layers and before the softmax (not on the state).
      embed_dropout_rate: dropout on the embedded tokens.
      residual: layers after the first are pre-norm residual (``RecurrentStack``).
      kernel_init, recurrent_init, activation: cell options by name, None for the cell's own
        default (``make_cells``).
      cell_kwargs: the cell's constructor arguments as a JSON object ('' for none).
      recurrence: how the layers are evaluated (``RecurrenceOptions``; every path can reset).
      param_dtype: parameter dtype.
      dtype: dtype the embedding and cells compute in (the logits are ``param_dtype``).
    """

    vocab_size: int
    boundary_id: int
    cell: str
    embed_dim: int
    hidden_size: int
    num_layers: int = 1
    dropout_rate: float = 0.0
    embed_dropout_rate: float = 0.0
    residual: bool = False
    kernel_init: str | None = None
    recurrent_init: str | None = None
    activation: str | None = None
    cell_kwargs: str = ""
    recurrence: RecurrenceOptions = RecurrenceOptions()
    param_dtype: Any = jnp.float32
    dtype: Any = None

    @nn.nowrap
    def cells(self) -> list:
        """One unbound cell per layer, as the attributes name them."""
        return make_cells(
            self.cell,
            self.hidden_size,
            self.num_layers,
            kernel_init=self.kernel_init,
            recurrent_init=self.recurrent_init,
            activation=self.activation,
            param_dtype=self.param_dtype,
            dtype=self.dtype,
            cell_kwargs=self.cell_kwargs,
        )

    @nn.nowrap
    def initial_carries(self, batch: int) -> tuple:
        """Each layer's initial carry for ``batch`` streams (what a review starts from)."""
        widths = [self.embed_dim] + [self.hidden_size] * (self.num_layers - 1)
        return tuple(
            cell.initialize_carry(jax.random.key(0), (batch, width))
            for cell, width in zip(self.cells(), widths, strict=True)
        )

    @nn.compact
    def __call__(
        self, tokens: Array, carries: tuple | None = None, *, train: bool = False
    ) -> tuple[Array, tuple]:
        """Logits for the token after each position, and the carries after the last.

        Args:
          tokens: <int32>[batch, time] token ids.
          carries: each layer's carry before the first position (``initial_carries`` or the
            previous chunk's); None: the initial carries.
          train: enables dropout (needs a ``'dropout'`` rng).

        Returns:
          ``(logits <float32>[batch, time, vocab_size], carries)``.
        """
        reset = tokens == self.boundary_id
        x = nn.Embed(
            self.vocab_size, self.embed_dim, param_dtype=self.param_dtype, name="embedding"
        )(tokens)
        x = x.astype(self.dtype or self.param_dtype)
        x = nn.Dropout(self.embed_dropout_rate, deterministic=not train)(x)
        carries, x = RecurrentStack(
            self.cells(),
            dropout_rate=self.dropout_rate,
            return_sequences=True,
            residual=self.residual,
            options=self.recurrence,
            return_carries=True,
            name="recurrent",
        )(x, None, train=train, initial_carries=carries, reset=reset)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x.astype(self.param_dtype))
        logits = nn.Dense(self.vocab_size, param_dtype=self.param_dtype, name="head")(x)
        return logits, carries
