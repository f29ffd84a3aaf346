"""The cell lab's gradient horizon: how far back an untrained model's last output feels its inputs.

Beside each cell's task horizons (what training reaches) the lab reports how its gradient
decays through time before any training: the lab's own model for the adding task
(``runs.make_model``), initialized at seed 0 and never trained, reads adding inputs of
length T (the adding task's last dial within the budget: 256 at the full budget); the norm
``||d y_T / d x_t||_2`` of the prediction at the last step with respect to the input at step t,
averaged over the batch, is read back from the last step, and the **gradient horizon** is the
number of steps back until it first falls below 1% of its value at the last step
(``gradient_decay.steps_to_vanish``, the rule ``experiments.gradients`` uses too). A horizon
that never vanishes within T is ``None``, written "> T-1" (never "nothing passes", which is
what ``None`` means for a task horizon).
"""

import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.lib.gradient_decay import VANISHED, steps_to_vanish, vanish_text
from experiments.lib.lab import runs
from experiments.lib.lab.tasks import TASKS

TASK = "adding"  # Float inputs: the gradient with respect to them needs no embedding lookup.
INIT_SEED = 0  # The parameters are the untrained ones a seed-0 run of the lab starts from.
INPUT_SEED = 2_000_003  # The adding inputs measured: apart from EVAL_SEED and training streams.
RULE = (
    f"steps back from the last step until the batch mean of ||d y_T / d x_t||_2 first falls "
    f"below {VANISHED:.0%} of its value at t = T; steps_back null: it never does within the "
    "length (> length - 1 steps)"
)


def measured_length(budget: runs.Budget) -> int:
    """T: the adding task's last dial the budget walks (256 at full budget, 32 with --quick)."""
    return TASKS[TASK].dials[: budget.max_dials][-1]


def column_header(length: int) -> str:
    """The horizons table's header of the gradient column, naming what was measured."""
    return f"gradient horizon at init ({TASK} inputs, T={length})"


@functools.lru_cache(maxsize=32)
def _norms_fn(cell: str, budget: runs.Budget, cell_kwargs: str = ""):
    """``(inputs, mask) -> norms`` (``step_gradient_norms``) for a cell, jit-compiled per shape.

    The parameters are initialized inside: the untrained model is all that is measured.
    """
    model = runs.make_model(cell, TASKS[TASK], budget, cell_kwargs)

    def last_prediction(inputs, params, mask):
        # A sum over the batch, not a mean: each example's prediction depends only on its own
        # inputs, so the sum's gradient at example b is b's own gradient.
        return model.apply({"params": params}, inputs, mask)[:, -1, 0].sum()

    @jax.jit
    def norms(inputs, mask):
        params = model.init(jax.random.key(INIT_SEED), inputs, mask)["params"]
        grads = jax.grad(last_prediction)(inputs, params, mask)  # <[batch, T, features]>
        return jnp.linalg.norm(grads, axis=-1).mean(axis=0)[::-1]

    return norms


def step_gradient_norms(
    cell: str, budget: runs.Budget, length: int, cell_kwargs: str = ""
) -> np.ndarray:
    """Mean over the batch of ``||d y_T / d x_t||_2``, indexed by steps back from the last step.

    Args:
      cell: any name the lab accepts (a registered name, ``control``, ``module:Class``).
      budget: the model's width and layers, and ``batch`` examples to average over.
      length: T, the steps of adding input read.
      cell_kwargs: the cell's constructor arguments, JSON ('' for none).

    Returns:
      <float32>[length]: element k is the mean norm at ``k`` steps before the last step, of the
      untrained model (initialized at seed ``INIT_SEED``), w.r.t. the inputs
      <float32>[batch, T, 2].
    """
    batch = TASKS[TASK].generate(np.random.default_rng(INPUT_SEED), budget.batch, length)
    mask = np.arange(length)[None, :] < batch.lengths[:, None]  # Every step is real here.
    norms = _norms_fn(cell, budget, cell_kwargs)
    return np.asarray(norms(jnp.asarray(batch.inputs), jnp.asarray(mask)))


def gradient_horizon(
    cell: str, budget: runs.Budget, length: int | None = None, cell_kwargs: str = ""
) -> dict[str, Any]:
    """A cell's gradient horizon at initialization, as ``results.json`` holds it.

    Args:
      cell: any name the lab accepts.
      budget: the lab's budget (width, layers, batch; ``max_dials`` picks the default length).
      length: T; None: ``measured_length(budget)``.
      cell_kwargs: the cell's constructor arguments, JSON ('' for none).

    Returns:
      ``steps_back`` (int, or None when the norm never falls below the threshold within T),
      ``text`` (``"37"`` or ``"> 511"``), ``length`` (T), ``last_norm`` and ``first_norm`` (the
      norms at the last and the first step), ``task``, ``batch``, ``init_seed``, ``input_seed``,
      ``trained`` (False: always measured before training) and ``rule``.
    """
    length = measured_length(budget) if length is None else length
    norms = step_gradient_norms(cell, budget, length, cell_kwargs)
    steps = steps_to_vanish(norms)
    return {
        "steps_back": steps,
        "text": vanish_text(steps, length),
        "length": length,
        "last_norm": float(norms[0]),
        "first_norm": float(norms[-1]),
        "task": TASK,
        "batch": budget.batch,
        "init_seed": INIT_SEED,
        "input_seed": INPUT_SEED,
        "trained": False,
        "rule": RULE,
    }


def gradient_horizons(
    cells: list[tuple[str, str]], budget: runs.Budget, log=print
) -> dict[str, Any]:
    """``gradient_horizon`` of each cell at ``measured_length(budget)``: ``results.json``'s entry.

    Args:
      cells: ``(cell, cell_kwargs)`` pairs; the result is keyed by their ``lab_name``.
      budget: the lab's budget.
      log: prints a line per cell.

    Not stored with the runs: one gradient per cell, measured again at every lab invocation.
    """
    horizons = {}
    for cell, kwargs in cells:
        start = time.perf_counter()
        name = f"{cell} {kwargs}" if kwargs else cell  # report.lab_name
        horizons[name] = gradient_horizon(cell, budget, cell_kwargs=kwargs)
        log(
            f"{name}: gradient horizon at init = {horizons[name]['text']} "
            f"({TASK} inputs, T={horizons[name]['length']}, {time.perf_counter() - start:.1f} s)"
        )
    return horizons
