"""Using a finished (or interrupted) run: restore its best parameters, classify new text."""

import dataclasses
import os
import sys
from typing import NoReturn

import jax
import ml_collections
import numpy as np

from rnn_jax import models
from rnn_jax.cells import get_cell_class
from rnn_jax.data import batching
from rnn_jax.data.vocabulary import INDEX_FROM, Vocabulary, tokenize
from rnn_jax.models import SentimentClassifier
from rnn_jax.training import train_steps
from rnn_jax.training import workdir as workdirs
from rnn_jax.training.checkpointing import Checkpoints, NoUsableCheckpointError


class RunNotFoundError(RuntimeError):
    """The workdir holds no usable run (no config, vocabulary or checkpoint)."""


def exit_with_error(message: str, code: int = 1) -> NoReturn:
    """The one line a command line ends with, and its exit code, with nothing after it.

    The process ends at once: a checkpoint that failed to read leaves TensorStore callbacks
    behind that print tracebacks ("Event loop is closed") while the interpreter shuts down. The
    commands that use it only read, so nothing is left unwritten.
    """
    print(message, file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(code)


@dataclasses.dataclass
class Run:
    """What a workdir holds, restored: config, model, parameters (of ``step``), vocabulary."""

    config: ml_collections.ConfigDict
    model: SentimentClassifier
    state: train_steps.TrainState
    vocab: Vocabulary
    step: int


def load_run(workdir: str) -> Run:
    """Restores the checkpoint that was best on validation (else the latest) of a workdir.

    A checkpoint that does not restore (damaged files) is skipped with a warning, for the next
    newest one.

    Raises:
      RunNotFoundError: a file the run needs is missing or damaged (not valid JSON), or no
        checkpoint restores; the message says which, and what to do. Nothing is rewritten.
    """
    if not os.path.exists(os.path.join(workdir, "config.json")):
        raise RunNotFoundError(
            f"{os.path.join(workdir, 'config.json')} not found: is {workdir!r} the --workdir of "
            "a training run?"
        )
    try:
        config = ml_collections.ConfigDict(workdirs.read_config(workdir))
    except workdirs.WorkdirError as error:  # A damaged config.json; the message says what to do.
        raise RunNotFoundError(str(error)) from None
    if config.task != "sentiment":
        raise RunNotFoundError(
            f"{workdir} holds a {config.task} run, not a sentiment classifier: use "
            f"python -m rnn_jax.generate --workdir={workdir} for a language model"
        )
    if not os.path.exists(os.path.join(workdir, "vocab.json")):
        raise RunNotFoundError(
            f"{os.path.join(workdir, 'vocab.json')} not found: is {workdir!r} the --workdir of "
            "a training run?"
        )
    try:
        vocab = Vocabulary.from_json(os.path.join(workdir, "vocab.json"))
    except ValueError as error:
        # Training never reads vocab.json: it rebuilds the vocabulary from the data and writes
        # it at every start, so rerunning the run's command repairs it (resuming, or finished).
        raise RunNotFoundError(
            f"{error}; the run cannot predict or evaluate without it: rerun the training "
            "command that made it (same --config, this --workdir), which writes it again"
        ) from None
    try:
        get_cell_class(config.cell)  # A cell from the researcher's module must import here too.
    except ValueError as error:
        raise RunNotFoundError(f"{workdir} was trained with {error}") from None
    if config.lstm_backend == "cudnn" and jax.default_backend() != "gpu":
        # Trained through cuDNN on a GPU: the same parameters run through the scan here.
        config.lstm_backend = "auto"
    model = models.create_model(config)
    template = train_steps.checkpoint_template(config, model)
    step, restored = restore_best_checkpoint(workdir, config, template)
    return Run(config, model, restored["state"], vocab, step)


def restore_best_checkpoint(workdir: str, config, template) -> tuple[int, dict]:
    """The checkpoint best on validation (else the newest that reads back), read only.

    The best step first, then the others newest first: a damaged one is skipped with a
    warning, and nothing in the workdir is moved.

    Raises:
      RunNotFoundError: no checkpoint, or none that restores into ``template``.
    """
    checkpoints = Checkpoints(
        os.path.join(workdir, "checkpoints"), config.keep_checkpoints, read_only=True
    )
    best = checkpoints.best_step()
    candidates = [best] * (best is not None) + [s for s in checkpoints.steps()[::-1] if s != best]
    if not candidates:
        raise RunNotFoundError(f"no checkpoint in {checkpoints.directory}: train first")
    try:
        step, restored = checkpoints.restore_first(candidates, template)
    except NoUsableCheckpointError as error:
        raise RunNotFoundError(str(error)) from None
    checkpoints.close()
    return step, restored


def encode_texts(run: Run, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Tokenizes, encodes and pads texts as the run's training data was.

    Returns:
      ``token_ids`` <int32>[len(texts), max_len] and the number of in-vocabulary words of each
      text <int32>[len(texts)].
    """
    encoded = [run.vocab.encode(tokenize(text)) for text in texts]
    token_ids, _ = batching.pad_sequences(
        encoded, run.config.max_len, run.config.padding, run.config.truncating
    )
    known = np.array([sum(i > INDEX_FROM for i in ids) for ids in encoded], np.int32)
    return token_ids, known


def predict_texts(run: Run, texts: list[str]) -> np.ndarray:
    """Positive-class probabilities <float32>[len(texts)] of raw review texts."""
    token_ids, _ = encode_texts(run, texts)
    logits = run.model.apply({"params": run.state.params}, token_ids)
    return np.asarray(jax.nn.sigmoid(logits))


def predict_split(run: Run, data: dict[str, np.ndarray]) -> np.ndarray:
    """Logits of every row of a split, in its row order.

    Batches as the run's evaluation does (``eval_batch_size``, length buckets); one device.

    Args:
      run: a restored run.
      data: a split, ``ImdbData.split(name)``: ``token_ids`` <int32>[N, max_len], ``length``
        <int32>[N], ``label`` <int32>[N].

    Returns:
      <float32>[N] logits (the positive class's log-odds).
    """
    apply = jax.jit(lambda params, ids: run.model.apply({"params": params}, ids, train=False))
    num_rows = len(data["label"])
    logits = np.empty(num_rows, np.float32)
    batches = batching.eval_batches(
        {**data, "row": np.arange(num_rows)},
        run.config.eval_batch_size,
        run.config.bucket_width,
        run.config.padding,
    )
    for batch in batches:
        real = batch["mask"]
        logits[batch["row"][real]] = np.asarray(apply(run.state.params, batch["token_ids"]))[real]
    return logits
