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
        if _SPLIT.value == "validation" and not run.config.validation_fraction:
            sys.exit(
                "error: the run has no validation split (validation_fraction=0: it trained on "
                "all training reviews); allowed here: --split=train or --split=test"
            )
        data = train.load_data(run.config)
    except (inference.RunNotFoundError, DataNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    p_eval_step = parallel.pmap_step(train.eval_step, donate_state=False)
    metrics = train.evaluate(
        p_eval_step,
        parallel.replicate(run.state),
        data.split(_SPLIT.value),
        run.config.eval_batch_size,
        run.config.bucket_width,
        run.config.padding,
    )
    print(json.dumps({"split": _SPLIT.value, "step": run.step, **metrics}))


if __name__ == "__main__":
    app.run(main)
