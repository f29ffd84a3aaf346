"""The shootout's cells, their configs and training runs, for every script that reads them.

``python -m experiments.shootout`` trains one run per cell of ``CONFIGS`` into
``<workdirs>/<cell>``; ``gradients``, ``embeddings``, ``schedule``, ``bucketing`` and
``keras_twin`` start from the same configs or read those runs, through this module.
"""

import argparse
from pathlib import Path

from configs import gru, lstm, mingru, minlstm, rglru, rnn
from experiments.lib import training_runs
from experiments.lib.reporting import cell_label

# The course's three cells, then those linear in h, each with its config (rnn_jax.cells.CELLS
# names and labels them).
CONFIGS = {
    "rnn": rnn,
    "lstm": lstm,
    "gru": gru,
    "mingru": mingru,
    "minlstm": minlstm,
    "rglru": rglru,
}
COURSE = ("rnn", "lstm", "gru")  # The cells of the course (and of Keras).
# The course's Keras test accuracies (same data, cells, sizes; its own split and seed).
COURSE_TEST_ACCURACY = {"rnn": 0.8124, "lstm": 0.8643, "gru": 0.8690}


def config_of(cell: str):
    """The shootout's config of ``cell``: its own, else the LSTM's with ``cell`` swapped in.

    Any other cell (a registered name or ``module:Class``) trains at the course's settings.
    """
    if cell in CONFIGS:
        return CONFIGS[cell].get_config()
    config = lstm.get_config()
    config.cell = cell
    return config


def workdir_name(cell: str) -> str:
    """The workdir of ``cell`` under ``--workdirs`` (``a.b:Cell`` -> ``a.b.Cell``)."""
    return cell.replace(":", ".")


def run_cell(cell: str, args: argparse.Namespace) -> training_runs.RunResult:
    """Trains (or reuses) the shootout run of ``cell`` in ``args.workdirs / workdir_name(cell)``.

    Other scripts call this too (with their own ``args``, whose ``workdirs`` point at the
    shootout's), so a missing shootout run is trained exactly as the shootout would train it.
    """
    config = training_runs.make_config(config_of(cell), args)
    return training_runs.run(cell_label(cell), config, args.workdirs / workdir_name(cell))


def finished_workdir(cell: str, args: argparse.Namespace) -> Path:
    """The shootout's workdir of ``cell`` for scripts that read it, trained first if missing.

    A finished run is used whatever its epochs (readers do not pass the shootout's ``--epochs``,
    and must not extend a run behind its back).
    """
    workdir = args.workdirs / cell
    if not (workdir / "summary.json").exists():
        run_cell(cell, args)
    return workdir
