"""The flags every experiment script has, and where its results and training runs go.

A script builds its parser with ``make_parser`` and reads it with ``parse``, which fills in the
default folders (``--quick`` runs apart from full ones) and makes the CPU devices the default
config asks for. ``QUICK_LIMITS`` and ``QUICK_FIELDS`` are what ``--quick`` shrinks a config to
(``experiments.lib.training_runs.make_config`` applies them).
"""

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

EXPERIMENTS_DIR = Path(__file__).resolve().parents[1]
# Quick runs go elsewhere so they can never overwrite (or be mistaken for) the full results.
RESULTS_DIR = EXPERIMENTS_DIR / "results"
QUICK_RESULTS_DIR = EXPERIMENTS_DIR / "results_quick"
WORKDIRS = Path("runs") / "experiments"
QUICK_WORKDIRS = Path("runs") / "experiments_quick"

# --quick: a smoke run of the real pipeline, seconds per model on 2 cores.
QUICK_LIMITS = {
    "max_len": 32,
    "hidden_size": 16,
    "embed_dim": 16,
    "vocab_size": 1000,
    "ngram_buckets": 4096,
}
QUICK_FIELDS = {
    "max_examples": 256,
    "num_epochs": 1,
    "batch_size": 32,
    "eval_batch_size": 128,
    "log_every_steps": 10,
}


def make_parser(
    name: str,
    description: str,
    *,
    data: bool = True,
    training: bool = True,
    workdirs_of: str | None = None,
):
    """The flags every script has (``--quick``, ``--out``), plus data and training flags.

    Args:
      name: the script's name; results go to ``experiments/results/<name>``.
      description: the script's one-line purpose, shown by ``--help``.
      data: add ``--data-dir`` and ``--cache-dir`` (the script reads IMDB).
      training: add ``--workdirs`` and ``--epochs`` (the script trains models).
      workdirs_of: the script whose training runs this one reads (default: its own).
    """
    workdirs_of = workdirs_of or name
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{name}", description=description)
    parser.set_defaults(name=name, workdirs_of=workdirs_of)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny smoke run (256 reviews, short sequences, 1 epoch); results go to "
        "experiments/results_quick/ unless --out is given",
    )
    parser.add_argument("--out", type=Path, help=f"results folder (default results/{name})")
    if data:
        parser.add_argument(
            "--data-dir", default="", help="tfds data folder (default: $TFDS_DATA_DIR)"
        )
        parser.add_argument(
            "--cache-dir", default="", help="IMDB array cache (default: ~/.cache/rnn_jax)"
        )
    if training:
        parser.add_argument(
            "--workdirs",
            type=Path,
            help=f"training runs folder (default {WORKDIRS}/{workdirs_of}); finished runs are "
            "reused",
        )
        parser.add_argument("--epochs", type=int, help="training epochs (overrides the default)")
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parses ``argv`` (default ``sys.argv[1:]``) and fills in the default folders."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if args.out is None:
        args.out = (QUICK_RESULTS_DIR if args.quick else RESULTS_DIR) / args.name
    if getattr(args, "workdirs", "absent") is None:
        args.workdirs = default_workdirs(args.workdirs_of, args.quick)
    use_cpu_devices(args.quick, getattr(args, "cpu_devices", None))
    return args


def use_cpu_devices(quick: bool, requested: int | None = None) -> None:
    """Makes the CPU devices ``rnn_jax.main`` makes for the default config (``cpu_devices``).

    Args:
      quick: ``--quick`` (its batch sizes, else the default config's, which every experiment
        keeps).
      requested: a device count other than the default config's (0: one per core).

    A script called after JAX has started (from a test) keeps the devices it has.
    """
    from configs import default
    from rnn_jax.training import parallel

    config = default.get_config()
    sizes = QUICK_FIELDS if quick else config
    count = config.cpu_devices if requested is None else requested
    parallel.use_cpu_devices(count, (sizes["batch_size"], sizes["eval_batch_size"]))


def default_workdirs(name: str, quick: bool) -> Path:
    """Where script ``name`` keeps its training runs (quick runs apart from full ones)."""
    return (QUICK_WORKDIRS if quick else WORKDIRS) / name


def file_stem(cell: str, cell_kwargs: str = "") -> str:
    """A cell, and its constructor arguments if any, as a safe file name.

    How every study names a run's files and a card's folder: ``module:Class`` and the JSON of
    the arguments keep only letters, digits and underscores.
    """
    stem = re.sub(r"[^A-Za-z0-9_]+", "_", cell)
    kwargs = re.sub(r"[^A-Za-z0-9_.]+", "_", cell_kwargs).strip("_")
    return f"{stem}__{kwargs}" if kwargs else stem


def add_cell_kwargs(parser: argparse.ArgumentParser, applies_to: str) -> None:
    """The ``--kwargs JSON`` flag (a cell's constructor arguments, as rnn_jax.testing takes)."""
    parser.add_argument(
        "--kwargs",
        default="",
        help=f"constructor arguments as JSON for {applies_to}, e.g. "
        "'{\"decay_range\": [0.5, 0.99]}' (a sweep: one invocation per value)",
    )


def check_cell_kwargs(parser: argparse.ArgumentParser, text: str) -> None:
    """Stops with one line (exit 2) when ``--kwargs`` is not a JSON object of arguments."""
    from rnn_jax.cells import parse_cell_kwargs

    try:
        parse_cell_kwargs(text)
    except ValueError as error:
        parser.error(f"--kwargs: {error}")
