"""The language model's steps: one optimizer step on a chunk, one evaluation chunk.

A chunk is ``{"tokens": <int32>[streams, length + 1]}`` (``rnn_jax.data.streams``): the model
reads ``tokens[:, :-1]`` and predicts ``tokens[:, 1:]``. The carries of the streams pass from
one chunk to the next (truncated backpropagation through time: no gradient crosses a chunk's
start) and are ``SHARDED`` like the chunks, each device holding its own streams' rows. Metrics
are sums over the predicted tokens, in the classifier's layout (``train_steps.zero_metrics``):
``loss`` in nats, ``correct`` next-token predictions, ``count`` tokens; bits per character are
``loss / count / ln 2`` (``bits_per_character``).
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from rnn_jax.training import parallel
from rnn_jax.training.train_steps import Metrics, TrainState, add_step, dropout_key

Array = jax.Array


def token_metrics(logits: Array, targets: Array, weights: Array) -> Metrics:
    """Sums of the negative log-likelihood (nats) and correct predictions over weighted tokens.

    Args:
      logits: <float32>[streams, time, vocab].
      targets: <int32>[streams, time].
      weights: <float32>[streams, time], 1 for a token that counts.
    """
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    correct = logits.argmax(-1) == targets
    return {
        "loss": jnp.sum(losses * weights),
        "correct": jnp.sum(correct * weights),
        "count": jnp.sum(weights),
    }


def train_step(
    state: TrainState, sums: Metrics, carries, batch: dict[str, Array], *, axis_name=None
):
    """One optimizer step on a chunk; the streams' carries move on to the chunk's end.

    Args:
      state: the train state.
      sums: running metric sums of the epoch.
      carries: each layer's carry for this device's streams, from the previous chunk.
      batch: ``tokens`` <int32>[streams, length + 1] (this device's streams).
      axis_name: the devices' axis; gradients are averaged and sums added over it.

    Returns:
      ``(state, sums, carries)``.
    """
    key = dropout_key(state, axis_name)
    inputs, targets = batch["tokens"][:, :-1], batch["tokens"][:, 1:]

    def loss_fn(params):
        logits, new_carries = state.apply_fn(
            {"params": params}, inputs, carries, train=True, rngs={"dropout": key}
        )
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        return losses.mean(), (logits, new_carries)

    (loss, (logits, carries)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = token_metrics(logits, targets, jnp.ones(targets.shape, logits.dtype))
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
        loss = jax.lax.pmean(loss, axis_name)
        metrics = jax.lax.psum(metrics, axis_name)
    sums = add_step(sums, metrics, loss, grads, state.step)
    return state.apply_gradients(grads=grads), sums, jax.lax.stop_gradient(carries)


def eval_step(state: TrainState, carries, batch: dict[str, Array], *, axis_name=None):
    """Metric sums of an evaluation chunk (tokens where ``mask`` is False do not count).

    Args:
      state: the train state.
      carries: the streams' carries from the previous chunk.
      batch: ``tokens`` <int32>[streams, length + 1], ``mask`` <bool>[streams, length].
      axis_name: the devices' axis; sums are added over it.

    Returns:
      ``(sums, carries)``.
    """
    inputs, targets = batch["tokens"][:, :-1], batch["tokens"][:, 1:]
    logits, carries = state.apply_fn({"params": state.params}, inputs, carries, train=False)
    metrics = token_metrics(logits, targets, batch["mask"].astype(logits.dtype))
    if axis_name is not None:
        metrics = jax.lax.psum(metrics, axis_name)
    return metrics, carries


def compile_steps(data_parallel: parallel.DataParallel) -> tuple[Callable, Callable]:
    """``(train_step, eval_step)`` on every device.

    The state and sums are replicated; the chunks and the streams' carries sharded.
    """
    replicated, sharded = parallel.REPLICATED, parallel.SHARDED
    return (
        data_parallel.compile(
            train_step,
            (replicated, replicated, sharded, sharded),
            (replicated, replicated, sharded),
            donate_state=True,
        ),
        data_parallel.compile(
            eval_step, (replicated, sharded, sharded), (replicated, sharded), donate_state=False
        ),
    )


def bits_per_character(metrics: dict[str, float]) -> float:
    """Mean bits per predicted token, from a normalized mean loss in nats."""
    return metrics["loss"] / math.log(2)
