"""Would seeds trained as one vmapped program be faster? Timed, side by side.

The study trains each seed through the pipeline, one process per run (``--workers`` of them at
once). The alternative: the seeds of a cell as one program, ``jax.vmap`` of the language
model's training step (``lm_steps.train_step``) over stacked train states, carries and chunks.
Both are timed here in interleaved rounds, at the study's shape, in one process: characters per
second of S seeds' steps taken one after another, against the vmapped step of the S seeds.
"""

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.lib.lm import runs
from rnn_jax.training import lm_steps, train_steps
from rnn_jax.training.language_modelling import create_language_model


def _setup(cell: str, seeds: int, budget: runs.Budget, args):
    """Per seed: a train state, carries and a chunk, at the budget's shape."""
    config = runs.config_of(runs.RunKey(cell, 0, budget.width), budget, args)
    model = create_language_model(config)
    rng = np.random.default_rng(0)
    first = jnp.zeros((1, budget.chunk), jnp.int32)
    states, carries, chunks = [], [], []
    for seed in range(seeds):
        config.seed = seed
        states.append(train_steps.create_train_state(config, model, 100, first))
        carries.append(model.initial_carries(budget.streams))
        tokens = rng.integers(0, 256, (budget.streams, budget.chunk + 1)).astype(np.int32)
        chunks.append({"tokens": jnp.asarray(tokens)})
    # One optimizer object for every seed: a train state's ``tx`` is pytree metadata, and states
    # with different (if equal) optimizer objects cannot be stacked.
    states = [s.replace(tx=states[0].tx, apply_fn=states[0].apply_fn) for s in states]
    return states, carries, chunks


def time_seeds(cell: str, seeds: int, budget: runs.Budget, args, rounds: int) -> dict:
    """Characters per second: the seeds' steps one by one, and as one vmapped step."""
    states, carries, chunks = _setup(cell, seeds, budget, args)
    sums = train_steps.zero_metrics()
    single = jax.jit(lm_steps.train_step)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
    stacked_carries = jax.tree.map(lambda *xs: jnp.stack(xs), *carries)
    stacked_chunks = jax.tree.map(lambda *xs: jnp.stack(xs), *chunks)
    stacked_sums = jax.tree.map(lambda x: jnp.stack([x] * seeds), sums)
    vmapped = jax.jit(jax.vmap(lm_steps.train_step))

    def one_by_one():
        outs = [single(s, sums, c, b) for s, c, b in zip(states, carries, chunks, strict=True)]
        jax.block_until_ready(outs)

    def together():
        jax.block_until_ready(vmapped(stacked, stacked_sums, stacked_carries, stacked_chunks))

    times = {"one by one": [], "vmapped": []}
    for run in (one_by_one, together):  # Compile.
        run()
    for _ in range(rounds):
        for name, run in (("one by one", one_by_one), ("vmapped", together)):
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    characters = seeds * budget.streams * budget.chunk
    speeds = {name: characters / statistics.median(t) for name, t in times.items()}
    return {
        "cell": cell,
        "seeds": seeds,
        "rounds": rounds,
        **{f"{name} characters/s": speed for name, speed in speeds.items()},
        "vmapped / one by one": speeds["vmapped"] / speeds["one by one"],
    }
