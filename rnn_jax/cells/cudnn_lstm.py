"""An LSTM layer through cuDNN's fused kernel (``jax.experimental.rnn.lstm``), array level.

Why: on GPU, ``lax.scan`` launches the step's kernels once per time step, and a small LSTM step
is dominated by that launch overhead; cuDNN runs the whole sequence in one fused call. Keras 3's
JAX backend routes its LSTM there on GPU for this reason (keras-team/keras PR #22399, about 5x).

What is eligible (``LSTMCell.why_not_fused``): exactly ``rnn_jax.cells.LSTMCell`` (a subclass
may change the equations), with ``activation`` tanh and ``recurrent_activation`` sigmoid (cuDNN
hard-codes both), computing in float32 (``jax.experimental.rnn`` supports nothing else),
starting from the zero carry. ``cudnn_lstm`` further needs each row's real steps to be one
contiguous run (pre- or post-padding, as the models produce); it is not checked, because the
mask is traced. Whether a layer takes this path is decided with every other evaluation choice,
in ``rnn_jax.layers.evaluation``.

Layout mapping (``cudnn_weights``): Keras's gate order i, f, c, o is PyTorch's and cuDNN's
i, f, g, o, so only the matrices are transposed: ``W_ih = kernel.T`` <[4H, in]>,
``W_hh = recurrent_kernel.T`` <[4H, H]>, ``b_ih = bias`` and ``b_hh = 0`` (cuDNN adds two biases;
their sum is Keras's one). The flat vector is built from the Keras-layout parameters at every
call and is differentiable, so the parameters and checkpoints stay in the Keras layout whichever
path trained them (docs/design.md, Backends).

The scan path (``rnn_jax.layers.Recurrence``) remains the reference: ``cudnn_lstm`` returns
exactly what ``Recurrence`` returns for the same parameters, inputs and mask, and the tests check
that on CPU with ``lstm_ref_with_flat_weights`` standing in for cuDNN.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.experimental import rnn

Array = jax.Array


def cudnn_weights(kernel: Array, recurrent_kernel: Array, bias: Array) -> Array:
    """Keras-layout LSTM parameters as ``jax.experimental.rnn``'s flat weight vector.

    One layer, one direction. Differentiable: gradients flow back to the Keras-layout arrays.

    Args:
      kernel: <float>[in, 4H], gates i, f, c, o along the last axis.
      recurrent_kernel: <float>[H, 4H].
      bias: <float>[4H].

    Returns:
      <float>[4H*in + 4H*H + 8H]: ``(W_ih, W_hh, b_ih, b_hh)`` flattened row-major, the layout
      ``rnn.unpack_lstm_weights(weights, in, H, num_layers=1, bidirectional=False)`` reads.
    """
    # Same gate order on both sides (i, f, c|g, o): no permutation, only transposes.
    return jnp.concatenate(
        [kernel.T.ravel(), recurrent_kernel.T.ravel(), bias, jnp.zeros_like(bias)]
    )


def lstm_ref_with_flat_weights(
    x: Array,
    h_0: Array,
    c_0: Array,
    weights: Array,
    seq_lengths: Array,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    dropout: float,
    bidirectional: bool,
    precision=None,
) -> tuple[Array, Array, Array]:
    """``rnn.lstm``'s signature on top of the pure-JAX ``rnn.lstm_ref``: cuDNN's CPU stand-in.

    Pass it as ``cudnn_lstm(..., lstm=lstm_ref_with_flat_weights)``; the tests and ``--quick``
    runs do, so the cuDNN path's shifting, reversing and masking run where there is no GPU.
    Arguments and returns as ``rnn.lstm`` (``y`` <[B, T, dirs*H]>, zero past ``seq_lengths``;
    ``h_n``, ``c_n`` <[layers*dirs, B, H]>).
    """
    del precision  # lstm_ref multiplies at JAX's default matmul precision.
    w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(
        weights, input_size, hidden_size, num_layers, bidirectional
    )
    return rnn.lstm_ref(
        x,
        h_0,
        c_0,
        w_ih,
        w_hh,
        b_ih,
        b_hh,
        seq_lengths,
        input_size,
        hidden_size,
        num_layers,
        dropout,
        bidirectional,
    )


def _gather_steps(values: Array, steps: Array) -> Array:
    """``values[b, steps[b, t]]``: <[B, T, F]> values, <int>[B, T] steps (clipped into range)."""
    steps = jnp.clip(steps, 0, values.shape[1] - 1)
    return jnp.take_along_axis(values, steps[..., None], axis=1)


def _call_steps(mask: Array, lengths: Array, reverse: bool) -> Array:
    """The input step that call step ``t`` reads, <int32>[B, T] (meaningful for t < length).

    cuDNN wants each row's real steps first. A row's run of real steps starts at its first True
    (pre-padding: ``T - length``; post-padding: 0); ``reverse`` reads the run back to front,
    which is its own inverse, so the same map also takes the outputs back.
    """
    start = jnp.argmax(mask, axis=1).astype(jnp.int32)[:, None]  # 0 for a row with no real step.
    t = jnp.arange(mask.shape[1], dtype=jnp.int32)[None, :]
    return start + lengths[:, None] - 1 - t if reverse else start + t


def _output_steps(mask: Array, lengths: Array, reverse: bool) -> Array:
    """The call step whose output belongs at input step ``s``, <int32>[B, T] (for real s)."""
    if reverse:
        return _call_steps(mask, lengths, reverse)
    start = jnp.argmax(mask, axis=1).astype(jnp.int32)[:, None]
    return jnp.arange(mask.shape[1], dtype=jnp.int32)[None, :] - start


def cudnn_lstm(
    params: dict,
    inputs: Array,
    mask: Array | None,
    *,
    reverse: bool,
    return_sequences: bool,
    lstm: Callable | None = None,
    precision=None,
):
    """``Recurrence(LSTMCell(H), return_sequences, reverse)`` with zero initial carry, via cuDNN.

    Args:
      params: the LSTMCell's parameters: ``kernel`` <[in, 4H]>, ``recurrent_kernel`` <[H, 4H]>,
        ``bias`` <[4H]>.
      inputs: <float32>[batch, time, in].
      mask: <bool>[batch, time], True on real steps, one contiguous run per row (pre- or
        post-padding); None means every step is real.
      reverse: run each row's real steps from its last to its first (outputs stay in input
        order), as ``Recurrence(reverse=True)``.
      return_sequences: return every step's output instead of the last real one.
      lstm: a function with ``jax.experimental.rnn.lstm``'s signature (the default; GPU only),
        e.g. ``lstm_ref_with_flat_weights`` on CPU.
      precision: passed to ``lstm`` (cuDNN: None or HIGH allow TF32, HIGHEST forbids it).

    Returns:
      ``(final_carry, outputs)`` as ``Recurrence``: ``(c, h)``, each <float32>[batch, H], the
      state after each row's last real step (zeros for a row without one); outputs
      <float32>[batch, time, H] (zero on masked steps) if ``return_sequences``, else
      <float32>[batch, H], the output of each row's last real step (zeros if it has none).
    """
    lstm = rnn.lstm if lstm is None else lstm
    batch, time, in_features = inputs.shape
    hidden = params["recurrent_kernel"].shape[0]
    dtype = jnp.result_type(inputs, params["kernel"])  # What Recurrence's carry promotes to.
    weights = cudnn_weights(params["kernel"], params["recurrent_kernel"], params["bias"])
    weights = weights.astype(dtype)
    x = inputs.astype(dtype)
    if mask is None:
        lengths = jnp.full((batch,), time, jnp.int32)
        x = x[:, ::-1] if reverse else x  # Every row is its own run: a plain flip.
    else:
        lengths = mask.sum(axis=1, dtype=jnp.int32)
        in_call = jnp.arange(time)[None, :] < lengths[:, None]
        # Zeroed, not just ignored, past each length: no gradient can reach the padding.
        x = jnp.where(in_call[..., None], _gather_steps(x, _call_steps(mask, lengths, reverse)), 0)
    zero = jnp.zeros((1, batch, hidden), dtype)  # <[layers*directions, B, H]>
    # cuDNN fails on a sequence length of 0 (jax-ml/jax#17966): such rows run one step of their
    # zeroed input and their results are replaced by the zeros Recurrence returns.
    seq_lengths = jnp.maximum(lengths, 1)
    y, h_n, c_n = lstm(
        x, zero, zero, weights, seq_lengths, in_features, hidden, 1, 0.0, False, precision
    )
    has_steps = (lengths > 0)[:, None]
    c, h = (jnp.where(has_steps, state[0], 0) for state in (c_n, h_n))
    if not return_sequences:
        return (c, h), h  # An LSTM's output is its h: the last real step's output is h_n.
    if mask is None:
        return (c, h), y[:, ::-1] if reverse else y
    # Masked, not trusted: what y holds past a row's length is up to the implementation.
    outputs = _gather_steps(y, _output_steps(mask, lengths, reverse))
    return (c, h), jnp.where(mask[..., None], outputs, 0)
