"""The training loop: ``train_and_evaluate(config, workdir)`` trains, validates and tests a model.

It reads top to bottom as the job does: check the config, prepare the workdir (``workdir``),
read IMDB (``rnn_jax.data``), build the model (``rnn_jax.models``) and its train state
(``train_steps``), resume from the latest checkpoint (``resumption``, ``checkpointing``), train
epoch by epoch on every device (``parallel``: ``pmap`` or ``shard_map``, as the config says), and
test the checkpoint best on validation.

Running the same command on the same workdir resumes from the latest checkpoint. Every source of
randomness is a function of the seed and the step (data order of ``(seed, epoch)``, dropout keys
of ``(seed, step)``), and the running metric sums are checkpointed with the state, so a resumed
run ends with the same metrics as an uninterrupted one (bitwise on CPU).
"""

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
from absl import logging
from tqdm import tqdm

from rnn_jax.data import batching, input_pipeline
from rnn_jax.models import count_params, create_model, recurrence_path, summary
from rnn_jax.training import configuration, distributed, parallel, train_steps
from rnn_jax.training import workdir as workdirs
from rnn_jax.training.checkpointing import Checkpoints
from rnn_jax.training.interrupts import Interrupted, SignalFlag
from rnn_jax.training.optimizers import create_learning_rate_fn
from rnn_jax.training.resumption import restore_best, resume


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or Inf."""


@dataclasses.dataclass
class Job:
    """What stays the same for a whole run: its config, data, compiled steps and outputs."""

    config: ml_collections.ConfigDict
    workdir: str
    data: input_pipeline.ImdbData
    steps_per_epoch: int
    learning_rate_fn: Callable[[int], Any]
    data_parallel: parallel.DataParallel  # Places arrays and reads them back (pmap or shard_map).
    train_step: Callable  # train_steps.train_step, compiled by parallel.
    eval_step: Callable
    checkpoints: Checkpoints
    tensorboard: Any  # tensorboardX.SummaryWriter (workdirs.open_tensorboard)
    writer: bool  # This process writes the workdir's files (process 0 of a multi-host run).

    @property
    def has_validation(self) -> bool:
        return len(self.data.validation["label"]) > 0  # False: a refit on all of train.

    def evaluate(self, state, split: str) -> dict[str, float]:
        """``train_steps.evaluate`` of a split, batched as the config says."""
        c = self.config
        return train_steps.evaluate(
            self.eval_step,
            self.data_parallel,
            state,
            self.data.split(split),
            c.eval_batch_size,
            c.bucket_width,
            c.padding,
        )


def load_data(config: ml_collections.ConfigDict) -> input_pipeline.ImdbData:
    """IMDB as the config asks for it (``input_pipeline.load_imdb_for``).

    Raises:
      configuration.ConfigError: ``validation_fraction`` leaves no review for validation or
        for training (with ``max_examples``, it can).
    """
    try:
        return input_pipeline.load_imdb_for(config)
    except input_pipeline.SplitSizeError as error:
        raise configuration.ConfigError(f"config.validation_fraction: {error}") from None


def check_finite(
    epoch: int,
    last_good_step: int | None,
    sums: dict | None = None,
    val_loss: float | None = None,
    step: int | None = None,
) -> None:
    """The one place a run stops on NaN/Inf: in the training sums, or in the validation loss.

    Args:
      epoch: the epoch being trained (0-based).
      last_good_step: the last step saved with finite values (None: none yet).
      sums: host copy of the running sums (``first_nonfinite_step`` >= 0 after a bad step).
      val_loss: the epoch's validation loss (huge but finite weights can make it NaN).
      step: the step ``val_loss`` was measured after.

    Raises:
      NonFiniteLossError: naming the step and the last good checkpoint; nothing is saved.
    """
    what = None
    if sums is not None and int(sums["first_nonfinite_step"]) >= 0:
        bad = int(sums["first_nonfinite_step"])
        what = f"training loss or gradients became NaN/Inf at step {bad} (epoch {epoch + 1})"
    elif val_loss is not None and not math.isfinite(val_loss):
        what = f"validation loss became NaN/Inf after epoch {epoch + 1} (step {step})"
    if what is not None:
        kept = "none" if last_good_step is None else f"step {last_good_step}"
        raise NonFiniteLossError(
            f"{what}; stopped without saving; last good checkpoint: {kept}. Lower "
            "config.learning_rate or set config.grad_clip_norm"
        )


def train_epoch(
    job: Job,
    state,
    sums,
    *,
    epoch: int,
    start_batch: int,
    interrupt: SignalFlag,
    last_good_step: int | None,
):
    """Trains one epoch from ``start_batch``, or up to the step a signal arrived in.

    A signal in the epoch's last step does not cut it short: the epoch is finished (validated
    and saved with its metric) as if none had come.

    Returns:
      ``(state, sums, host_sums, step, seconds)``: the replicated state and sums, a host copy
      of the sums, the global step reached and the seconds trained.
    """
    config, steps_per_epoch = job.config, job.steps_per_epoch
    batches = batching.train_batches(
        job.data.train,
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
    step = epoch * steps_per_epoch + start_batch
    process = (jax.process_index(), jax.process_count())
    started = time.perf_counter()
    for batch in batches:
        batch = batching.shard_for_process(batch, *process)
        state, sums = job.train_step(state, sums, job.data_parallel.shard(batch))
        step += 1
        progress.update()
        # Every process stops at the same step, whichever received the signal (in a multi-host
        # run this is a host sync after every step; one process checks its own flag only).
        interrupt.signum = distributed.stop_everywhere(interrupt.signum)
        if interrupt.signum is not None and step % steps_per_epoch:
            break
        if step % config.log_every_steps == 0:  # Host syncs (one process: the only ones).
            host_sums = job.data_parallel.fetch(sums)
            check_finite(epoch, last_good_step, sums=host_sums)
            progress.set_postfix(train_steps.normalize(host_sums))
    host_sums = job.data_parallel.fetch(sums)  # Also waits for the last step.
    seconds = time.perf_counter() - started
    progress.close()
    return state, sums, host_sums, step, seconds


def finish_epoch(
    job: Job,
    state,
    host_sums: dict,
    history: list[dict],
    *,
    epoch: int,
    seconds: float,
    start_batch: int,
    last_good_step: int | None,
) -> None:
    """After an epoch's last step: validate, log, save the checkpoint and ``history.json``."""
    config, step = job.config, (epoch + 1) * job.steps_per_epoch
    val = {"loss": None, "accuracy": None}  # A refit on all of train has no validation.
    if job.has_validation:
        val = job.evaluate(state, "validation")
        check_finite(epoch, last_good_step, val_loss=val["loss"], step=step)
    train_metrics = train_steps.normalize(host_sums)
    entry = {
        "epoch": epoch + 1,
        "step": step,
        "train_loss": train_metrics["loss"],
        "train_accuracy": train_metrics["accuracy"],
        "val_loss": val["loss"],
        "val_accuracy": val["accuracy"],
        "epoch_seconds": seconds,
        "examples_per_second": (job.steps_per_epoch - start_batch) * config.batch_size / seconds,
        "learning_rate": float(job.learning_rate_fn(step - 1)),  # The epoch's last step's.
        "resumed_mid_epoch": start_batch > 0,
    }
    history.append(entry)
    workdirs.log_epoch(entry, config.num_epochs, job.tensorboard)
    job.checkpoints.save(
        step,
        {
            "state": job.data_parallel.fetch(state),
            "sums": jax.device_get(train_steps.zero_metrics()),
        },
        val_metrics={"val_accuracy": val["accuracy"], "val_loss": val["loss"]}
        if job.has_validation
        else None,
    )
    if job.writer:
        workdirs.write_history(job.workdir, history)


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
    writer = distributed.is_writer()
    workdirs.prepare_workdir(config, workdir, write=writer)
    data = load_data(config)
    if writer:
        data.vocab.to_json(os.path.join(workdir, "vocab.json"))
    model = create_model(config)
    steps_per_epoch = num_steps_per_epoch(config, len(data.train["label"]))
    state = train_steps.create_train_state(config, model, steps_per_epoch)
    num_params = count_params(state.params)
    logging.info("Model:\n%s", summary(model, state.params, config.max_len))
    logging.info("%s", recurrence_path(model))
    data_parallel = parallel.create(config.parallelism)
    logging.info("%s", data_parallel.describe())
    train_step, eval_step = train_steps.compile_steps(data_parallel)
    job = Job(
        config,
        workdir,
        data,
        steps_per_epoch,
        create_learning_rate_fn(config, steps_per_epoch),
        data_parallel=data_parallel,
        train_step=train_step,
        eval_step=eval_step,
        checkpoints=Checkpoints(
            os.path.join(workdir, "checkpoints"),
            config.keep_checkpoints,
            track_best=len(data.validation["label"]) > 0,
            move_damaged=writer,
        ),
        tensorboard=workdirs.open_tensorboard(workdir, write=writer),
        writer=writer,
    )
    state, sums, last_good_step = resume(job.checkpoints, state)
    history = workdirs.load_history(workdir, before_epoch=int(state.step) // steps_per_epoch)

    state, step = train_epochs(job, state, sums, history, last_good_step)
    state, best_step = restore_best(job.checkpoints, job.data_parallel, state, step)
    job.checkpoints.close()
    test_metrics = evaluate_on_test(job, state, best_step)
    result = workdirs.make_summary(
        config,
        history,
        test_metrics,
        num_params,
        best_step,
        devices=jax.device_count(),
        backend=jax.default_backend(),
    )
    if writer:
        workdirs.write_summary(workdir, result)
    return result


def train_epochs(job: Job, state, sums, history: list[dict], last_good_step: int | None):
    """Trains from ``state.step`` to the last epoch, saving a checkpoint after each epoch.

    Args:
      job: the run.
      state: the (restored or fresh) train state, on the host.
      sums: its running metric sums of the epoch, on the host.
      history: the finished epochs' entries; each epoch finished here is appended.
      last_good_step: the step of the latest checkpoint, None if there is none.

    Returns:
      ``(state, step)``: the replicated final state and its step.

    Raises:
      Interrupted: SIGINT or SIGTERM arrived; a checkpoint of the step reached was saved.
      NonFiniteLossError: NaN/Inf in training or validation; nothing was saved.
    """
    step = int(state.step)
    start_epoch, start_batch = divmod(step, job.steps_per_epoch)
    state, sums = job.data_parallel.replicate(state), job.data_parallel.replicate(sums)
    # Leaving the block waits for the last asynchronous save, also when NaN or a signal ends the
    # run: a process that exits before the save is written would lose its last good checkpoint.
    with (
        SignalFlag() as interrupt,
        job.checkpoints.saves_finished(),
        contextlib.closing(job.tensorboard),
    ):
        for epoch in range(start_epoch, job.config.num_epochs):
            state, sums, host_sums, step, seconds = train_epoch(
                job,
                state,
                sums,
                epoch=epoch,
                start_batch=start_batch,
                interrupt=interrupt,
                last_good_step=last_good_step,
            )
            check_finite(epoch, last_good_step, sums=host_sums)
            if step % job.steps_per_epoch:  # A signal stopped the epoch: save where it stopped.
                state_now = job.data_parallel.fetch(state)
                job.checkpoints.save(step, {"state": state_now, "sums": host_sums})
            else:
                finish_epoch(
                    job,
                    state,
                    host_sums,
                    history,
                    epoch=epoch,
                    seconds=seconds,
                    start_batch=start_batch,
                    last_good_step=last_good_step,
                )
                sums = job.data_parallel.replicate(train_steps.zero_metrics())
                last_good_step, start_batch = step, 0
            interrupt.signum = distributed.stop_everywhere(interrupt.signum)
            if interrupt.signum is not None:  # The one way out on SIGINT/SIGTERM.
                job.checkpoints.wait()
                raise Interrupted(interrupt.signum, step, epoch, job.checkpoints.directory)

    return state, step


def num_steps_per_epoch(config: ml_collections.ConfigDict, num_train: int) -> int:
    """Optimizer steps per epoch (the remainder is dropped).

    Raises:
      configuration.ConfigError: fewer training reviews than ``batch_size``.
    """
    steps_per_epoch = batching.num_train_batches(num_train, config.batch_size)
    if steps_per_epoch == 0:
        raise configuration.ConfigError(
            f"config.batch_size={config.batch_size} is not allowed: at most the {num_train} "
            f"training reviews (max_examples={config.max_examples}, "
            f"validation_fraction={config.validation_fraction})"
        )
    return steps_per_epoch


def evaluate_on_test(job: Job, state, best_step: int | None) -> dict:
    """Test loss and accuracy of ``state`` once (all None when ``evaluate_test`` is False)."""
    if not job.config.evaluate_test:  # Tuning on validation: test stays unseen until chosen.
        logging.info("test not evaluated (evaluate_test=False; checkpoint step %s)", best_step)
        return {"loss": None, "accuracy": None, "count": 0}
    metrics = job.evaluate(state, "test")
    logging.info(
        "test loss %.4f acc %.4f (%d reviews, checkpoint step %s)",
        metrics["loss"],
        metrics["accuracy"],
        metrics["count"],
        best_step,
    )
    return metrics
