"""Text from a trained language model: restore its run, read a prompt, sample a continuation.

A continuation is read as a review is: ``BOUNDARY`` (the state reset), the prompt's bytes, then
one sampled byte at a time from the softmax at ``temperature``, until ``length`` bytes or the
model ends the review (it samples ``BOUNDARY``). Every sample comes from a key folded from
``seed`` and the position, so the same seed gives the same text.
"""

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rnn_jax.data import text
from rnn_jax.inference.runs import RunNotFoundError, restore_best_checkpoint
from rnn_jax.models import LanguageModel
from rnn_jax.training import train_steps
from rnn_jax.training import workdir as workdirs
from rnn_jax.training.language_modelling import create_language_model


@dataclasses.dataclass
class LanguageModelRun:
    """A restored language-model run: its config, model, parameters and checkpoint step."""

    config: ml_collections.ConfigDict
    model: LanguageModel
    params: dict
    step: int


def checkpoint_template(config: ml_collections.ConfigDict, model: LanguageModel) -> dict:
    """Shapes and dtypes of a language model's checkpoint item, on device 0 (nothing computed)."""
    tokens = jnp.zeros((1, config.chunk_length), jnp.int32)

    def item():
        return {
            "state": train_steps.create_train_state(config, model, 1, tokens),
            "sums": train_steps.zero_metrics(),
            "stream": model.initial_carries(config.batch_size),
        }

    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    shapes = jax.eval_shape(item)
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device), shapes)


def load_language_model(workdir: str) -> LanguageModelRun:
    """The checkpoint best on validation (else the latest that restores) of a language model.

    Raises:
      RunNotFoundError: no run there, a run of another task (the classifier), a damaged
        ``config.json``, or no checkpoint that restores; one line saying which. Nothing in the
        workdir is moved or rewritten.
    """
    if not os.path.exists(os.path.join(workdir, "config.json")):
        raise RunNotFoundError(
            f"{os.path.join(workdir, 'config.json')} not found: is {workdir!r} the --workdir of "
            "a language-model run (--config=configs/lm_lstm.py)?"
        )
    try:
        config = ml_collections.ConfigDict(workdirs.read_config(workdir))
    except workdirs.WorkdirError as error:
        raise RunNotFoundError(str(error)) from None
    if config.task != "language_model":
        raise RunNotFoundError(
            f"{workdir} holds a {config.task} run, not a language model: generate needs a run "
            "trained with task='language_model' (configs/lm_lstm.py); use rnn_jax.predict for "
            "a classifier"
        )
    model = create_language_model(config)
    step, restored = restore_best_checkpoint(workdir, config, checkpoint_template(config, model))
    return LanguageModelRun(config, model, restored["state"].params, step)


def sample(run: LanguageModelRun, prompt: str, *, length: int, temperature: float, seed: int):
    """The bytes the model writes after ``prompt``, decoded (a bad UTF-8 sequence as U+FFFD).

    Args:
      run: a restored language model.
      prompt: the review's beginning (may be empty: a review from scratch).
      length: the most bytes to write (fewer when the model ends the review).
      temperature: divides the logits before sampling; > 0 (small: likelier bytes).
      seed: the sampling seed.

    Raises:
      ValueError: ``length`` or ``temperature`` not positive.
    """
    if not (isinstance(length, int) and length > 0):
        raise ValueError(f"length={length!r} is not allowed: a positive number of bytes")
    if not temperature > 0:
        raise ValueError(f"temperature={temperature!r} is not allowed: a number > 0")
    tokens = np.concatenate([[text.BOUNDARY], text.encode_review(prompt)]).astype(np.int32)
    written = np.asarray(_write(run.model, length)(run.params, tokens[None], temperature, seed))
    ends = np.flatnonzero(written == text.BOUNDARY)
    written = written[: ends[0]] if len(ends) else written
    return bytes(written.astype(np.uint8)).decode("utf-8", errors="replace")


@functools.lru_cache(maxsize=8)
def _write(model: LanguageModel, length: int):
    """The jitted sampler: reads the prompt, then ``length`` steps of one sampled token each.

    Kept per model and length, so that several samples of a run (or of runs of the same model)
    share one compilation.
    """

    @jax.jit
    def write(params, prompt, temperature, seed):
        variables = {"params": params}
        logits, carries = model.apply(variables, prompt)
        key = jax.random.key(seed)

        def step(state, position):
            logits, carries = state
            token = jax.random.categorical(
                jax.random.fold_in(key, position), logits / temperature, axis=-1
            )
            logits, carries = model.apply(variables, token[:, None], carries)
            return (logits[:, -1], carries), token[0]

        _, written = jax.lax.scan(step, (logits[:, -1], carries), jnp.arange(length))
        return written

    return write


__all__ = ["LanguageModelRun", "load_language_model", "sample"]
