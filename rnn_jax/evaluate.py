"""Evaluates a saved run without training: ``python -m rnn_jax.evaluate --workdir=W``.

Restores the run's best checkpoint, rebuilds its data from its ``config.json`` (the same
vocabulary and split, from the cache when present), and prints loss and accuracy of the chosen
split over every example exactly once.
"""

import json
import sys

from absl import app, flags

from rnn_jax import inference, parallel, train
from rnn_jax.input_pipeline import DataNotFoundError

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of a training run.")
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "validation", "test"], "Split to evaluate.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    try:
        run = inference.load_run(_WORKDIR.value)
        data = train.load_data(run.config)
    except (inference.RunNotFoundError, DataNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    split = data.split(_SPLIT.value)
    if not len(split["label"]):
        print(
            f"error: the run has no {_SPLIT.value} split (validation_fraction="
            f"{run.config.validation_fraction}); allowed here: --split=train or --split=test",
            file=sys.stderr,
        )
        sys.exit(1)
    p_eval_step = parallel.pmap_step(train.eval_step, donate_state=False)
    metrics = train.evaluate(
        p_eval_step,
        parallel.replicate(run.state),
        split,
        run.config.eval_batch_size,
        run.config.bucket_width,
        run.config.padding,
    )
    print(json.dumps({"split": _SPLIT.value, "step": run.step, **metrics}))


if __name__ == "__main__":
    app.run(main)
