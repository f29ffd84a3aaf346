"""Training and evaluation of the sentiment classifier: optax, Orbax, pmap, metrics.

``train_and_evaluate(config, workdir)`` is the whole job. A workdir holds what a run leaves
(DESIGN.md): ``config.json``, ``vocab.json``, ``history.json`` (one entry per epoch), TensorBoard
events under ``tensorboard/``, Orbax checkpoints under ``checkpoints/`` and ``summary.json``.

Running the same command on the same workdir resumes from the latest checkpoint. Every source of
randomness is a function of the seed and the step (data order of ``(seed, epoch)``, dropout keys
of ``(seed, step)``), and the running metric sums are checkpointed with the state, so a resumed
run ends with the same metrics as an uninterrupted one (bitwise on CPU).
"""

import contextlib
import json
import math
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax.training import train_state
from tqdm import tqdm

from rnn_jax import configuration, files, input_pipeline, parallel
from rnn_jax.checkpointing import Checkpoints, NoUsableCheckpointError
from rnn_jax.models import COMPUTE_DTYPES, SentimentClassifier, count_params, summary
from rnn_jax.vocabulary import PAD_ID

Array = jax.Array
Metrics = dict[str, Array]

# Fields that may change between a run and its resumption: they change no trained parameter
# (eval_batch_size regroups evaluation's float sums: a validation loss may move in its 7th digit).
# num_epochs may grow only under a constant schedule (a cosine schedule's length depends on it).
RESUMABLE_FIELDS = frozenset(
    {
        "data_dir",
        "cache_dir",
        "progress_bar",
        "log_every_steps",
        "keep_checkpoints",
        "eval_batch_size",
        "num_epochs",
        "evaluate_test",
    }
)


# Fields added after workdirs were first written, with the value that reproduces those runs: a
# config.json without them still resumes, evaluates and predicts as before.
ADDED_FIELDS = {
    "bucket_width": 0,
    "ngram_buckets": 0,
    "ngram_order": 2,
    "embed_dropout_tokens": False,
    "evaluate_test": True,
    "compute_dtype": "float32",
}


def read_config(workdir: str) -> dict[str, Any]:
    """The config a workdir's run was started with (``config.json``), as a dict.

    Fields added to the codebase since (``ADDED_FIELDS``) are filled in with their old behavior.
    """
    with open(os.path.join(workdir, "config.json")) as f:
        return ADDED_FIELDS | json.load(f)


def resumable_fields(config: ml_collections.ConfigDict) -> frozenset[str]:
    """The fields a resumed run of ``config`` may change (see ``RESUMABLE_FIELDS``)."""
    if config.schedule == "constant":
        return RESUMABLE_FIELDS
    return RESUMABLE_FIELDS - {"num_epochs"}


class WorkdirError(RuntimeError):
    """The workdir cannot be used (not writable, or holds a run with another config)."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or Inf."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; a checkpoint was saved. ``signum`` says which."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


class TrainState(train_state.TrainState):
    """Flax's TrainState plus the raw dropout key (uint32 key data, so Orbax can save it)."""

    dropout_key: Array = flax.struct.field(default=None)


# ----------------------------------------------------------------------------------------------
# Model, optimizer, state.


def create_model(config: ml_collections.ConfigDict, **overrides) -> SentimentClassifier:
    """The classifier a config describes (``overrides`` replace attributes, e.g. in tests)."""
    fields = dict(
        vocab_size=config.vocab_size,
        embed_dim=config.embed_dim,
        cell=config.cell,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        bidirectional=config.bidirectional,
        pooling=config.pooling,
        dropout_rate=config.dropout_rate,
        embed_dropout_rate=config.embed_dropout_rate,
        embed_dropout_tokens=config.embed_dropout_tokens,
        ngram_buckets=config.ngram_buckets,
        ngram_order=config.ngram_order,
        kernel_init=config.kernel_init,
        recurrent_init=config.recurrent_init,
        activation=config.activation,
        unroll=config.unroll,
        input_projection=config.input_projection,
        # No token id is -1, so nothing is masked then: padding is read like a word.
        pad_id=PAD_ID if config.mask_padding else -1,
        dtype=COMPUTE_DTYPES[config.compute_dtype],
    )
    return SentimentClassifier(**(fields | overrides))


def create_learning_rate_fn(config: ml_collections.ConfigDict, steps_per_epoch: int):
    """Step -> learning rate: constant, or linear warmup then cosine decay to 0."""
    if config.schedule == "constant":
        return optax.constant_schedule(config.learning_rate)
    total = config.num_epochs * steps_per_epoch
    warmup = int(config.warmup_epochs * steps_per_epoch)
    if warmup == 0:  # The same numbers; optax logs a warning for a warmup of 0 steps.
        return optax.cosine_decay_schedule(config.learning_rate, total)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.learning_rate,
        warmup_steps=warmup,
        decay_steps=max(total, warmup + 1),
        end_value=0.0,
    )


def create_optimizer(config: ml_collections.ConfigDict, learning_rate_fn):
    """Clipping (optional) then the named optimizer.

    Adam and RMSprop use Keras's epsilon (1e-7), and RMSprop Keras's update
    ``g / (sqrt(v) + eps)`` (optax's default puts eps inside the sqrt), so the course's
    ``RMSprop(1e-4)`` means the same thing here.
    """
    if config.optimizer == "adam":
        optimizer = optax.adam(learning_rate_fn, eps=1e-7)
    elif config.optimizer == "rmsprop":
        optimizer = optax.rmsprop(learning_rate_fn, decay=0.9, eps=1e-7, eps_in_sqrt=False)
    else:
        optimizer = optax.sgd(learning_rate_fn, momentum=config.momentum or None)
    if config.grad_clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), optimizer)
    return optimizer


def create_train_state(
    config: ml_collections.ConfigDict, model: SentimentClassifier, steps_per_epoch: int
) -> TrainState:
    """Initializes parameters from ``config.seed`` and wraps them with the optimizer."""
    params_key, dropout_key = jax.random.split(jax.random.key(config.seed))
    dummy = jnp.ones((1, config.max_len), jnp.int32)
    params = jax.jit(model.init)(params_key, dummy)["params"]
    tx = create_optimizer(config, create_learning_rate_fn(config, steps_per_epoch))
    return TrainState.create(
        apply_fn=model.apply, params=params, tx=tx, dropout_key=jax.random.key_data(dropout_key)
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


# ----------------------------------------------------------------------------------------------
# Steps. Metrics are sums (loss, correct, count) so they can be added across steps and devices.


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
      state: the train state (on one device, or replicated under ``pmap``).
      sums: running metric sums of the epoch (``zero_metrics`` layout).
      batch: ``token_ids`` <int32>[batch, time], ``label`` <int32>[batch] (this device's share).
      axis_name: the ``pmap`` axis; gradients are averaged and sums added over it.

    Returns:
      The new state and sums.
    """
    # A new dropout key every step (and device), derived from the step so a resumed run repeats it.
    key = jax.random.fold_in(jax.random.wrap_key_data(state.dropout_key), state.step)
    if axis_name is not None:
        key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
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
    first_bad = sums["first_nonfinite_step"]
    finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads))
    first_bad = jnp.where((first_bad < 0) & ~finite, state.step, first_bad)
    sums = {k: sums[k] + metrics[k] for k in metrics} | {"first_nonfinite_step": first_bad}
    return state.apply_gradients(grads=grads), sums


def eval_step(
    state: TrainState, batch: dict[str, Array], *, axis_name: str | None = None
) -> Metrics:
    """Metric sums of a padded evaluation batch; rows with ``mask`` False do not count."""
    logits = state.apply_fn({"params": state.params}, batch["token_ids"], train=False)
    metrics = batch_metrics(logits, batch["label"], batch["mask"].astype(logits.dtype))
    return metrics if axis_name is None else jax.lax.psum(metrics, axis_name)


def normalize(sums: Metrics) -> dict[str, float]:
    """Sums -> mean loss and accuracy (on the host)."""
    sums = jax.device_get(sums)
    count = float(sums["count"])
    return {"loss": float(sums["loss"]) / count, "accuracy": float(sums["correct"]) / count}


def evaluate(
    p_eval_step: Callable,
    state: TrainState,
    data: dict[str, np.ndarray],
    batch_size: int,
    bucket_width: int = 0,
    padding: str = "pre",
) -> dict[str, float]:
    """Loss and accuracy over every example of ``data`` exactly once.

    Args:
      p_eval_step: ``parallel.pmap_step(eval_step, ...)``.
      state: replicated train state.
      data: a split (``token_ids``, ``length``, ``label`` arrays).
      batch_size: global evaluation batch size.
      bucket_width: > 0 visits rows shortest first and cuts padding (``eval_batches``); 0 = off.
      padding: where the split's padding is, ``"pre"`` or ``"post"``.
    """
    total = None
    for batch in input_pipeline.eval_batches(data, batch_size, bucket_width, padding):
        batch = input_pipeline.shard_for_process(batch, jax.process_index(), jax.process_count())
        sums = p_eval_step(state, parallel.shard(batch))
        total = sums if total is None else jax.tree.map(jnp.add, total, sums)
    total = parallel.unreplicate(total)
    return normalize(total) | {"count": int(total["count"])}


# ----------------------------------------------------------------------------------------------
# The workdir.


def prepare_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Creates the workdir, checks it is writable and holds no run with another config.

    A workdir without checkpoints holds nothing to resume (e.g. a run that stopped on a config
    error or a NaN in its first epoch): its config is replaced.
    """
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        raise WorkdirError(
            f"workdir {workdir!r} is not writable ({error.strerror}); pass --workdir=DIR "
            "with a directory you can write to"
        ) from None
    config_path = os.path.join(workdir, "config.json")
    new = config.to_dict()
    checkpoints = os.path.join(workdir, "checkpoints")
    saved = os.path.isdir(checkpoints) and any(n.isdigit() for n in os.listdir(checkpoints))
    if saved and os.path.exists(config_path):
        old = read_config(workdir)
        changed = sorted(
            k
            for k in set(old) | set(new)
            if k not in resumable_fields(config) and old.get(k) != new.get(k)
        )
        if changed:
            details = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
            raise WorkdirError(
                f"workdir {workdir!r} holds a run with another config ({details}); "
                "use a new --workdir, or the same config to resume"
            )
    files.write_json(config_path, new)


def load_history(workdir: str, before_epoch: int) -> list[dict]:
    """Per-epoch history already in the workdir, for epochs a resumed run will not redo."""
    path = os.path.join(workdir, "history.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [entry for entry in json.load(f) if entry["epoch"] <= before_epoch]


class SignalFlag:
    """Records SIGINT/SIGTERM instead of dying, so the loop can checkpoint and exit cleanly."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        del frame
        self.signum = signum

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


# ----------------------------------------------------------------------------------------------
# The job.


def load_data(config: ml_collections.ConfigDict) -> input_pipeline.ImdbData:
    """IMDB as the config asks for it (the validation split is drawn from ``config.seed``).

    Raises:
      configuration.ConfigError: ``validation_fraction`` leaves no review for validation or
        for training (with ``max_examples``, it can).
    """
    try:
        return input_pipeline.load_imdb(
            vocab_size=config.vocab_size,
            max_len=config.max_len,
            padding=config.padding,
            truncating=config.truncating,
            validation_fraction=config.validation_fraction,
            split_seed=config.seed,
            data_dir=config.data_dir or None,
            cache_dir=config.cache_dir or None,
            max_examples=config.max_examples or None,
        )
    except input_pipeline.SplitSizeError as error:
        raise configuration.ConfigError(f"config.validation_fraction: {error}") from None


def _nonfinite(what: str, last_good_step: int | None) -> NonFiniteLossError:
    kept = "none" if last_good_step is None else f"step {last_good_step}"
    return NonFiniteLossError(
        f"{what}; stopped without saving; last good checkpoint: {kept}. Lower "
        "config.learning_rate or set config.grad_clip_norm"
    )


def _check_finite(sums: dict, epoch: int, last_good_step: int | None) -> None:
    bad = int(sums["first_nonfinite_step"])
    if bad >= 0:
        what = f"training loss or gradients became NaN/Inf at step {bad} (epoch {epoch + 1})"
        raise _nonfinite(what, last_good_step)


def _interrupted(signum: int, step: int, epoch: int, directory: str) -> Interrupted:
    name = signal.Signals(signum).name
    return Interrupted(
        signum,
        f"{name} at step {step} (epoch {epoch + 1}): checkpoint saved in {directory}; "
        "rerun the same command to resume",
    )


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains (or resumes), evaluates the best checkpoint on test, writes the workdir.

    "Best" is by validation accuracy; a run without validation (``validation_fraction=0``, the
    refit of a config chosen on validation) tests its last checkpoint.

    Args:
      config: a config with every field of ``configs/default.py``.
      workdir: output directory; an existing run there is resumed.

    Returns:
      The summary written to ``summary.json``.
    """
    configuration.validate(config, jax.device_count())
    prepare_workdir(config, workdir)
    data = load_data(config)
    data.vocab.to_json(os.path.join(workdir, "vocab.json"))

    model = create_model(config)
    steps_per_epoch = input_pipeline.num_train_batches(len(data.train["label"]), config.batch_size)
    if steps_per_epoch == 0:
        raise configuration.ConfigError(
            f"config.batch_size={config.batch_size} is not allowed: at most the "
            f"{len(data.train['label'])} training reviews (max_examples={config.max_examples}, "
            f"validation_fraction={config.validation_fraction})"
        )
    state = create_train_state(config, model, steps_per_epoch)
    num_params = count_params(state.params)
    logging.info("Model:\n%s", summary(model, state.params, config.max_len))
    learning_rate_fn = create_learning_rate_fn(config, steps_per_epoch)

    has_validation = len(data.validation["label"]) > 0  # False: a refit on all of train.
    checkpoints = Checkpoints(
        os.path.join(workdir, "checkpoints"), config.keep_checkpoints, track_best=has_validation
    )
    step, restored = checkpoints.restore_latest({"state": state, "sums": zero_metrics()})
    sums = zero_metrics()
    if restored is not None:
        state, sums = restored["state"], restored["sums"]
        logging.info("Resumed from checkpoint step %d", step)
    step = int(state.step)
    start_epoch, start_batch = divmod(step, steps_per_epoch)
    history = load_history(workdir, before_epoch=start_epoch)
    last_good_step = step if restored is not None else None

    p_train_step = parallel.pmap_step(train_step, donate_state=True)
    p_eval_step = parallel.pmap_step(eval_step, donate_state=False)
    eval_settings = (config.eval_batch_size, config.bucket_width, config.padding)
    state, sums = parallel.replicate(state), parallel.replicate(sums)
    # Imported here: it imports TensorFlow (seconds), which predict and evaluate do not need.
    from flax.metrics.tensorboard import SummaryWriter

    tensorboard = SummaryWriter(os.path.join(workdir, "tensorboard"))
    process = (jax.process_index(), jax.process_count())

    # Leaving the block waits for the last asynchronous save, also when NaN or a signal ends the
    # run: a process that exits before the save is written would lose its last good checkpoint.
    with SignalFlag() as interrupt, checkpoints.saves_finished(), contextlib.closing(tensorboard):
        for epoch in range(start_epoch, config.num_epochs):
            batches = input_pipeline.train_batches(
                data.train,
                config.batch_size,
                seed=config.seed,
                epoch=epoch,
                start_batch=start_batch,
                bucket_width=config.bucket_width,
                padding=config.padding,
            )
            progress = tqdm(
                total=steps_per_epoch,
                initial=start_batch,
                desc=f"epoch {epoch + 1}",
                disable=not config.progress_bar,
                leave=False,
                dynamic_ncols=True,
            )
            started = time.perf_counter()
            for batch in batches:
                batch = input_pipeline.shard_for_process(batch, *process)
                state, sums = p_train_step(state, sums, parallel.shard(batch))
                step += 1
                progress.update()
                # After an epoch's last step, the epoch is finished first (validation,
                # history, checkpoint with its metric), below; a resumed run would skip them.
                if interrupt.signum is not None and step % steps_per_epoch:
                    host_sums = parallel.unreplicate(sums)
                    _check_finite(host_sums, epoch, last_good_step)
                    checkpoints.save(
                        step, {"state": parallel.unreplicate(state), "sums": host_sums}
                    )
                    checkpoints.wait()
                    raise _interrupted(interrupt.signum, step, epoch, checkpoints.directory)
                if step % config.log_every_steps == 0:
                    host_sums = parallel.unreplicate(sums)
                    _check_finite(host_sums, epoch, last_good_step)
                    progress.set_postfix(normalize(host_sums))
            host_sums = parallel.unreplicate(sums)  # Also waits for the epoch's last step.
            epoch_seconds = time.perf_counter() - started
            progress.close()
            _check_finite(host_sums, epoch, last_good_step)
            train_metrics = normalize(host_sums)
            val_metrics = {"loss": None, "accuracy": None}  # Refit on all of train.
            if has_validation:
                val_metrics = evaluate(p_eval_step, state, data.validation, *eval_settings)
                if not math.isfinite(val_metrics["loss"]):  # Huge but finite weights, e.g.
                    what = f"validation loss became NaN/Inf after epoch {epoch + 1} (step {step})"
                    raise _nonfinite(what, last_good_step)
            trained = (steps_per_epoch - start_batch) * config.batch_size
            entry = {
                "epoch": epoch + 1,
                "step": step,
                "train_loss": train_metrics["loss"],
                "train_accuracy": train_metrics["accuracy"],
                "val_loss": val_metrics["loss"],
                "val_accuracy": val_metrics["accuracy"],
                "epoch_seconds": epoch_seconds,
                "examples_per_second": trained / epoch_seconds,
                "learning_rate": float(learning_rate_fn(step - 1)),  # The epoch's last step's.
                "resumed_mid_epoch": start_batch > 0,
            }
            history.append(entry)
            validation = (
                f"val loss {entry['val_loss']:.4f} acc {entry['val_accuracy']:.4f}"
                if has_validation
                else "no validation"
            )
            logging.info(
                "epoch %d/%d: train loss %.4f acc %.4f | %s | %.1f s %.0f ex/s",
                epoch + 1,
                config.num_epochs,
                entry["train_loss"],
                entry["train_accuracy"],
                validation,
                epoch_seconds,
                entry["examples_per_second"],
            )
            for name in (
                "train_loss",
                "train_accuracy",
                "val_loss",
                "val_accuracy",
                "examples_per_second",
                "learning_rate",
            ):
                if entry[name] is not None:
                    tensorboard.scalar(name, entry[name], step)
            tensorboard.flush()
            sums = parallel.replicate(zero_metrics())
            checkpoints.save(
                step,
                {"state": parallel.unreplicate(state), "sums": jax.device_get(zero_metrics())},
                val_metrics={"val_accuracy": entry["val_accuracy"], "val_loss": entry["val_loss"]}
                if has_validation
                else None,
            )
            last_good_step = step
            files.write_json(os.path.join(workdir, "history.json"), history)
            start_batch = 0
            if interrupt.signum is not None:  # Arrived in the epoch's last step or evaluation.
                checkpoints.wait()
                raise _interrupted(interrupt.signum, step, epoch, checkpoints.directory)

    # Test once, with the parameters that were best on validation (without validation: the last).
    best_step = checkpoints.best_step()
    if best_step is not None and best_step != step:
        try:
            _, best = checkpoints.restore_first(
                [best_step], {"state": parallel.unreplicate(state), "sums": zero_metrics()}
            )
            state = parallel.replicate(best["state"])
        except NoUsableCheckpointError:  # Warned already; the final state is still good.
            best_step = step
    checkpoints.close()
    if config.evaluate_test:
        test_metrics = evaluate(p_eval_step, state, data.test, *eval_settings)
        logging.info(
            "test loss %.4f acc %.4f (%d reviews, checkpoint step %s)",
            test_metrics["loss"],
            test_metrics["accuracy"],
            test_metrics["count"],
            best_step,
        )
    else:  # Tuning on validation: the test set stays unseen until a config is chosen.
        test_metrics = {"loss": None, "accuracy": None, "count": 0}
        logging.info("test not evaluated (evaluate_test=False; checkpoint step %s)", best_step)
    result = make_summary(config, history, test_metrics, num_params, best_step)
    files.write_json(os.path.join(workdir, "summary.json"), result)
    return result


def make_summary(
    config, history: list[dict], test_metrics: dict, num_params: int, best_step: int | None
) -> dict[str, Any]:
    """The ``summary.json`` record of a finished run."""
    best = next((h for h in history if h["step"] == best_step), None)
    train_seconds = sum(h["epoch_seconds"] for h in history)
    trained = sum(h["examples_per_second"] * h["epoch_seconds"] for h in history)
    return {
        "cell": config.cell,
        "test_accuracy": test_metrics["accuracy"],
        "test_loss": test_metrics["loss"],
        "test_examples": test_metrics["count"],
        "best_val_accuracy": None if best is None else best["val_accuracy"],
        "best_epoch": None if best is None else best["epoch"],
        "epochs": len(history),
        "train_seconds": train_seconds,
        "seconds_per_epoch": float(np.median([h["epoch_seconds"] for h in history]))
        if history
        else math.nan,
        "examples_per_second": trained / train_seconds if train_seconds else math.nan,
        "num_params": num_params,
        "devices": jax.device_count(),
        "backend": jax.default_backend(),
    }
