"""Orbax checkpoints of a run: the latest few, plus the best on validation (if any).

One ``CheckpointManager`` (current ``args=`` API) holds every checkpoint under
``<workdir>/checkpoints/<step>``. Its preservation policy keeps the ``keep`` most recent steps and
the step that ranks best on validation (``ranking``: the best ``val_accuracy``, ties going to
the lower ``val_loss``; for a language model the lowest ``val_bpc``). Epoch-end saves carry these
metrics; a save made on SIGTERM mid-epoch carries none. Orbax writes each step to a temporary
directory and renames it when complete, and prunes old steps only after the new one is finalized,
so nothing the run needs is deleted before its replacement is safely on disk.

A checkpoint that fails to restore (truncated or damaged files) is moved to
``<workdir>/broken_checkpoints/`` -- never deleted -- and the next older one is tried. A
checkpoint that reads back but holds other arrays than the code expects (a cell edited after the
run saved it) is not damaged: restoring stops with an error naming the difference, and nothing
is moved, so rerunning the code that wrote it still resumes.
"""

import contextlib
import os
import shutil
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging


def ranking(metrics: dict) -> tuple[float, ...]:
    """Higher is better (a checkpoint's validation metrics, as its epoch saved them).

    A language model: the lower validation bits per character. A classifier: the higher
    validation accuracy, then (on ties) the lower validation loss.
    """
    if "val_bpc" in metrics:
        return (-metrics["val_bpc"],)
    return metrics["val_accuracy"], -metrics.get("val_loss", 0.0)  # (Older runs: no loss.)


class NoUsableCheckpointError(RuntimeError):
    """Every checkpoint in the directory failed to restore."""


class CheckpointMismatchError(NoUsableCheckpointError):
    """A checkpoint holds other arrays (names or shapes) than the code restoring it expects."""


class Checkpoints:
    """Saves and restores a run's checkpoints (a pytree ``item`` per step)."""

    def __init__(
        self,
        directory: str,
        keep: int,
        read_only: bool = False,
        track_best: bool = True,
        move_damaged: bool = True,
    ):
        """Opens (or creates) the checkpoint directory.

        Args:
          directory: where the steps live; made absolute, as Orbax requires.
          keep: how many of the most recent steps to keep (the best one is kept as well).
          read_only: only restore (prediction, evaluation): nothing is written or pruned.
          track_best: False for a run without validation: only the latest ``keep`` are kept,
            and ``best_step`` is the latest.
          move_damaged: move a damaged step aside (False: skip it only; every process but one
            of a multi-host run, so that one process moves it).
        """
        self.directory = os.path.abspath(directory)
        self.read_only = read_only
        self.move_damaged = move_damaged and not read_only
        self.broken_directory = os.path.join(os.path.dirname(self.directory), "broken_checkpoints")
        policies = ocp.checkpoint_managers
        keep_policies = [policies.LatestN(n=keep)]
        if track_best:
            keep_policies.append(
                policies.BestN(get_metric_fn=ranking, n=1, keep_checkpoints_without_metrics=False)
            )
        options = ocp.CheckpointManagerOptions(
            preservation_policy=policies.AnyPreservationPolicy(keep_policies),
            # Without best_fn, Orbax 0.12 does not write the metrics to disk, and after a restart
            # BestN would see none and delete the best step. (The policy above decides what to
            # keep; best_fn only turns on writing and reading the metrics.)
            best_fn=ranking if track_best else None,
            best_mode="max",
            # A run killed mid-save leaves a temporary directory; it is not a checkpoint.
            cleanup_tmp_directories=not read_only,
            read_only=read_only,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, item: Any, val_metrics: dict | None = None) -> None:
        """Saves ``item`` as ``step`` (asynchronously); a step already on disk is kept as is.

        Args:
          step: the global train step.
          item: a pytree of arrays (train state and running metric sums).
          val_metrics: the epoch's ``val_accuracy`` and ``val_loss``; None for a mid-epoch save.
        """
        if step in self.manager.all_steps():
            return  # Same seed, same step: the saved one is identical (training is deterministic).
        metrics = None if val_metrics is None else {k: float(v) for k, v in val_metrics.items()}
        self.manager.save(step, args=ocp.args.StandardSave(item), metrics=metrics)

    def wait(self) -> None:
        """Blocks until pending saves are on disk (raises if one failed)."""
        self.manager.wait_until_finished()

    @contextlib.contextmanager
    def saves_finished(self) -> Iterator[None]:
        """On leaving the block, waits for pending saves -- also when an exception leaves it."""
        try:
            yield
        finally:
            self.wait()

    def close(self) -> None:
        self.manager.close()

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def restore(self, step: int, target: Any) -> Any:
        """Restores ``step`` with the structure, dtypes and shapes of ``target``."""
        return self.manager.restore(step, args=ocp.args.StandardRestore(target))

    def restore_latest(self, target: Any) -> tuple[int | None, Any]:
        """Restores the newest checkpoint that reads back (see ``restore_first``).

        Returns:
          ``(step, item)``, or ``(None, None)`` if there is no checkpoint.
        """
        self.wait()
        steps = self.steps()[::-1]
        return self.restore_first(steps, target) if steps else (None, None)

    def restore_first(self, steps: list[int], target: Any) -> tuple[int, Any]:
        """Restores the first of ``steps`` that reads back, skipping damaged ones.

        A damaged step is moved to ``broken_directory`` (never deleted) unless the manager is
        read-only; either way a warning names it.

        Args:
          steps: candidate steps, in order of preference.
          target: a pytree like the saved item (its arrays give shapes and dtypes).

        Returns:
          ``(step, item)``.

        Raises:
          CheckpointMismatchError: a step reads back, but its arrays differ from ``target``'s
            (nothing is moved).
          NoUsableCheckpointError: none of ``steps`` restored.
        """
        for step in steps:
            try:
                return step, self.restore(step, target)
            except Exception as error:  # noqa: BLE001 -- any other failure means "damaged".
                difference = self._difference(step, target)
                if difference:
                    raise CheckpointMismatchError(
                        f"checkpoint step {step} in {self.directory} holds other arrays than "
                        f"this code's model and optimizer ({difference}); nothing was moved: "
                        "resume it with the code that saved it, or train into a new workdir"
                    ) from None
                where = f"moved to {self._move_aside(step)}" if self.move_damaged else "skipped"
                logging.warning(
                    "checkpoint step %d is damaged (%s: %s); %s, trying the next one",
                    step,
                    type(error).__name__,
                    (str(error).splitlines() or [""])[0][:200],
                    where,
                )
        moved = f"; moved to {self.broken_directory}" if self.move_damaged else ""
        raise NoUsableCheckpointError(
            f"no checkpoint in {self.directory} could be restored (tried steps {steps}{moved}); "
            "remove the workdir to start over"
        )

    def _difference(self, step: int, target: Any) -> str:
        """How the arrays saved at ``step`` differ from ``target``'s, by name and shape.

        Returns:
          A short description, or '' when they agree or the step's metadata does not read back
          (then the step is damaged, not different).
        """
        try:
            saved = self.manager.item_metadata(step).tree
            saved = {m.name: tuple(m.shape) for m in jax.tree.leaves(saved)}
        except Exception:  # noqa: BLE001 -- unreadable metadata: damaged.
            return ""
        expected = {
            ".".join(ocp.tree.str_keypath(path)): np.shape(leaf)
            for path, leaf in jax.tree_util.tree_leaves_with_path(target)
        }
        reshaped = [
            f"{name} {saved[name]} vs {expected[name]}"
            for name in sorted(saved.keys() & expected.keys())
            if saved[name] != expected[name]
        ]
        parts = [
            ("missing from the checkpoint", sorted(expected.keys() - saved.keys())),
            ("not in this code", sorted(saved.keys() - expected.keys())),
            ("saved shape vs this code's", reshaped),
        ]
        return "; ".join(
            f"{what}: {', '.join(names[:3])}{' ...' * (len(names) > 3)}"
            for what, names in parts
            if names
        )

    def best_step(self) -> int | None:
        """The kept step that ranks best on validation (see ``ranking``)."""
        return self.manager.best_step()

    def _move_aside(self, step: int) -> str:
        os.makedirs(self.broken_directory, exist_ok=True)
        destination = os.path.join(self.broken_directory, str(step))
        suffix = 0
        while os.path.exists(destination):
            suffix += 1
            destination = os.path.join(self.broken_directory, f"{step}.{suffix}")
        shutil.move(os.path.join(self.directory, str(step)), destination)
        self.manager.reload()
        return destination
