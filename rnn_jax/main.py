"""Command line entry: ``python -m rnn_jax.main --config=configs/lstm.py [--workdir=runs/lstm]``.

Intentionally kept short: the logic lives in ``train.py`` so it can be imported and tested.
Errors a user can fix (bad config value, missing data, unusable workdir, NaN loss) end in one
line on stderr and a non-zero exit code, not a traceback.
"""

import logging as std_logging
import os
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from rnn_jax import parallel, train
from rnn_jax.checkpointing import NoUsableCheckpointError
from rnn_jax.configuration import ConfigError
from rnn_jax.input_pipeline import DataNotFoundError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/lstm.py.", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Where the run's files go (default: runs/<config file name>)."
)
flags.mark_flags_as_required(["config"])

# Exit codes: 2 for a config value that is not allowed (as for a bad flag), 1 for other
# problems the user can fix, 128 + signal number when interrupted (checkpoint saved).
USER_ERRORS = (
    DataNotFoundError,
    train.WorkdirError,
    train.NonFiniteLossError,
    NoUsableCheckpointError,
)


class _QuietLibraries:
    """Drops INFO chatter of Orbax (several lines per save) from the absl log; keeps warnings."""

    def filter(self, record) -> bool:
        return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def default_workdir() -> str:
    config_file = config_flags.get_config_filename(flags.FLAGS["config"])
    return os.path.join("runs", os.path.splitext(os.path.basename(config_file))[0])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.get_absl_logger().addFilter(_QuietLibraries())
    import tensorflow as tf  # Only to keep TF (tfds, summaries) off the accelerators JAX uses.

    tf.config.set_visible_devices([], "GPU")
    parallel.maybe_initialize_distributed()
    logging.info(
        "JAX process %d/%d, local devices: %s",
        jax.process_index(),
        jax.process_count(),
        jax.local_devices(),
    )
    workdir = _WORKDIR.value or default_workdir()
    try:
        train.train_and_evaluate(_CONFIG.value, workdir)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except train.Interrupted as error:
        print(f"interrupted: {error}", file=sys.stderr)
        sys.exit(128 + error.signum)


if __name__ == "__main__":
    app.run(main)
