"""The cell lab's controls: a memoryless cell (negative) and causal attention (positive).

``control``: a cell without recurrence. A task that it passes beyond its trivial lengths does
not test memory: the lab runs it beside every cell (``python -m experiments.lab --cells
control,...``). It follows the cell
contract (``python -m rnn_jax.testing experiments.lib.lab.control:MemorylessCell``). The lab
resolves the name itself (``cell_spec``) instead of registering it: a registration would add
it to ``rnn_jax.CELLS`` for every program that imports the lab, and those iterate the built-in
cells.

``attention``: two layers of causal softmax attention (``AttentionTagger``), which keep every
past token. A task the lab calls learnable at its budget should be passed by it; an empty
column of the recurrent cells is then a finding about their state, not a broken task.
"""

import flax.linen as nn
import jax.numpy as jnp

from rnn_jax import RecurrentCell

CONTROL = "control"
SPEC = "experiments.lib.lab.control:MemorylessCell"


class MemorylessCell(RecurrentCell):
    """``h_t = act(x_t W + b)``: each step sees only its own input; the carry is ignored.

    Parameters: ``kernel`` <[in, H]> and ``bias`` <[H]>, no recurrent kernel.
    """

    label = "control (no recurrence)"

    def make_recurrent_params(self) -> None:
        """No recurrent parameter: nothing connects one step to the next."""

    def step(self, h, xw):
        """``(h <[batch, H]>, xw <[batch, H]>) -> (act(xw), act(xw))``; ``h`` is not read."""
        del h  # The point of the control: the previous state cannot reach the output.
        h = self.activation(xw)
        return h, h


def cell_spec(name: str) -> str:
    """The name the registry resolves for a lab cell: ``control`` is this module's cell."""
    return SPEC if name == CONTROL else name


# ---------------------------------------------------------------------- the positive control

ATTENTION = "attention"
ATTENTION_LABEL = "attention (2 layers, positive control)"
# The tasks the positive control runs: recall, where a state of fixed size is the question. On
# the others its cost grows with the square of the length (T = 256 steps cost ~16x an LSTM's
# on 2 CPU cores) and answers nothing the lab asks.
ATTENTION_TASKS = ("mqar",)


def sinusoids(length: int, width: int):
    """<float32>[length, width]: the Transformer's fixed positional encodings."""
    position = jnp.arange(length)[:, None]
    rate = jnp.exp(-jnp.log(10_000.0) * jnp.arange(0, width, 2) / width)
    angles = position * rate[None, :]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)[:, :width]


class AttentionTagger(nn.Module):
    """Causal softmax attention, the lab's positive control: a model known to solve recall.

    Two pre-norm Transformer layers (multi-head causal self-attention, then an MLP of 4x the
    width, each added to its input), as zoology's reference attention models for MQAR (Arora et
    al. 2023), over token embeddings (or projected floats) plus sinusoidal positions, then a
    readout at every step. It keeps every past token, so a recall task it cannot pass at the
    lab's budget is a task too hard for the budget, not for a state of fixed size. Same
    interface as ``rnn_jax.models.SequenceTagger``, which the lab trains for every cell.

    Attributes:
      hidden_size: the width of every layer.
      out_features: predictions per step.
      vocab_size: token vocabulary; None reads float features through a Dense.
      num_layers: Transformer layers.
      num_heads: attention heads per layer.
    """

    hidden_size: int
    out_features: int
    vocab_size: int | None = None
    num_layers: int = 2
    num_heads: int = 2

    @nn.compact
    def __call__(self, inputs, mask=None):
        """Predicts at every step from that step and the steps before it.

        Args:
          inputs: <int32>[batch, time] tokens, or <float32>[batch, time, features].
          mask: <bool>[batch, time], True on real steps.

        Returns:
          <float32>[batch, time, out_features].
        """
        if self.vocab_size is None:
            x = nn.Dense(self.hidden_size, name="input_projection")(inputs)
        else:
            x = nn.Embed(self.vocab_size, self.hidden_size, name="embedding")(inputs)
        x = x + sinusoids(x.shape[1], self.hidden_size)[None]
        attend = nn.make_causal_mask(jnp.ones(x.shape[:2], bool)).astype(bool)
        if mask is not None:  # Padding is never attended to.
            attend = attend & mask[:, None, None, :]
        for index in range(self.num_layers):
            h = nn.LayerNorm(name=f"attention_norm_{index}")(x)
            x = x + nn.MultiHeadDotProductAttention(self.num_heads, name=f"attention_{index}")(
                h, h, mask=attend
            )
            h = nn.LayerNorm(name=f"mlp_norm_{index}")(x)
            h = nn.gelu(nn.Dense(4 * self.hidden_size, name=f"mlp_in_{index}")(h))
            x = x + nn.Dense(self.hidden_size, name=f"mlp_out_{index}")(h)
        x = nn.LayerNorm(name="final_norm")(x)
        return nn.Dense(self.out_features, name="head")(x)
