"""Evaluates saved runs without training: ``python -m rnn_jax.evaluate --workdir=W``.

Restores each run's best checkpoint (the latest for a run without validation), rebuilds its data
from its ``config.json`` (the same vocabulary and split, from the cache when present), and prints
loss and accuracy of the chosen split over every example exactly once, as JSON. Several
``--workdir`` flags evaluate their ensemble: the runs' probabilities averaged per review.
"""

import json

from absl import app, flags

from rnn_jax.data.imdb_reader import DataNotFoundError
from rnn_jax.inference import ensemble
from rnn_jax.inference import runs as inference
from rnn_jax.training.workdir import WorkdirError

_WORKDIR = flags.DEFINE_multi_string(
    "workdir", None, "Workdir of a training run; repeat the flag to evaluate an ensemble."
)
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "validation", "test"], "Split to evaluate.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    try:
        metrics = ensemble.evaluate(_WORKDIR.value, _SPLIT.value)
    # WorkdirError: a damaged config.json met before any run is restored (--split=validation).
    except (
        inference.RunNotFoundError,
        DataNotFoundError,
        ensemble.EvaluationError,
        WorkdirError,
    ) as error:
        inference.exit_with_error(f"error: {error}")
    print(json.dumps({"split": _SPLIT.value, **metrics}))


if __name__ == "__main__":
    app.run(main)
