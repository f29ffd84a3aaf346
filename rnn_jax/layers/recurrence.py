"""The layers that unroll any cell over time: ``Recurrence``, ``Bidirectional``, ``RecurrentStack``.

Any Flax cell runs here (ours, Flax's own, a researcher's). How a layer
evaluates its cell (masked scan, linear recurrence, fused kernel; where ``x W`` runs) is decided
in ``rnn_jax.layers.evaluation`` from one ``RecurrenceOptions``; this module names no cell.

Padding: a boolean ``mask`` <[batch, time]> marks real steps. A masked-out step reads zeros
instead of whatever the padding holds, leaves the carry unchanged and outputs zero (for a linear
cell: ``a = 1, b = 0``). Therefore:

* the final carry is the state after each sequence's last real step, whether it was pre-padded,
  post-padded or not padded at all;
* a ``reverse=True`` layer passes through the padding first without changing its (zero) state,
  so the backward direction of ``Bidirectional`` starts at each sequence's true last token.

``length_mask`` turns per-sequence lengths into such a mask.

Resets: a boolean ``reset`` <[batch, time]> beside the mask starts a new segment inside a
sequence (a new document in a stream of documents, ``rnn_jax.data.streams``): at a real step
where it is True, the carry entering that step is the cell's initial carry (``initialize_carry``)
instead of the previous state, so nothing before the step reaches it or anything after it. Every
evaluation path does it: the scan swaps the carry, the linear recurrence sets that step's
``a = 0`` (and ``b += a h0``, for a cell whose initial carry is not zero); a fused kernel cannot,
so a layer with resets never takes that path. A reset on a padded step does nothing.
"""

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rnn_jax.cells import RecurrentCell
from rnn_jax.layers.evaluation import Plan, RecurrenceOptions, resolve
from rnn_jax.layers.scan import linear_recurrence

Array = jax.Array


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
    cell: nn.Module,
    carry,
    inputs,
    *,
    projected: bool,
    return_sequences: bool,
    tracks_output: bool,
    fresh_carry=None,
):
    """One scan step of the cell, frozen where ``mask_t`` is False.

    With ``tracks_output``, ``carry`` is ``(cell_carry, last_output)``: the last real output kept
    in the carry, for a cell (e.g. Flax's) whose output cannot be read off its carry. A
    ``RecurrentCell`` says where its output is (``output_of``), which saves a select per step.
    Per-step outputs are only emitted when they are wanted (stacking them costs memory).
    ``projected``: ``x_t`` is already ``x_t W + b`` (only the recurrent half runs here).
    ``fresh_carry``: the initial carry a reset step starts from (then ``inputs`` holds
    ``reset_t``, already False on padded steps).
    """
    state, last_output = carry if tracks_output else (carry, None)
    x_t, mask_t, *reset = inputs
    if reset:
        restart = reset[0][:, None]
        state = jax.tree.map(lambda new, old: jnp.where(restart, new, old), fresh_carry, state)
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
      options: how the recurrence is evaluated (``rnn_jax.layers.evaluation``).
    """

    cell: nn.Module
    return_sequences: bool = False
    reverse: bool = False
    options: RecurrenceOptions = RecurrenceOptions()

    @nn.compact
    def __call__(
        self,
        inputs: Array,
        mask: Array | None = None,
        initial_carry: Any = None,
        reset: Array | None = None,
    ):
        """Runs the cell over time.

        Args:
          inputs: <float>[batch, time, in_features].
          mask: <bool>[batch, time], True on real steps; None means every step is real.
          initial_carry: the cell's carry for step 0; zeros (``cell.initialize_carry``) if None.
          reset: <bool>[batch, time], True where a real step starts from the initial carry
            (``cell.initialize_carry``) instead of the previous state; None: no reset.

        Returns:
          ``(final_carry, outputs)``: the cell's carry after each sequence's last real step, and
          <float>[batch, time, H] outputs (zero on masked steps) if ``return_sequences``, else
          <float>[batch, H], the output of each sequence's last real step (zeros if it has none).
        """
        # The carry's dtype must be what a step returns (e.g. float64 inputs, float32 params;
        # a float32 carry given to a bfloat16 cell); it is also what decides a fused kernel.
        dtype = self.cell.dtype or jnp.promote_types(inputs.dtype, self.cell.param_dtype)
        has_carry = initial_carry is not None
        plan = resolve(
            self.cell,
            self.options,
            dtype=dtype,
            has_initial_carry=has_carry,
            has_reset=reset is not None,
        )
        if plan.path == "fused":
            return self.cell.fused_sequence(
                inputs, mask, reverse=self.reverse, return_sequences=self.return_sequences
            )
        batch, time = inputs.shape[:2]
        if mask is None:
            mask = jnp.ones((batch, time), bool)
        # Time-major inside: the scan slices its leading axis. Transpose the narrow inputs
        # <[.., in]>, never their G*H-wide projection (G times the bytes moved).
        xs, mask = jnp.swapaxes(inputs, 0, 1), jnp.swapaxes(mask, 0, 1)
        # A cell never sees what padding holds: values it cannot take (e.g. a minLSTM whose two
        # gates both underflow) would make its discarded step NaN, and 0 * NaN is NaN in the
        # backward pass of the select that discards it.
        xs = jnp.where(mask[..., None], xs, jnp.zeros((), xs.dtype))
        if plan.project_before_scan:
            xs = self.cell.project_inputs(xs)  # <[time, batch, G*H]>: one matmul for all steps.
        # Zeros for every cell here and Flax's default; Flax's cells want a key regardless.
        fresh = self.cell.initialize_carry(jax.random.key(0), inputs[:, 0].shape)
        fresh = jax.tree.map(lambda c: jnp.asarray(c, dtype), fresh)
        initial_carry = fresh if initial_carry is None else initial_carry
        initial_carry = jax.tree.map(lambda c: jnp.asarray(c, dtype), initial_carry)
        if reset is not None:
            reset = jnp.swapaxes(reset, 0, 1) & mask  # Time-major; padding never resets.
        if plan.path == "linear":
            return self._linear(xs, mask, initial_carry, plan, reset, fresh)
        return self._scan(xs, mask, initial_carry, plan, dtype, reset, fresh)

    def _scan(self, xs: Array, mask: Array, initial_carry, plan: Plan, dtype, reset, fresh):
        """The masked step-by-step scan, from time-major ``xs`` (projected or not) and ``mask``."""
        tracks_output = not hasattr(self.cell, "output_of")
        step = functools.partial(
            _masked_step,
            projected=plan.project_before_scan,
            return_sequences=self.return_sequences,
            tracks_output=tracks_output,
            fresh_carry=fresh,
        )
        if plan.options.remat:
            # Flax's lifted jax.checkpoint: the backward pass recomputes each step's gates.
            step = nn.remat(step)
        scan = nn.scan(
            step,
            variable_broadcast="params",
            split_rngs={"params": False},
            reverse=self.reverse,
            unroll=plan.options.unroll,
        )
        scanned = (xs, mask) if reset is None else (xs, mask, reset)
        if tracks_output:
            zero_output = jnp.zeros((xs.shape[1], self.cell.features), dtype)
            carry, outputs = scan(self.cell, (initial_carry, zero_output), scanned)
            final_carry, last_output = carry
        else:
            final_carry, outputs = scan(self.cell, initial_carry, scanned)
            real = mask.any(axis=0)[:, None]  # A row without real steps outputs zeros.
            last_output = jnp.where(real, self.cell.output_of(final_carry), 0.0)
        if self.return_sequences:
            return final_carry, jnp.swapaxes(outputs, 0, 1)
        return final_carry, last_output

    def _linear(self, xw: Array, mask: Array, h0: Array, plan: Plan, reset, fresh):
        """The recurrence of a cell linear in h, from ``x W + b`` <[time, batch, G*H]>."""
        a, b = self.cell.coefficients(xw)
        keep = mask[..., None]  # <bool>[time, batch, 1]: a masked step is h -> 1 * h + 0.
        a, b = jnp.where(keep, a, 1.0).astype(h0.dtype), jnp.where(keep, b, 0.0).astype(h0.dtype)
        if reset is not None:  # h_t = a_t h_fresh + b_t, whatever came before: a = 0.
            restart = reset[..., None]
            b = jnp.where(restart, a * fresh.astype(h0.dtype) + b, b)
            a = jnp.where(restart, 0.0, a).astype(h0.dtype)
        states = linear_recurrence(
            a, b, h0, parallel=plan.parallel, reverse=self.reverse, unroll=plan.options.unroll
        )
        final = states[0 if self.reverse else -1]  # After the last real step, in either order.
        if self.return_sequences:
            return final, jnp.swapaxes(jnp.where(keep, states, 0.0), 0, 1)
        return final, jnp.where(mask.any(axis=0)[:, None], final, 0.0)


class Bidirectional(nn.Module):
    """A forward and a backward layer over the same inputs, outputs concatenated (as Flax's).

    Because masked steps leave the state unchanged, a ``Recurrence(reverse=True)`` backward
    layer starts at each sequence's true last token, not at the padding. ``bidirectional``
    builds the usual pair from one cell.

    Attributes:
      forward: the layer reading first to last (e.g. ``Recurrence(cell)``).
      backward: the layer reading last to first (e.g. ``Recurrence(cell, reverse=True)``).
    """

    forward: nn.Module
    backward: nn.Module

    def __call__(self, inputs: Array, mask: Array | None = None):
        """Args and returns as ``Recurrence``, with ``2H`` features ``[forward, backward]``.

        The returned carry is the tuple ``(forward_carry, backward_carry)``.
        """
        forward_carry, forward_outputs = self.forward(inputs, mask)
        backward_carry, backward_outputs = self.backward(inputs, mask)
        outputs = jnp.concatenate([forward_outputs, backward_outputs], axis=-1)
        return (forward_carry, backward_carry), outputs


def bidirectional(
    cell: nn.Module,
    return_sequences: bool = False,
    options: RecurrenceOptions = RecurrenceOptions(),  # noqa: B008 -- frozen, never mutated.
    **kwargs,
) -> Bidirectional:
    """``Bidirectional`` of two ``Recurrence`` layers of copies of ``cell`` (own parameters each).

    ``kwargs`` go to ``Bidirectional`` (e.g. ``name``).
    """
    return Bidirectional(
        Recurrence(cell.clone(), return_sequences, False, options, parent=None),
        Recurrence(cell.clone(), return_sequences, True, options, parent=None),
        **kwargs,
    )


class RecurrentStack(nn.Module):
    """``num_layers`` recurrent layers; each feeds its output sequence to the next.

    Attributes:
      cells: one unbound cell per layer (the cell's ``features`` is that layer's hidden size).
      bidirectional: each layer is a ``Bidirectional`` pair (each layer then outputs ``2H``).
      dropout_rate: dropout on the sequence between layers (not on the recurrent state).
      return_sequences: the top layer returns every step's output instead of the last real one.
      residual: every layer after the first adds its input to its output and reads it layer-
        normalized (pre-norm residual, as the papers stack linear recurrences: the
        non-linearity and the scale control live between the layers).
      options: how every layer's recurrence is evaluated.
      return_carries: also return every layer's final carry (a stateful stack, e.g. a language
        model that reads a stream chunk by chunk and hands the carries to the next chunk).
    """

    cells: Sequence[RecurrentCell]
    bidirectional: bool = False
    dropout_rate: float = 0.0
    return_sequences: bool = False
    residual: bool = False
    options: RecurrenceOptions = RecurrenceOptions()
    return_carries: bool = False

    @nn.compact
    def __call__(
        self,
        inputs: Array,
        mask: Array | None = None,
        *,
        train: bool = False,
        initial_carries: Sequence[Any] | None = None,
        reset: Array | None = None,
    ):
        """Runs the stack.

        Args:
          inputs: <float>[batch, time, in_features].
          mask: <bool>[batch, time], True on real steps.
          train: apply dropout between layers (needs a ``'dropout'`` rng).
          initial_carries: one carry per layer for its first step; None: each cell's initial
            carry. One direction only.
          reset: <bool>[batch, time], True where every layer restarts from its cell's initial
            carry (``Recurrence``). One direction only.

        Returns:
          <float>[batch, time, D] if ``return_sequences`` else <float>[batch, D], where D is the
          top cell's ``features`` (doubled when bidirectional); with ``return_carries``,
          ``(carries, outputs)``, ``carries`` a tuple of each layer's final carry.
        """
        stateful = initial_carries is not None or reset is not None
        if self.bidirectional and (stateful or self.return_carries):
            raise ValueError(
                "initial_carries, reset and return_carries need one direction: a stack that "
                "reads a stream left to right (bidirectional=False)"
            )
        if initial_carries is not None and len(initial_carries) != len(self.cells):
            raise ValueError(f"{len(initial_carries)} initial carries for {len(self.cells)} layers")
        x, carries = inputs, []
        for index, cell in enumerate(self.cells):
            if index > 0:
                x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
            skip = x if self.residual and index > 0 else None
            if skip is not None:
                x = nn.LayerNorm(name=f"norm_{index}")(x)
            sequences = self.return_sequences or index < len(self.cells) - 1
            if self.bidirectional:
                layer = bidirectional(cell, sequences, self.options, name=f"layer_{index}")
                carry, x = layer(x, mask)
            else:
                layer = Recurrence(
                    cell.clone(), sequences, options=self.options, name=f"layer_{index}"
                )
                start = None if initial_carries is None else initial_carries[index]
                carry, x = layer(x, mask, start, reset)
            carries.append(carry)
            if skip is not None:
                x = x + (skip if sequences else last_real_step(skip, mask))
        return (tuple(carries), x) if self.return_carries else x


def last_real_step(sequence: Array, mask: Array | None) -> Array:
    """<[batch, F]>: each row's value at its last real step (the last step if ``mask`` is None)."""
    if mask is None:
        return sequence[:, -1]
    last = mask.shape[1] - 1 - jnp.argmax(mask[:, ::-1], axis=1)
    return jnp.take_along_axis(sequence, last[:, None, None], axis=1)[:, 0]
