"""The training loop: ``train_and_evaluate(config, workdir)`` trains, validates and tests a model.

It reads top to bottom as the job does: check the config, prepare the workdir (``workdir``),
read the data and build the model of the task the config names (``tasks``: the IMDB classifier
in ``sentiment``, the byte-level language model in ``language_modelling``), create the train
state, resume from the latest checkpoint (``resumption``, ``checkpointing``), train epoch by
epoch on every device (``parallel``: ``pmap`` or ``shard_map``, as the config says), and test
the checkpoint best on validation.

Running the same command on the same workdir resumes from the latest checkpoint. Every source of
randomness is a function of the seed and the step (data order of ``(seed, epoch)``, dropout keys
of ``(seed, step)``), and the running metric sums (and a language model's stream carries) are
checkpointed with the state, so a resumed run ends with the same metrics as an uninterrupted
one (bitwise on CPU).
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

from rnn_jax.data import batching
from rnn_jax.models import count_params
from rnn_jax.training import configuration, distributed, parallel, tasks, train_steps
from rnn_jax.training import workdir as workdirs
from rnn_jax.training.checkpointing import Checkpoints
from rnn_jax.training.interrupts import Interrupted, SignalFlag
from rnn_jax.training.language_modelling import LanguageModellingTask
from rnn_jax.training.optimizers import create_learning_rate_fn
from rnn_jax.training.resumption import restore_best, resume
from rnn_jax.training.sentiment import SentimentTask


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or Inf."""


@dataclasses.dataclass
class Job:
    """What stays the same for a whole run: its config, task, compiled steps and outputs."""

    config: ml_collections.ConfigDict
    workdir: str
    task: tasks.Task  # The data, model, batches and metrics (sentiment or language model).
    learning_rate_fn: Callable[[int], Any]
    data_parallel: parallel.DataParallel  # Places arrays and reads them back (pmap or shard_map).
    train_step: Callable  # The task's step, compiled by data_parallel.
    eval_step: Callable
    checkpoints: Checkpoints
    tensorboard: Any  # tensorboardX.SummaryWriter (workdirs.open_tensorboard)
    writer: bool  # This process writes the workdir's files (process 0 of a multi-host run).

    @property
    def steps_per_epoch(self) -> int:
        return self.task.steps_per_epoch

    @property
    def has_validation(self) -> bool:
        return self.task.has_validation  # False: a refit on all of train.

    def evaluate(self, state, split: str) -> dict[str, float]:
        """The task's metrics on a split."""
        return self.task.evaluate(self.eval_step, self.data_parallel, state, split)

    def checkpoint(self, state, sums, stream) -> dict[str, Any]:
        """What a checkpoint holds, on the host (no device axis): state, sums, and the stream."""
        item = {"state": self.data_parallel.fetch(state), "sums": sums}
        if self.task.has_stream:
            item["stream"] = self.data_parallel.gather(stream)
        return item


def create_task(config: ml_collections.ConfigDict) -> tasks.Task:
    """The task ``config.task`` names, its data read and its model built."""
    if config.task == "language_model":
        return LanguageModellingTask(config)
    return SentimentTask(config)


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
    stream,
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
      ``(state, sums, stream, host_sums, step, seconds)``: the placed state, sums and stream,
      a host copy of the sums, the global step reached and the seconds trained.
    """
    config, steps_per_epoch = job.config, job.steps_per_epoch
    batches = job.task.train_batches(epoch, start_batch)
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
        batch = job.data_parallel.shard(batching.shard_for_process(batch, *process))
        parallel.wait_if_cpu_devices(sums)  # The previous step (see there).
        state, sums, stream = job.train_step(state, sums, stream, batch)
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
    return state, sums, stream, host_sums, step, seconds


def finish_epoch(
    job: Job,
    state,
    stream,
    host_sums: dict,
    history: list[dict],
    *,
    epoch: int,
    seconds: float,
    start_batch: int,
    last_good_step: int | None,
) -> None:
    """After an epoch's last step: validate, log, save the checkpoint and ``history.json``."""
    config, step, task = job.config, (epoch + 1) * job.steps_per_epoch, job.task
    val = None  # A refit on all of train has no validation.
    if job.has_validation:
        val = job.evaluate(state, "validation")
        check_finite(epoch, last_good_step, val_loss=val["loss"], step=step)
    trained = (job.steps_per_epoch - start_batch) * task.units_per_step
    entry = {
        "epoch": epoch + 1,
        "step": step,
        **task.epoch_metrics("train", train_steps.normalize(host_sums)),
        **task.epoch_metrics("val", val),
        "epoch_seconds": seconds,
        f"{task.unit}_per_second": trained / seconds,
        "learning_rate": float(job.learning_rate_fn(step - 1)),  # The epoch's last step's.
        "resumed_mid_epoch": start_batch > 0,
    }
    history.append(entry)
    workdirs.log_epoch(entry, config.num_epochs, job.tensorboard)
    job.checkpoints.save(
        step,
        job.checkpoint(state, jax.device_get(train_steps.zero_metrics()), stream),
        val_metrics=task.validation_metrics(entry) if job.has_validation else None,
    )
    if job.writer:
        workdirs.write_history(job.workdir, history)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains (or resumes), evaluates the best checkpoint on test, writes the workdir.

    "Best" is by validation (``checkpointing.ranking``); a run without validation
    (``validation_fraction=0``, the refit of a config chosen on validation) tests its last
    checkpoint.

    Args:
      config: a config with every field of ``configs/default.py``; ``config.task`` says what
        is trained (``tasks.TASKS``).
      workdir: output directory; an existing run there is resumed.

    Returns:
      The summary written to ``summary.json``.
    """
    configuration.validate(config, jax.device_count())
    writer = distributed.is_writer()
    workdirs.prepare_workdir(config, workdir, write=writer)
    task = create_task(config)
    if writer:
        task.write_files(workdir)
    state = task.create_state()
    num_params = count_params(state.params)
    logging.info("%s", task.describe(state.params))
    data_parallel = parallel.create(config.parallelism)
    logging.info("%s", data_parallel.describe())
    train_step, eval_step = task.compile(data_parallel)
    job = Job(
        config,
        workdir,
        task,
        create_learning_rate_fn(config, task.steps_per_epoch),
        data_parallel=data_parallel,
        train_step=train_step,
        eval_step=eval_step,
        checkpoints=Checkpoints(
            os.path.join(workdir, "checkpoints"),
            config.keep_checkpoints,
            track_best=task.has_validation,
            move_damaged=writer,
        ),
        tensorboard=workdirs.open_tensorboard(workdir, write=writer),
        writer=writer,
    )
    fresh = {"state": state, "sums": train_steps.zero_metrics()}
    if task.has_stream:
        fresh["stream"] = task.initial_stream()
    restored, last_good_step = resume(job.checkpoints, fresh)
    history = workdirs.load_history(
        workdir, before_epoch=int(restored["state"].step) // task.steps_per_epoch
    )

    state, step = train_epochs(job, restored, history, last_good_step)
    state, best_step = restore_best(job.checkpoints, job.data_parallel, state, step, fresh)
    job.checkpoints.close()
    test_metrics = evaluate_on_test(job, state, best_step)
    result = task.summary(history, test_metrics, num_params, best_step)
    if writer:
        workdirs.write_summary(workdir, result)
    return result


def train_epochs(job: Job, restored: dict, history: list[dict], last_good_step: int | None):
    """Trains from the restored step to the last epoch, saving a checkpoint after each epoch.

    Args:
      job: the run.
      restored: the (restored or fresh) checkpoint item on the host: ``state``, its running
        metric ``sums`` of the epoch, and the task's ``stream`` if it has one.
      history: the finished epochs' entries; each epoch finished here is appended.
      last_good_step: the step of the latest checkpoint, None if there is none.

    Returns:
      ``(state, step)``: the placed final state and its step.

    Raises:
      Interrupted: SIGINT or SIGTERM arrived; a checkpoint of the step reached was saved.
      NonFiniteLossError: NaN/Inf in training or validation; nothing was saved.
    """
    placed = job.data_parallel
    step = int(restored["state"].step)
    start_epoch, start_batch = divmod(step, job.steps_per_epoch)
    state, sums = placed.replicate(restored["state"]), placed.replicate(restored["sums"])
    stream = placed.shard(parallel.process_rows(restored.get("stream", ())))
    # Leaving the block waits for the last asynchronous save, also when NaN or a signal ends the
    # run: a process that exits before the save is written would lose its last good checkpoint.
    with (
        SignalFlag() as interrupt,
        job.checkpoints.saves_finished(),
        contextlib.closing(job.tensorboard),
    ):
        for epoch in range(start_epoch, job.config.num_epochs):
            state, sums, stream, host_sums, step, seconds = train_epoch(
                job,
                state,
                sums,
                stream,
                epoch=epoch,
                start_batch=start_batch,
                interrupt=interrupt,
                last_good_step=last_good_step,
            )
            check_finite(epoch, last_good_step, sums=host_sums)
            if step % job.steps_per_epoch:  # A signal stopped the epoch: save where it stopped.
                job.checkpoints.save(step, job.checkpoint(state, host_sums, stream))
            else:
                finish_epoch(
                    job,
                    state,
                    stream,
                    host_sums,
                    history,
                    epoch=epoch,
                    seconds=seconds,
                    start_batch=start_batch,
                    last_good_step=last_good_step,
                )
                sums = placed.replicate(train_steps.zero_metrics())
                last_good_step, start_batch = step, 0
            interrupt.signum = distributed.stop_everywhere(interrupt.signum)
            if interrupt.signum is not None:  # The one way out on SIGINT/SIGTERM.
                job.checkpoints.wait()
                raise Interrupted(interrupt.signum, step, epoch, job.checkpoints.directory)

    return state, step


def evaluate_on_test(job: Job, state, best_step: int | None) -> dict:
    """The task's test metrics of ``state`` once (None values when ``evaluate_test`` is False)."""
    if not job.config.evaluate_test:  # Tuning on validation: test stays unseen until chosen.
        logging.info("test not evaluated (evaluate_test=False; checkpoint step %s)", best_step)
        return {"loss": None, "accuracy": None, "count": 0}
    metrics = job.evaluate(state, "test")
    logging.info(
        "test %s (%d %s, checkpoint step %s)",
        " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "count"),
        metrics["count"],
        "reviews" if job.task.unit == "examples" else job.task.unit,
        best_step,
    )
    return metrics
