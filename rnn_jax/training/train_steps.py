"""The train state and the steps: one optimizer step, one evaluation batch, a whole split.

Metrics are sums (loss, correct, count) so they add up across steps and devices; ``normalize``
turns them into means on the host, once per log interval or epoch.
"""

from collections.abc import Callable

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from rnn_jax.data import batching
from rnn_jax.models import SentimentClassifier
from rnn_jax.training import parallel
from rnn_jax.training.optimizers import create_learning_rate_fn, create_optimizer

Array = jax.Array
Metrics = dict[str, Array]


class TrainState(train_state.TrainState):
    """Flax's TrainState plus the raw dropout key (uint32 key data, so Orbax can save it)."""

    dropout_key: Array = flax.struct.field(default=None)


def create_train_state(
    config: ml_collections.ConfigDict,
    model: nn.Module,
    steps_per_epoch: int,
    tokens: Array | None = None,
) -> TrainState:
    """Initializes parameters from ``config.seed`` and wraps them with the optimizer.

    Args:
      config: the run's config.
      model: the classifier, or any model initialized from a batch of token ids.
      steps_per_epoch: sizes the learning-rate schedule.
      tokens: <int32>[1, time], what ``model.init`` reads; default ``config.max_len`` ones.
    """
    params_key, key = jax.random.split(jax.random.key(config.seed))
    tokens = jnp.ones((1, config.max_len), jnp.int32) if tokens is None else tokens
    params = jax.jit(model.init)(params_key, tokens)["params"]
    tx = create_optimizer(config, create_learning_rate_fn(config, steps_per_epoch))
    return TrainState.create(
        apply_fn=model.apply, params=params, tx=tx, dropout_key=jax.random.key_data(key)
    )


def checkpoint_template(config: ml_collections.ConfigDict, model: SentimentClassifier) -> dict:
    """What a checkpoint of ``config`` restores into: shapes and dtypes only, on device 0.

    Nothing is initialized or compiled (``jax.eval_shape``), so restoring a run for prediction
    does not pay for a parameter initialization it would overwrite.

    Returns:
      ``{"state": TrainState, "sums": Metrics}`` with a ``jax.ShapeDtypeStruct`` for every array.
    """
    shapes = jax.eval_shape(
        lambda: {"state": create_train_state(config, model, 1), "sums": zero_metrics()}
    )
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device), shapes)


def zero_metrics() -> Metrics:
    """Running sums of an epoch; ``first_nonfinite_step``: -1 until a loss or gradient is NaN."""
    return {
        "loss": jnp.zeros((), jnp.float32),
        "correct": jnp.zeros((), jnp.float32),
        "count": jnp.zeros((), jnp.float32),
        "first_nonfinite_step": jnp.full((), -1, jnp.int32),
    }


def batch_metrics(logits: Array, labels: Array, weights: Array) -> Metrics:
    """Sums of loss and correct predictions over the examples with weight 1."""
    losses = optax.sigmoid_binary_cross_entropy(logits, labels.astype(logits.dtype))
    correct = (logits > 0) == (labels == 1)
    return {
        "loss": jnp.sum(losses * weights),
        "correct": jnp.sum(correct * weights),
        "count": jnp.sum(weights),
    }


def train_step(
    state: TrainState, sums: Metrics, batch: dict[str, Array], *, axis_name: str | None = None
) -> tuple[TrainState, Metrics]:
    """One optimizer step; adds the batch's metrics to ``sums``.

    Args:
      state: the train state (on one device, or replicated: ``parallel``).
      sums: running metric sums of the epoch (``zero_metrics`` layout).
      batch: ``token_ids`` <int32>[batch, time], ``label`` <int32>[batch] (this device's share).
      axis_name: the devices' axis (``parallel``); gradients are averaged and sums added over
        it.

    Returns:
      The new state and sums.
    """
    key = dropout_key(state, axis_name)
    labels = batch["label"]

    def loss_fn(params):
        logits = state.apply_fn(
            {"params": params}, batch["token_ids"], train=True, rngs={"dropout": key}
        )
        loss = optax.sigmoid_binary_cross_entropy(logits, labels.astype(logits.dtype)).mean()
        return loss, logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = batch_metrics(logits, labels, jnp.ones_like(logits))
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
        loss = jax.lax.pmean(loss, axis_name)
        metrics = jax.lax.psum(metrics, axis_name)
    return state.apply_gradients(grads=grads), add_step(sums, metrics, loss, grads, state.step)


def add_step(sums: Metrics, metrics: Metrics, loss: Array, grads, step: Array) -> Metrics:
    """``sums`` plus one step's metric sums.

    The first step whose loss or gradients are not finite is recorded in
    ``first_nonfinite_step``.
    """
    first_bad = sums["first_nonfinite_step"]
    finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads))
    first_bad = jnp.where((first_bad < 0) & ~finite, step, first_bad)
    return {k: sums[k] + metrics[k] for k in metrics} | {"first_nonfinite_step": first_bad}


def dropout_key(state: TrainState, axis_name: str | None) -> Array:
    """A new dropout key every step (and device), from the step: a resumed run repeats it."""
    key = jax.random.fold_in(jax.random.wrap_key_data(state.dropout_key), state.step)
    if axis_name is not None:
        key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
    return key


def eval_step(
    state: TrainState, batch: dict[str, Array], *, axis_name: str | None = None
) -> Metrics:
    """Metric sums of a padded evaluation batch; rows with ``mask`` False do not count.

    Args:
      state: the train state.
      batch: ``token_ids`` <int32>[batch, time], ``label`` <int32>[batch], ``mask``
        <bool>[batch].
      axis_name: the devices' axis; sums are added over it.
    """
    logits = state.apply_fn({"params": state.params}, batch["token_ids"], train=False)
    metrics = batch_metrics(logits, batch["label"], batch["mask"].astype(logits.dtype))
    return metrics if axis_name is None else jax.lax.psum(metrics, axis_name)


def compile_steps(data_parallel: parallel.DataParallel) -> tuple[Callable, Callable]:
    """``(train_step, eval_step)`` on every device: state and sums replicated, batches sharded.

    The train step donates the state it is given (its buffers become the new state's).
    """
    replicated, sharded = parallel.REPLICATED, parallel.SHARDED
    return (
        data_parallel.compile(
            train_step,
            (replicated, replicated, sharded),
            (replicated, replicated),
            donate_state=True,
        ),
        data_parallel.compile(eval_step, (replicated, sharded), replicated, donate_state=False),
    )


def normalize(sums: Metrics) -> dict[str, float]:
    """Sums -> mean loss and accuracy (on the host)."""
    sums = jax.device_get(sums)
    count = float(sums["count"])
    return {"loss": float(sums["loss"]) / count, "accuracy": float(sums["correct"]) / count}


def evaluate(
    eval_step: Callable,
    data_parallel: parallel.DataParallel,
    state: TrainState,
    data: dict[str, np.ndarray],
    batch_size: int,
    bucket_width: int = 0,
    padding: str = "pre",
) -> dict[str, float]:
    """Loss and accuracy over every example of ``data`` exactly once.

    Args:
      eval_step: ``eval_step`` compiled by ``compile_steps``.
      data_parallel: what compiled it; places the batches and reads the sums back.
      state: replicated train state.
      data: a split (``token_ids``, ``length``, ``label`` arrays).
      batch_size: global evaluation batch size.
      bucket_width: > 0 visits rows shortest first and cuts padding (``eval_batches``); 0 = off.
      padding: where the split's padding is, ``"pre"`` or ``"post"``.
    """
    total = None
    for batch in batching.eval_batches(data, batch_size, bucket_width, padding):
        batch = batching.shard_for_process(batch, jax.process_index(), jax.process_count())
        batch = data_parallel.shard(batch)
        parallel.wait_if_cpu_devices(total)  # The previous batch (see there).
        sums = eval_step(state, batch)
        total = sums if total is None else jax.tree.map(jnp.add, total, sums)
    total = data_parallel.fetch(total)
    return normalize(total) | {"count": int(total["count"])}
