"""The workdir contract: what a run writes besides checkpoints, and when a rerun may resume.

A workdir holds ``config.json`` (the config the run started with), ``vocab.json``,
``history.json`` (one entry per finished epoch), ``summary.json`` (written when the run ends),
TensorBoard events under ``tensorboard/`` and Orbax checkpoints under ``checkpoints/``
(``rnn_jax.checkpointing``). Rerunning the same config on a workdir resumes it; a config that
differs in a field that changes what is trained is refused.
"""

import dataclasses
import json
import math
import os
import tempfile
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from rnn_jax.data import files
from rnn_jax.layers import RecurrenceOptions

# Fields that may change between a run and its resumption: they change no trained parameter
# (eval_batch_size regroups evaluation's float sums: a validation loss may move in its 7th digit;
# another device count averages the gradients in another order and draws dropout per device, so
# the rest of the run follows a nearby trajectory; parallelism changes nothing, bitwise).
# num_epochs may grow only under a constant schedule (a cosine schedule's length depends on it).
RESUMABLE_FIELDS = frozenset(
    {
        "data_dir",
        "cache_dir",
        "progress_bar",
        "log_every_steps",
        "keep_checkpoints",
        "eval_batch_size",
        "num_epochs",
        "evaluate_test",
        "parallelism",
        "cpu_devices",
    }
)

# Fields added after workdirs were first written, with the value that reproduces those runs: a
# config.json without them still resumes, evaluates and predicts as before. Every evaluation
# option (rnn_jax.layers.RecurrenceOptions) is one, with its default: a new option's default
# must be the old behavior, so adding one needs no line here. (lstm_backend: older runs always
# scanned; its default "auto" is the scan wherever cuDNN cannot run, every CPU included. On a
# GPU an older LSTM run resumes through cuDNN: the same function of the same parameters.)
ADDED_FIELDS = {field.name: field.default for field in dataclasses.fields(RecurrenceOptions)} | {
    "bucket_width": 0,
    "ngram_buckets": 0,
    "ngram_order": 2,
    "embed_dropout_tokens": False,
    "evaluate_test": True,
    "compute_dtype": "float32",
    "residual": False,
    "parallelism": "pmap",
    "task": "sentiment",
    "cell_kwargs": "",
    "chunk_length": 128,
    "steps_per_epoch": 0,
}


class WorkdirError(RuntimeError):
    """The workdir cannot be used (not writable, damaged JSON, or a run with another config)."""


def _read_json(path: str, expected: type, consequence: str) -> Any:
    """The JSON value of a file the run wrote; a damaged file is one line, left as it is.

    A file can be damaged by a full disk, a copy cut short, or an editor; it is never rewritten
    or removed here: the user may have a copy, or may choose to do without it.

    Args:
      path: the file.
      expected: ``dict`` (a JSON object) or ``list`` (an array).
      consequence: what the damage means for the run and what to do, for the message.

    Raises:
      WorkdirError: the file is not UTF-8 JSON (empty, truncated, binary) or holds another
        JSON type; the message names the file.
    """
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except ValueError as error:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors.
        problem = "empty" if os.path.getsize(path) == 0 else f"not valid JSON: {error}"
        raise WorkdirError(f"{path} is damaged ({problem}); {consequence}") from None
    if not isinstance(value, expected):
        kinds = {dict: "an object", list: "an array"}
        found = kinds.get(type(value), f"a JSON {type(value).__name__}")
        raise WorkdirError(
            f"{path} is damaged (holds {found}, not {kinds[expected]}); {consequence}"
        )
    return value


def read_config(workdir: str) -> dict[str, Any]:
    """The config a workdir's run was started with (``config.json``), as a dict.

    Fields added to the codebase since (``ADDED_FIELDS``) are filled in with their old behavior.

    Raises:
      WorkdirError: ``config.json`` is damaged. Nothing else says what the checkpoints were
        trained with, so the run can be neither resumed nor used (predict, evaluate).
    """
    return ADDED_FIELDS | _read_json(
        os.path.join(workdir, "config.json"),
        dict,
        "the run can be neither resumed nor used without it: put back a copy, or train again "
        "with a new --workdir",
    )


def resumable_fields(config: ml_collections.ConfigDict) -> frozenset[str]:
    """The fields a resumed run of ``config`` may change (see ``RESUMABLE_FIELDS``)."""
    if config.schedule == "constant":
        return RESUMABLE_FIELDS
    return RESUMABLE_FIELDS - {"num_epochs"}


def prepare_workdir(config: ml_collections.ConfigDict, workdir: str, *, write: bool = True) -> None:
    """Creates the workdir, checks it is writable and holds no run with another config.

    A workdir without checkpoints holds nothing to resume (e.g. a run that stopped on a config
    error or a NaN in its first epoch): its config is replaced.

    Args:
      config: the run's config.
      workdir: the directory.
      write: write ``config.json`` (False: check only; the other processes of a multi-host run).

    Raises:
      WorkdirError: not writable, or its checkpoints belong to a config that differs in a
        field outside ``resumable_fields``; the message names the fields.
    """
    try:
        os.makedirs(workdir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=workdir, prefix=".write_test"):  # One per process.
            pass
    except OSError as error:
        raise WorkdirError(
            f"workdir {workdir!r} is not writable ({error.strerror}); pass --workdir=DIR "
            "with a directory you can write to"
        ) from None
    config_path = os.path.join(workdir, "config.json")
    new = config.to_dict()
    checkpoints = os.path.join(workdir, "checkpoints")
    saved = os.path.isdir(checkpoints) and any(n.isdigit() for n in os.listdir(checkpoints))
    if saved and os.path.exists(config_path):
        old = read_config(workdir)
        changed = sorted(
            k
            for k in set(old) | set(new)
            if k not in resumable_fields(config) and old.get(k) != new.get(k)
        )
        if changed:
            details = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
            raise WorkdirError(
                f"workdir {workdir!r} holds a run with another config ({details}); "
                "use a new --workdir, or the same config to resume"
            )
    if write:
        files.write_json(config_path, new)


def load_history(workdir: str, before_epoch: int) -> list[dict]:
    """Per-epoch history already in the workdir, for epochs a resumed run will not redo.

    Raises:
      WorkdirError: ``history.json`` is damaged while there are finished epochs to keep
        (``before_epoch > 0``): resuming would rewrite it without them, so the run stops and
        the message says how to resume anyway. (A run within its first epoch keeps none of it
        and does not read it.)
    """
    path = os.path.join(workdir, "history.json")
    if before_epoch == 0 or not os.path.exists(path):
        return []
    consequence = (
        "resuming would rewrite it without the finished epochs: put back a copy, or move it "
        "aside to resume without their records (predict and evaluate do not need it)"
    )
    history = _read_json(path, list, consequence)
    if not all(
        isinstance(entry, dict) and isinstance(entry.get("epoch"), int) for entry in history
    ):
        raise WorkdirError(f"{path} is damaged (an entry is not an epoch's record); {consequence}")
    return [entry for entry in history if entry["epoch"] <= before_epoch]


def write_history(workdir: str, history: list[dict]) -> None:
    files.write_json(os.path.join(workdir, "history.json"), history)


def make_summary(
    config: ml_collections.ConfigDict,
    history: list[dict],
    test_metrics: dict,
    num_params: int,
    best_step: int | None,
    *,
    devices: int,
    backend: str,
) -> dict[str, Any]:
    """The ``summary.json`` record of a finished run.

    Args:
      config: the run's config.
      history: every epoch's entry (``history.json``).
      test_metrics: ``loss``, ``accuracy`` (None when test was not evaluated) and ``count``.
      num_params: trainable parameters.
      best_step: the step whose checkpoint was tested.
      devices: devices the run trained on (``jax.device_count()``).
      backend: JAX's backend (``"cpu"``, ``"gpu"``, ``"tpu"``).
    """
    best = next((h for h in history if h["step"] == best_step), None)
    return {
        "cell": config.cell,
        "test_accuracy": test_metrics["accuracy"],
        "test_loss": test_metrics["loss"],
        "test_examples": test_metrics["count"],
        "best_val_accuracy": None if best is None else best["val_accuracy"],
        "best_epoch": None if best is None else best["epoch"],
        "epochs": len(history),
        **speed(history, "examples"),
        "num_params": num_params,
        "devices": devices,
        "backend": backend,
        "parallelism": config.parallelism,
    }


def speed(history: list[dict], unit: str) -> dict[str, float]:
    """Training time and speed over every epoch of ``history``, in the ``unit`` it counts.

    Returns:
      ``train_seconds`` (all epochs), ``seconds_per_epoch`` (the median) and
      ``<unit>_per_second`` (all of them trained, over all the seconds).
    """
    rate = f"{unit}_per_second"
    train_seconds = sum(h["epoch_seconds"] for h in history)
    trained = sum(h[rate] * h["epoch_seconds"] for h in history)
    return {
        "train_seconds": train_seconds,
        "seconds_per_epoch": float(np.median([h["epoch_seconds"] for h in history]))
        if history
        else math.nan,
        rate: trained / train_seconds if train_seconds else math.nan,
    }


def write_summary(workdir: str, summary: dict[str, Any]) -> None:
    files.write_json(os.path.join(workdir, "summary.json"), summary)


def log_epoch(entry: dict, num_epochs: int, tensorboard) -> None:
    """One log line and the TensorBoard scalars (``tensorboard/``) of a finished epoch.

    Every number of ``entry`` but its counters is a scalar (``train_loss``, ``val_bpc``,
    ``examples_per_second``, ``learning_rate``, ...); a measure not taken (None) is left out.
    """
    scalars = {
        k: v
        for k, v in entry.items()
        if k not in ("epoch", "step", "epoch_seconds", "resumed_mid_epoch")
        and isinstance(v, int | float)
        and not isinstance(v, bool)
    }
    measures = " | ".join(
        f"{k} {v:.4f}" for k, v in scalars.items() if k.startswith(("train_", "val_"))
    )
    rate = next((k for k in scalars if k.endswith("_per_second")), None)
    speed_text = f"{scalars[rate]:.0f} {rate.removesuffix('_per_second')}/s" if rate else ""
    logging.info(
        "epoch %d/%d: %s%s | %.1f s %s",
        entry["epoch"],
        num_epochs,
        measures,
        "" if entry.get("val_loss") is not None else " | no validation",
        entry["epoch_seconds"],
        speed_text,
    )
    for name, value in scalars.items():
        tensorboard.add_scalar(name, value, entry["step"])
    tensorboard.flush()


class _NoTensorBoard:
    """Stands in for the TensorBoard writer on processes that write no files."""

    def add_scalar(self, *args, **kwargs) -> None:
        del args, kwargs

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def open_tensorboard(workdir: str, *, write: bool = True):
    """The run's TensorBoard writer (``tensorboard/``), or a stand-in that writes nothing."""
    if not write:
        return _NoTensorBoard()
    # tensorboardX writes the event files without TensorFlow, whose import would cost every run
    # seconds (flax.metrics.tensorboard imports it).
    from tensorboardX import SummaryWriter

    return SummaryWriter(os.path.join(workdir, "tensorboard"))
