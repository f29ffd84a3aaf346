"""Scores finished runs on a split, alone or as an ensemble that averages their probabilities.

``python -m rnn_jax.evaluate --workdir=A [--workdir=B ...]`` is the command line.
"""

import os

import numpy as np

from rnn_jax.data import input_pipeline
from rnn_jax.inference import runs as inference
from rnn_jax.training.workdir import read_config


class EvaluationError(ValueError):
    """The runs cannot be scored on the split asked for; the message says why."""


def metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float | int]:
    """Loss and accuracy of the ensemble that averages its members' probabilities.

    Args:
      logits: <float32>[members, N], each member's logit per review.
      labels: <int>[N], 0 or 1.

    Returns:
      ``loss`` (binary cross-entropy of the mean probability), ``accuracy`` (the mean probability
      above 1/2 for positive reviews) and ``count`` (N). One member scores as ``train.evaluate``.
    """
    logits = np.asarray(logits, np.float64)
    # log(mean_i p_i) without forming p_i, which rounds to 0 or 1 for confident members:
    # log p_i = -log(1 + exp(-z_i)) and log(1 - p_i) = -log(1 + exp(z_i)).
    log_members = np.log(len(logits))
    log_positive = np.logaddexp.reduce(-np.logaddexp(0, -logits), axis=0) - log_members
    log_negative = np.logaddexp.reduce(-np.logaddexp(0, logits), axis=0) - log_members
    positive = labels == 1
    loss = -np.where(positive, log_positive, log_negative)
    correct = (log_positive > log_negative) == positive
    return {
        "loss": float(loss.mean()),
        "accuracy": float(correct.sum() / len(labels)),
        "count": len(labels),
    }


def evaluate(workdirs: list[str], split: str) -> dict:
    """Loss and accuracy on ``split`` of the runs in ``workdirs``, their probabilities averaged.

    Each run is restored as ``inference.load_run`` does (the checkpoint best on validation, else
    the latest), one at a time, and reads its own data, so members may differ in vocabulary or
    length; their reviews are matched by position in the tfds split.

    Args:
      workdirs: training runs' workdirs; one scores that run alone.
      split: ``"train"``, ``"validation"`` or ``"test"``.

    Returns:
      ``metrics`` plus ``steps``, the step of each run's checkpoint.

    Raises:
      EvaluationError: a run has no such split (a refit has no validation), or the runs hold
        different reviews in it (validation depends on ``seed`` and ``validation_fraction``).
      inference.RunNotFoundError, imdb_reader.DataNotFoundError: a run or its data is missing.
    """
    if split == "validation":  # Refused before anything is restored.
        for workdir in workdirs:
            has_config = os.path.exists(os.path.join(workdir, "config.json"))  # Else: load_run.
            if has_config and not read_config(workdir)["validation_fraction"]:
                raise EvaluationError(
                    f"the run in {workdir} has no validation split (validation_fraction=0: it "
                    "trained on all training reviews); allowed here: --split=train or "
                    "--split=test"
                )
    logits, steps, positions, labels = [], [], None, None
    for workdir in workdirs:
        run = inference.load_run(workdir)
        data = input_pipeline.load_imdb_for(run.config)
        order = np.argsort(data.source_index[split])  # Rows in tfds order, to match members.
        if positions is None:
            positions, labels = data.source_index[split][order], data.split(split)["label"][order]
        elif not np.array_equal(data.source_index[split][order], positions):
            raise EvaluationError(
                f"the run in {workdir} holds other {split} reviews than the run in "
                f"{workdirs[0]}; an ensemble needs the same seed, validation_fraction and "
                "max_examples"
            )
        logits.append(inference.predict_split(run, data.split(split))[order])
        steps.append(run.step)
        del run, data  # One member's parameters and arrays in memory at a time.
    return metrics(np.stack(logits), labels) | {"steps": steps}
