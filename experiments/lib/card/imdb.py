"""The card's IMDB runs: a cell at the course's settings, one run per seed, kept as records.

The course's settings are ``configs/lstm.py`` (the shootout's: vocabulary 10,000, 200 tokens,
embedding and hidden 128, Adam with cosine decay, 5 epochs) with the cell swapped in, its own
default activation and its constructor arguments, at ``seed``. A run trains through
``experiments.lib.training_runs`` (the shootout's training function) into its workdir, so a
killed run resumes; once finished, its record goes to ``<store>/cards/imdb_runs/`` and a later
card reads it back when the config (every field but where files live) and ``RECORD_VERSION``
are the same, and trains again otherwise.
"""

import dataclasses
import json
from pathlib import Path
from typing import Any

import ml_collections

from configs import lstm
from experiments.lib import training_runs
from experiments.lib.flags import file_stem
from experiments.lib.lab.control import cell_spec
from rnn_jax.data.files import write_json

RECORD_VERSION = 1
# Where files live: not part of what a run computes.
PLACES = ("data_dir", "cache_dir", "progress_bar")


@dataclasses.dataclass(frozen=True)
class RunKey:
    """An IMDB run of the card: a cell with its arguments, at a seed."""

    cell: str
    seed: int
    cell_kwargs: str = ""

    def name(self) -> str:
        return f"{file_stem(self.cell, self.cell_kwargs)}__s{self.seed}"


def config_of(key: RunKey, args) -> ml_collections.ConfigDict:
    """The course's settings for the key's cell and seed (``--quick`` shrinks them)."""
    base = lstm.get_config()
    base.update(cell=cell_spec(key.cell), cell_kwargs=key.cell_kwargs, activation="")
    return training_runs.make_config(base, args, seed=key.seed)


def _computing(config: ml_collections.ConfigDict) -> dict[str, Any]:
    return {k: v for k, v in config.to_dict().items() if k not in PLACES}


def read_back(path: Path, config: ml_collections.ConfigDict) -> dict[str, Any] | None:
    """The record at ``path`` if it is a run of ``config`` under this version, else None."""
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    if record.get("version") != RECORD_VERSION or record.get("config") != _computing(config):
        return None
    return record


def run(key: RunKey, args, log=print) -> dict[str, Any]:
    """The run's record: read from the store if it finished with this config, else trained.

    ``args``: the card's flags (``store``, ``workdirs``, ``quick``, ``data_dir``, ``cache_dir``).
    """
    config = config_of(key, args)
    path = Path(args.store) / "cards" / "imdb_runs" / f"{key.name()}.json"
    record = read_back(path, config)
    if record is not None:
        return record
    result = training_runs.run(key.name(), config, Path(args.workdirs) / "imdb" / key.name())
    s = result.summary
    record = {
        **dataclasses.asdict(key),
        "version": RECORD_VERSION,
        "config": _computing(config),
        **{
            k: s[k]
            for k in (
                "test_accuracy",
                "test_loss",
                "best_val_accuracy",
                "examples_per_second",
                "train_seconds",
                "num_params",
            )
        },
    }
    write_json(path, record)
    log(f"{key.name()}: IMDB test accuracy {record['test_accuracy']:.4f}")
    return record
