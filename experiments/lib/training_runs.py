"""The training runs a script trains or reads.

A script gets configs from ``make_config`` and trains them with ``run``: a finished workdir is
reused, so a rerun only fills gaps. A workdir is read through ``rnn_jax.training.workdir``, never
the trainer, so a script that only reads runs does not import it. Tables, figures and
``meta.json`` are ``experiments.lib.reporting``'s.
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import ml_collections

from experiments.lib.flags import QUICK_FIELDS, QUICK_LIMITS


@dataclasses.dataclass
class RunResult:
    """A finished training run: its config and what it left in its workdir."""

    name: str
    config: ml_collections.ConfigDict
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    workdir: Path


def make_config(
    base: ml_collections.ConfigDict, args: argparse.Namespace, **overrides
) -> ml_collections.ConfigDict:
    """A copy of ``base`` set up for this invocation.

    Order matters: ``--quick`` shrinking, then an explicit ``--epochs``, then ``overrides`` (what
    an experiment varies, which must survive ``--quick``).
    """
    config = ml_collections.ConfigDict(base.to_dict())
    config.data_dir = args.data_dir
    config.cache_dir = args.cache_dir
    config.progress_bar = not args.quick and sys.stderr.isatty()
    if args.quick:
        for field, limit in QUICK_LIMITS.items():
            config[field] = min(config[field], limit)
        config.update(QUICK_FIELDS)
    if getattr(args, "epochs", None):
        config.num_epochs = args.epochs
    config.update(overrides)
    return config


# Names of the runs this process reused instead of training; a report's run time says so.
REUSED_RUNS: list[str] = []


def run(name: str, config: ml_collections.ConfigDict, workdir: Path) -> RunResult:
    """Trains ``config`` in ``workdir``, or reuses the finished run already there.

    A workdir whose ``summary.json`` exists and whose config matches is read, not retrained. An
    unfinished one is resumed by ``train_and_evaluate``, which also refuses a workdir holding
    another config (rerun with another ``--workdirs`` then).
    """
    # The trainer imports TensorFlow (tensorboard): only scripts that train pay for it.
    from rnn_jax.training import train

    if is_finished(config, workdir):
        print(f"[{name}] reusing the finished run in {workdir}", flush=True)
        REUSED_RUNS.append(name)
    elif trained_epochs(workdir) >= config.num_epochs:  # Only test evaluated (or skipped).
        print(f"[{name}] reusing the trained run in {workdir}; evaluating it", flush=True)
        train.train_and_evaluate(config, str(workdir))
        REUSED_RUNS.append(name)
    else:
        print(f"[{name}] training in {workdir} ({config.num_epochs} epochs)", flush=True)
        train.train_and_evaluate(config, str(workdir))
    return read_run(name, config, workdir)


def read_run(name: str, config: ml_collections.ConfigDict, workdir: Path) -> RunResult:
    """The finished run of ``config`` in ``workdir``, as ``run`` returns it."""
    return RunResult(
        name=name,
        config=config,
        summary=read_json(workdir / "summary.json"),
        history=read_json(workdir / "history.json"),
        workdir=workdir,
    )


def trained_epochs(workdir: Path) -> int:
    """Epochs the run in ``workdir`` has finished (0 without one)."""
    path = workdir / "history.json"
    return len(read_json(path)) if path.exists() else 0


def is_finished(config: ml_collections.ConfigDict, workdir: Path) -> bool:
    """Whether ``workdir`` holds a finished run of ``config`` (same numbers, same epochs).

    Raises:
      RuntimeError: the finished run there has more epochs than asked for; resuming cannot
        shorten it, and silently reporting the longer run would mislabel the results.
    """
    from rnn_jax.training import workdir as workdirs

    if not (workdir / "summary.json").exists():
        return False
    stored = workdirs.read_config(str(workdir))
    new = config.to_dict()
    # A run tuned with evaluate_test=False has no test result to report: it is not finished for
    # a config that asks for one (train_and_evaluate then tests it without training again).
    ignored = workdirs.RESUMABLE_FIELDS - {"num_epochs", "evaluate_test"}
    changed = {
        k for k in set(stored) | set(new) if k not in ignored and stored.get(k) != new.get(k)
    }
    if changed == {"num_epochs"} and stored["num_epochs"] > new["num_epochs"]:
        raise RuntimeError(
            f"{workdir} holds a finished run of {stored['num_epochs']} epochs, "
            f"{new['num_epochs']} asked for: pass another --workdirs or --epochs"
        )
    # Fewer epochs stored: train_and_evaluate resumes it; another difference: it refuses.
    return not changed


# ----------------------------------------------------------------------------------------------
# Workdir files.


def read_json(path: Path) -> Any:
    """A JSON file a run wrote (``summary.json``, ``history.json``)."""
    with open(path) as f:
        return json.load(f)


def read_config(workdir: Path) -> ml_collections.ConfigDict:
    """The config a training run in ``workdir`` was started with."""
    from rnn_jax.training import workdir as workdirs

    return ml_collections.ConfigDict(workdirs.read_config(str(workdir)))
