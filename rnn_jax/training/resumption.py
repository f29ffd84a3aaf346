"""Where a run picks up: the latest checkpoint when it resumes, the best one when it tests."""

from absl import logging

from rnn_jax.training import distributed, parallel
from rnn_jax.training.checkpointing import Checkpoints, NoUsableCheckpointError


def resume(checkpoints: Checkpoints, fresh: dict) -> tuple[dict, int | None]:
    """The latest checkpoint's item, if there is one.

    Args:
      checkpoints: the run's checkpoints.
      fresh: what a new run starts from, on the host, and the template a checkpoint restores
        into: ``state``, ``sums`` (zero) and the task's ``stream`` if it has one.

    Returns:
      ``(item, last_good_step)``: ``fresh`` and None when the workdir holds no checkpoint.
    """
    _, restored = checkpoints.restore_latest(fresh)
    # A read error on one host only would make the processes resume from different steps.
    distributed.check_same_everywhere(
        "the restored checkpoint step", None if restored is None else int(restored["state"].step)
    )
    if restored is None:
        return fresh, None
    step = int(restored["state"].step)
    logging.info("Resumed from checkpoint step %d", step)
    return restored, step


def restore_best(
    checkpoints: Checkpoints, data_parallel: parallel.DataParallel, state, step: int, fresh: dict
):
    """The placed state of the checkpoint best on validation (without validation: the last).

    Args:
      checkpoints: the run's checkpoints.
      data_parallel: places the restored state as ``state`` is placed.
      state: the final, placed state.
      step: its step.
      fresh: a checkpoint item of this run on the host, the template to restore into.

    Returns:
      ``(state, best_step)``; the final ``state`` and ``step`` when that is the best, or when
      the best checkpoint fails to restore (warned already; the final state is still good).
    """
    best_step = checkpoints.best_step()
    if best_step is None or best_step == step:
        return state, best_step
    try:
        _, best = checkpoints.restore_first([best_step], fresh)
    except NoUsableCheckpointError:
        return state, step
    return data_parallel.replicate(best["state"]), best_step
