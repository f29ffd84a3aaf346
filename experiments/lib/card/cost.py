"""What a cell costs: parameters at each study's width, the evaluation path, training speed.

Speed is the training step each study runs -- the IMDB classifier's (``train_steps.train_step``,
the course's shape) and the language model's (``lm_steps.train_step``, the study's chunk) --
for the cell and the baseline, compiled in this process and timed in interleaved rounds
(``experiments.lib.timing``): each round times one step of every candidate in turn, so load from
other processes falls on all of them alike. The rounds pair the two cells: the verdict is the
paired difference of their step times over the rounds (``experiments.lib.noise``).
"""

import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.lib import noise, timing
from experiments.lib.card import imdb
from experiments.lib.lab import runs as lab_runs
from experiments.lib.lab.tasks import TASKS
from experiments.lib.lm import runs as lm_runs
from rnn_jax.layers import RecurrenceOptions, resolve
from rnn_jax.models import count_params, create_model, make_cells
from rnn_jax.training import lm_steps, train_steps
from rnn_jax.training.language_modelling import create_language_model


def parameters(cell: str, cell_kwargs: str, args, lm_budget, lab_budget) -> dict[str, int]:
    """The cell's parameter counts in each study's model: ``imdb``, ``lab`` (MQAR), ``lm``."""
    config = imdb.config_of(imdb.RunKey(cell, 0, cell_kwargs), args)
    classifier = create_model(config)
    tokens = jnp.ones((1, 8), jnp.int32)
    shapes = jax.eval_shape(classifier.init, jax.random.key(0), tokens)["params"]
    mqar = TASKS["mqar"]
    tagger = lab_runs.make_model(cell, mqar, lab_budget, cell_kwargs)
    inputs = jnp.ones((1, 8), jnp.int32)
    tagger_shapes = jax.eval_shape(tagger.init, jax.random.key(0), inputs)["params"]
    return {
        "imdb": count_params(shapes),
        "lab": count_params(tagger_shapes),
        "lm": lm_runs.parameters(cell, lm_budget.width, lm_budget, cell_kwargs),
    }


def evaluation_path(cell: str, cell_kwargs: str) -> dict[str, str]:
    """How a layer of the cell runs on this backend (``resolve``): alone and with resets."""
    from experiments.lib.lab.control import cell_spec

    (instance,) = make_cells(cell_spec(cell), 8, 1, cell_kwargs=cell_kwargs)
    options = RecurrenceOptions()
    return {
        "classifier": resolve(instance, options).describe(),
        "language_model": resolve(instance, options, has_reset=True).describe(),
    }


def _classifier_candidate(cell: str, cell_kwargs: str, args, label: str) -> timing.Candidate:
    """The IMDB training step at the course's shape (batch 64, 200 tokens), compiled."""
    shape = timing.QUICK_SHAPE if args.quick else timing.COURSE_SHAPE
    config = imdb.config_of(imdb.RunKey(cell, 0, cell_kwargs), args)
    config.update(max_len=shape["time"], batch_size=shape["batch"])
    model = create_model(config)
    made = timing.make_batch(shape)
    batch = {"token_ids": made["token_ids"], "label": made["labels"].astype(np.int32)}
    state = [train_steps.create_train_state(config, model, steps_per_epoch=100)]
    sums = train_steps.zero_metrics()
    step = jax.jit(train_steps.train_step, donate_argnums=0)
    evaluate = jax.jit(train_steps.eval_step)
    started = time.perf_counter()
    state[0], _ = step(state[0], sums, batch)
    jax.block_until_ready(state[0].params)
    compile_seconds = time.perf_counter() - started
    masked = batch | {"mask": np.ones(shape["batch"], bool)}

    def train():
        state[0], out = step(state[0], sums, batch)
        jax.block_until_ready(out)

    def infer():
        jax.block_until_ready(evaluate(state[0], masked))

    return timing.Candidate(label, "imdb", cell, compile_seconds, train, infer)


def _language_model_candidate(cell: str, cell_kwargs: str, args, budget) -> timing.Candidate:
    """The language model's training step on one chunk of the study's streams, compiled."""
    config = lm_runs.config_of(lm_runs.RunKey(cell, 0, budget.width, cell_kwargs), budget, args)
    model = create_language_model(config)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 256, (budget.streams, budget.chunk + 1)).astype(np.int32)
    batch = {"tokens": tokens, "mask": np.ones((budget.streams, budget.chunk), bool)}
    first = jnp.asarray(tokens[:1, :-1])
    state = [train_steps.create_train_state(config, model, 100, first)]
    carries = [model.initial_carries(budget.streams)]
    sums = train_steps.zero_metrics()
    step = jax.jit(lm_steps.train_step, donate_argnums=0)
    evaluate = jax.jit(lm_steps.eval_step)
    started = time.perf_counter()
    state[0], _, carries[0] = step(state[0], sums, carries[0], batch)
    jax.block_until_ready(state[0].params)
    compile_seconds = time.perf_counter() - started

    def train():
        state[0], out, carries[0] = step(state[0], sums, carries[0], batch)
        jax.block_until_ready(out)

    def infer():
        jax.block_until_ready(evaluate(state[0], carries[0], batch))

    return timing.Candidate(cell, "language model", cell, compile_seconds, train, infer)


def speeds(
    cell: str, cell_kwargs: str, baseline: str, args, lm_budget, repeats: int
) -> dict[str, dict[str, Any]]:
    """Training speed of the cell and the baseline, side by side, per study.

    Returns:
      For ``imdb`` and ``language_model``: ``cell`` and ``baseline`` (examples or characters
      per second, from the median step), ``ratio`` (cell over baseline), ``difference`` (the
      paired difference of step times, seconds, ``noise.paired_difference``) and ``verdict``
      (faster: better).
    """
    builds = {
        "imdb": functools.partial(_classifier_candidate, args=args, label=""),
        "language_model": functools.partial(_language_model_candidate, args=args, budget=lm_budget),
    }
    per_step = {"imdb": (timing.QUICK_SHAPE if args.quick else timing.COURSE_SHAPE)["batch"]}
    per_step["language_model"] = lm_budget.streams * lm_budget.chunk
    pairs = {
        name: (build(cell, cell_kwargs), build(baseline, "")) for name, build in builds.items()
    }
    timing.time_rounds([c for pair in pairs.values() for c in pair], repeats)
    result = {}
    for name, (mine, theirs) in pairs.items():
        difference = noise.paired_difference(mine.train_times, theirs.train_times)
        speed = [per_step[name] / float(np.median(c.train_times)) for c in (mine, theirs)]
        result[name] = {
            "cell": speed[0],
            "baseline": speed[1],
            "ratio": speed[0] / speed[1],
            "difference": difference,
            "verdict": noise.verdict(difference, lower_is_better=True),
            "rounds": repeats,
        }
    return result
