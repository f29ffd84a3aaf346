"""What a run trains: a ``Task`` is its data, model, steps, batches and metrics.

``config.task`` names one: ``"sentiment"`` (the IMDB classifier, ``training.sentiment``) or
``"language_model"`` (bytes of the reviews' text, ``training.language_modelling``). The loop in
``training.train`` is the same for both -- checkpoints, resume, validation, the best epoch,
TensorBoard, signals, data parallelism -- and asks the task only what differs.

Some tasks carry state from one step to the next besides the train state: the language model's
streams hand their carries on (``stream``). It is ``SHARDED`` like a batch, saved in every
checkpoint, and empty (``()``) for a task without it.
"""

import abc
from collections.abc import Callable, Iterator
from typing import Any

import ml_collections
import numpy as np

from rnn_jax.training import parallel

TASKS = ("sentiment", "language_model")


class Task(abc.ABC):
    """One kind of training run, as the loop in ``training.train`` drives it.

    Attributes:
      config: the run's config.
      model: the Flax model.
      steps_per_epoch: optimizer steps per epoch.
      unit: what the speed counts (``"examples"``, ``"characters"``): the history's
        ``<unit>_per_second``.
      units_per_step: how many of them one step trains.
      has_stream: whether state passes between steps besides the train state
        (``initial_stream``).
    """

    config: ml_collections.ConfigDict
    model: Any
    steps_per_epoch: int
    unit: str
    units_per_step: int
    has_stream = False  # Whether ``initial_stream`` holds anything.

    @property
    @abc.abstractmethod
    def has_validation(self) -> bool:
        """Whether the run validates (False: a refit on all training data)."""

    @abc.abstractmethod
    def create_state(self):
        """The fresh train state (``train_steps.TrainState``), from ``config.seed``."""

    def initial_stream(self) -> Any:
        """What passes between steps besides the state, on the host, global rows; () if none."""
        return ()

    @abc.abstractmethod
    def compile(self, data_parallel: parallel.DataParallel) -> tuple[Callable, Callable]:
        """``(train_step, eval_step)``, compiled on every device by ``data_parallel``.

        ``train_step(state, sums, stream, batch)`` returns ``(state, sums, stream)``;
        ``eval_step`` is what ``evaluate`` is given.
        """

    @abc.abstractmethod
    def train_batches(self, epoch: int, start_batch: int) -> Iterator[dict[str, np.ndarray]]:
        """The global batches of ``epoch`` from ``start_batch`` on (a function of the seed)."""

    @abc.abstractmethod
    def evaluate(
        self, eval_step: Callable, data_parallel: parallel.DataParallel, state, split: str
    ) -> dict[str, float]:
        """``loss``, ``accuracy`` and ``count`` (and the task's own measures) on a split."""

    def epoch_metrics(self, prefix: str, metrics: dict[str, float] | None) -> dict[str, Any]:
        """A history entry's fields for normalized ``metrics`` (None: not measured)."""
        metrics = metrics or {}
        return {f"{prefix}_{k}": metrics.get(k) for k in ("loss", "accuracy")}

    def validation_metrics(self, entry: dict[str, Any]) -> dict[str, float]:
        """What a checkpoint is ranked by (``checkpointing.ranking``), from its epoch's entry."""
        return {"val_accuracy": entry["val_accuracy"], "val_loss": entry["val_loss"]}

    @abc.abstractmethod
    def summary(
        self, history: list[dict], test: dict, num_params: int, best_step: int | None
    ) -> dict[str, Any]:
        """The run's ``summary.json`` record."""

    def describe(self, params) -> str:
        """The model in words, for the log."""
        del params
        return repr(self.model)

    def write_files(self, workdir: str) -> None:
        """Files the task adds to the workdir (process 0 only)."""
        del workdir
