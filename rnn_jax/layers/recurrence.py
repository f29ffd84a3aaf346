"""The layer that unrolls any registered cell over time with ``jax.lax.scan`` (via ``nn.scan``).

Where the input projection runs, per backend: a cell computes ``x_t W + h_{t-1} U``, and only the
second term depends on the previous step. ``x W`` for all T steps can be one
<[time*batch, in]> x <[in, G*H]> matmul before the scan (``input_projection="before_scan"``):
``Recurrence`` then calls ``cell.project_inputs`` once on the whole sequence and scans only
``cell.step``. Or the scan runs the whole cell, ``x_t W`` inside each step (``"in_step"``), which
saves the round trip of the <[time, batch, G*H]> projection through memory. ``"auto"`` (the
default) is one rule for every cell: ``in_step`` on CPU, where it measured faster for the LSTM
and GRU (``experiments/results/benchmark/table.md``), and ``before_scan`` elsewhere (unmeasured
on GPU and TPU so far). Either way a cell writes its equations once, in ``step``.

Any Flax cell runs here too (``flax.linen.LSTMCell``, ``GRUCell``, ...): a cell without
``project_inputs`` is always run whole inside the step.

Padding: a boolean ``mask`` <[batch, time]> marks real steps. On a masked-out step the carry is
left unchanged and the output is zero. Therefore:

* the final carry is the state after each sequence's last real step, whether it was pre-padded,
  post-padded or not padded at all;
* a ``reverse=True`` layer passes through the padding first without changing its (zero) state,
  so the backward direction of ``Bidirectional`` starts at each sequence's true last token.

``length_mask`` turns per-sequence lengths into such a mask.

Linear-recurrence cells (``rnn_jax.linear_cells``: ``h_t = a_t h_{t-1} + b_t``; their
recurrence is evaluated by ``rnn_jax.linear_scan``) take another
path: ``x W`` for all steps, then their coefficients ``(a, b)`` <[time, batch, H]> for all steps
(a masked step gets ``a = 1, b = 0``, so it leaves the state as it was), then the recurrence,
evaluated by ``time_parallel``: ``"sequential"`` (``lax.scan``: T steps of ``a * h + b``),
``"parallel"`` (``lax.associative_scan``: O(log T) depth, O(T) work) or ``"auto"``: sequential
on CPU, where it measured faster (``experiments/results/benchmark/linear.md``), parallel on GPU
and TPU (unmeasured so far). ``input_projection`` does not apply to them: their coefficients are
always computed before the recurrence.
"""

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rnn_jax.cells.base import RecurrentCell
from rnn_jax.cells.classic import is_linear
from rnn_jax.cells.cudnn_lstm import cudnn_lstm, uses_cudnn
from rnn_jax.layers.scan import linear_recurrence, scans_in_parallel

Array = jax.Array

INPUT_PROJECTIONS = ("auto", "before_scan", "in_step")


def projects_before_scan(input_projection: str, cell: nn.Module | None = None) -> bool:
    """Whether ``x W`` runs as one matmul before the scan (see the module docstring).

    Args:
      input_projection: one of ``INPUT_PROJECTIONS``; ``"auto"`` decides by JAX's default
        backend: in the step on CPU, before the scan on GPU and TPU.
      cell: the cell; one without ``project_inputs`` (a Flax cell) is never projected before.
    """
    if input_projection not in INPUT_PROJECTIONS:
        raise ValueError(
            f"input_projection must be one of {', '.join(INPUT_PROJECTIONS)}, "
            f"got {input_projection!r}"
        )
    if cell is not None and not hasattr(cell, "project_inputs"):
        return False
    if input_projection == "auto":
        return jax.default_backend() != "cpu"
    return input_projection == "before_scan"


def length_mask(lengths: Array, time: int, padding: str = "post") -> Array:
    """Boolean mask of real steps from per-sequence lengths.

    Args:
      lengths: <int>[batch], number of real steps of each sequence (0..time).
      time: padded sequence length T.
      padding: ``"post"`` if real steps come first, ``"pre"`` if the padding comes first.

    Returns:
      <bool>[batch, time].
    """
    positions = jnp.arange(time)[None, :]
    lengths = lengths[:, None]
    if padding == "post":
        return positions < lengths
    if padding == "pre":
        return positions >= time - lengths
    raise ValueError(f"padding must be 'pre' or 'post', got {padding!r}")


def _masked_step(
    cell: nn.Module, carry, inputs, *, projected: bool, return_sequences: bool, tracks_output: bool
):
    """One scan step of the cell, frozen where ``mask_t`` is False.

    With ``tracks_output``, ``carry`` is ``(cell_carry, last_output)``: the last real output kept
    in the carry, for a cell (e.g. Flax's) whose output cannot be read off its carry. A
    ``RecurrentCell`` says where its output is (``output_of``), which saves a select per step.
    Per-step outputs are only emitted when they are wanted (stacking them costs memory).
    ``projected``: ``x_t`` is already ``x_t W + b`` (only the recurrent half runs here).
    """
    state, last_output = carry if tracks_output else (carry, None)
    x_t, mask_t = inputs
    new_state, output = cell.step(state, x_t) if projected else cell(state, x_t)
    keep = mask_t[:, None]  # <bool>[batch, 1], broadcasts over features.
    state = jax.tree.map(lambda new, old: jnp.where(keep, new, old), new_state, state)
    emitted = jnp.where(keep, output, 0.0) if return_sequences else None
    if not tracks_output:
        return state, emitted
    return (state, jnp.where(keep, output, last_output)), emitted


class Recurrence(nn.Module):
    """Unrolls ``cell`` over the time axis of batch-major inputs.

    Attributes:
      cell: the cell (an unbound ``RecurrentCell``, or any Flax ``RNNCellBase`` cell); its
        parameters live under this module.
      return_sequences: return every step's output instead of the last real one.
      reverse: run from the last step to the first (outputs stay in input order).
      unroll: scan steps per loop iteration (``lax.scan``'s ``unroll``; which is fastest per
        cell on CPU: ``experiments/results/benchmark/table.md``).
      input_projection: where ``x W`` runs: ``"before_scan"``, ``"in_step"`` or ``"auto"``
        (by backend; see the module docstring).
      time_parallel: how a linear-recurrence cell's recurrence is evaluated:
        ``"sequential"``, ``"parallel"`` or ``"auto"`` (by backend; see the module docstring).
      lstm_backend: ``"auto"`` (cuDNN's fused LSTM on a GPU when the layer is eligible),
        ``"scan"`` or ``"cudnn"`` (``rnn_jax.cudnn_lstm``; the parameters are the same).
    """

    cell: nn.Module
    return_sequences: bool = False
    reverse: bool = False
    unroll: int = 1
    input_projection: str = "auto"
    time_parallel: str = "auto"
    lstm_backend: str = "auto"

    @nn.compact
    def __call__(self, inputs: Array, mask: Array | None = None, initial_carry: Any = None):
        """Runs the cell over time.

        Args:
          inputs: <float>[batch, time, in_features].
          mask: <bool>[batch, time], True on real steps; None means every step is real.
          initial_carry: the cell's carry for step 0; zeros (``cell.initialize_carry``) if None.

        Returns:
          ``(final_carry, outputs)``: the cell's carry after each sequence's last real step, and
          <float>[batch, time, H] outputs (zero on masked steps) if ``return_sequences``, else
          <float>[batch, H], the output of each sequence's last real step (zeros if it has none).
        """
        batch, time = inputs.shape[:2]
        has_carry = initial_carry is not None
        if uses_cudnn(self.lstm_backend, self.cell, dtype=None, has_initial_carry=has_carry):
            self.cell.project_inputs(inputs[:1, :1])  # Creates (or binds) the parameters.
            params = self.cell.variables["params"]
            return cudnn_lstm(
                params,
                inputs,
                mask,
                reverse=self.reverse,
                return_sequences=self.return_sequences,
            )
        if mask is None:
            mask = jnp.ones((batch, time), bool)
        # Time-major inside: the scan slices its leading axis. Transpose the narrow inputs
        # <[.., in]>, never their G*H-wide projection (G times the bytes moved).
        xs, mask = jnp.swapaxes(inputs, 0, 1), jnp.swapaxes(mask, 0, 1)
        parallel = scans_in_parallel(self.time_parallel, self.cell)
        projected = projects_before_scan(self.input_projection, self.cell) or is_linear(self.cell)
        if projected:
            xs = self.cell.project_inputs(xs)  # <[time, batch, G*H]>: one matmul for all steps.
        # The carry's dtype must be what a step returns (e.g. float64 inputs, float32 params;
        # a float32 carry given to a bfloat16 cell).
        dtype = self.cell.dtype or jnp.promote_types(inputs.dtype, self.cell.param_dtype)
        if initial_carry is None:
            # Zeros for every cell here and Flax's default; Flax's cells want a key regardless.
            initial_carry = self.cell.initialize_carry(jax.random.key(0), inputs[:, 0].shape)
        initial_carry = jax.tree.map(lambda c: jnp.asarray(c, dtype), initial_carry)
        if is_linear(self.cell):
            return self._linear(xs, mask, initial_carry, parallel)
        tracks_output = not hasattr(self.cell, "output_of")
        step = functools.partial(
            _masked_step,
            projected=projected,
            return_sequences=self.return_sequences,
            tracks_output=tracks_output,
        )
        scan = nn.scan(
            step,
            variable_broadcast="params",
            split_rngs={"params": False},
            reverse=self.reverse,
            unroll=self.unroll,
        )
        if tracks_output:
            zero_output = jnp.zeros((batch, self.cell.features), dtype)
            carry, outputs = scan(self.cell, (initial_carry, zero_output), (xs, mask))
            final_carry, last_output = carry
        else:
            final_carry, outputs = scan(self.cell, initial_carry, (xs, mask))
            real = mask.any(axis=0)[:, None]  # A row without real steps outputs zeros.
            last_output = jnp.where(real, self.cell.output_of(final_carry), 0.0)
        if self.return_sequences:
            return final_carry, jnp.swapaxes(outputs, 0, 1)
        return final_carry, last_output

    def _linear(self, xw: Array, mask: Array, h0: Array, parallel: bool):
        """``__call__`` for a linear-recurrence cell, from ``x W + b`` <[time, batch, G*H]>."""
        a, b = self.cell.coefficients(xw)
        keep = mask[..., None]  # <bool>[time, batch, 1]: a masked step is h -> 1 * h + 0.
        a, b = jnp.where(keep, a, 1.0).astype(h0.dtype), jnp.where(keep, b, 0.0).astype(h0.dtype)
        states = linear_recurrence(
            a, b, h0, parallel=parallel, reverse=self.reverse, unroll=self.unroll
        )
        final = states[0 if self.reverse else -1]  # After the last real step, in either order.
        if self.return_sequences:
            return final, jnp.swapaxes(jnp.where(keep, states, 0.0), 0, 1)
        return final, jnp.where(mask.any(axis=0)[:, None], final, 0.0)


class Bidirectional(nn.Module):
    """A forward and a backward ``Recurrence`` of copies of one cell, outputs concatenated.

    Because masked steps leave the state unchanged, the backward direction starts at each
    sequence's true last token, not at the padding.

    Attributes:
      cell: the cell; each direction gets its own copy (its own parameters).
      return_sequences, unroll, input_projection, time_parallel, lstm_backend: as
        ``Recurrence``.
    """

    cell: RecurrentCell
    return_sequences: bool = False
    unroll: int = 1
    input_projection: str = "auto"
    time_parallel: str = "auto"
    lstm_backend: str = "auto"

    @nn.compact
    def __call__(self, inputs: Array, mask: Array | None = None):
        """Args and returns as ``Recurrence``, with ``2H`` features ``[forward, backward]``.

        The returned carry is the tuple ``(forward_carry, backward_carry)``.
        """
        directions = {"forward": False, "backward": True}
        carries, outputs = zip(
            *(
                Recurrence(
                    self.cell.clone(),
                    self.return_sequences,
                    reverse,
                    self.unroll,
                    self.input_projection,
                    self.time_parallel,
                    self.lstm_backend,
                    name=n,
                )(inputs, mask)
                for n, reverse in directions.items()
            ),
            strict=True,
        )
        return carries, jnp.concatenate(outputs, axis=-1)


class RecurrentStack(nn.Module):
    """``num_layers`` recurrent layers; each feeds its output sequence to the next.

    Attributes:
      cells: one unbound cell per layer (the cell's ``features`` is that layer's hidden size).
      bidirectional: wrap each layer in ``Bidirectional`` (each layer then outputs ``2H``).
      dropout_rate: dropout on the sequence between layers (not on the recurrent state).
      return_sequences: the top layer returns every step's output instead of the last real one.
      residual: every layer after the first adds its input to its output and reads it layer-
        normalized (pre-norm residual, as the papers stack linear recurrences: the
        non-linearity and the scale control live between the layers).
      unroll, input_projection, time_parallel, lstm_backend: passed to every ``Recurrence``.
    """

    cells: Sequence[RecurrentCell]
    bidirectional: bool = False
    dropout_rate: float = 0.0
    return_sequences: bool = False
    residual: bool = False
    unroll: int = 1
    input_projection: str = "auto"
    time_parallel: str = "auto"
    lstm_backend: str = "auto"

    @nn.compact
    def __call__(self, inputs: Array, mask: Array | None = None, *, train: bool = False):
        """Runs the stack.

        Args:
          inputs: <float>[batch, time, in_features].
          mask: <bool>[batch, time], True on real steps.
          train: apply dropout between layers (needs a ``'dropout'`` rng).

        Returns:
          <float>[batch, time, D] if ``return_sequences`` else <float>[batch, D], where D is the
          top cell's ``features`` (doubled when bidirectional).
        """
        x = inputs
        for index, cell in enumerate(self.cells):
            if index > 0:
                x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
            skip = x if self.residual and index > 0 else None
            if skip is not None:
                x = nn.LayerNorm(name=f"norm_{index}")(x)
            sequences = self.return_sequences or index < len(self.cells) - 1
            layer = make_layer(
                cell,
                self.bidirectional,
                sequences,
                self.unroll,
                self.input_projection,
                self.time_parallel,
                self.lstm_backend,
                f"layer_{index}",
            )
            _, x = layer(x, mask)
            if skip is not None:
                x = x + (skip if sequences else last_real_step(skip, mask))
        return x


def last_real_step(sequence: Array, mask: Array | None) -> Array:
    """<[batch, F]>: each row's value at its last real step (the last step if ``mask`` is None)."""
    if mask is None:
        return sequence[:, -1]
    last = mask.shape[1] - 1 - jnp.argmax(mask[:, ::-1], axis=1)
    return jnp.take_along_axis(sequence, last[:, None, None], axis=1)[:, 0]


def make_layer(
    cell: RecurrentCell,
    bidirectional: bool,
    return_sequences: bool,
    unroll: int,
    input_projection: str,
    time_parallel: str,
    lstm_backend: str,
    name: str,
) -> nn.Module:
    """One ``Recurrence``, or a ``Bidirectional`` pair of them, named ``name``."""
    layer = Bidirectional if bidirectional else Recurrence
    return layer(
        cell.clone(),
        return_sequences,
        unroll=unroll,
        input_projection=input_projection,
        time_parallel=time_parallel,
        lstm_backend=lstm_backend,
        name=name,
    )
