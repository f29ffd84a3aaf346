"""Where a run picks up: the latest checkpoint when it resumes, the best one when it tests."""

from absl import logging

from rnn_jax.training import distributed, parallel, train_steps
from rnn_jax.training.checkpointing import Checkpoints, NoUsableCheckpointError


def resume(checkpoints: Checkpoints, state):
    """The latest checkpoint's state and running sums, if there is one.

    Returns:
      ``(state, sums, last_good_step)``: the fresh ``state``, zero sums and None when the
      workdir holds no checkpoint.
    """
    _, restored = checkpoints.restore_latest({"state": state, "sums": train_steps.zero_metrics()})
    # A read error on one host only would make the processes resume from different steps.
    distributed.check_same_everywhere(
        "the restored checkpoint step", None if restored is None else int(restored["state"].step)
    )
    if restored is None:
        return state, train_steps.zero_metrics(), None
    step = int(restored["state"].step)
    logging.info("Resumed from checkpoint step %d", step)
    return restored["state"], restored["sums"], step


def restore_best(checkpoints: Checkpoints, data_parallel: parallel.DataParallel, state, step: int):
    """The replicated state of the checkpoint best on validation (without validation: the last).

    Args:
      checkpoints: the run's checkpoints.
      data_parallel: places the restored state as ``state`` is placed.
      state: the final, replicated state.
      step: its step.

    Returns:
      ``(state, best_step)``; the final ``state`` and ``step`` when that is the best, or when
      the best checkpoint fails to restore (warned already; the final state is still good).
    """
    best_step = checkpoints.best_step()
    if best_step is None or best_step == step:
        return state, best_step
    try:
        _, best = checkpoints.restore_first(
            [best_step], {"state": data_parallel.fetch(state), "sums": train_steps.zero_metrics()}
        )
    except NoUsableCheckpointError:
        return state, step
    return data_parallel.replicate(best["state"]), best_step
