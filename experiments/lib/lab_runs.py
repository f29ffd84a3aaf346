"""One run of the cell lab: a cell trained on a task at one difficulty, rate and seed.

A run trains ``rnn_jax.models.SequenceTagger`` with Adam (gradients clipped at global norm 1)
on fresh examples every step, for at most ``Budget.steps`` steps, and evaluates on a held-out
set (the same examples for every run at that task and difficulty) every ``eval_every`` steps:
it stops as soon as the evaluation passes the task's threshold. For a task that extrapolates
(parity, cycle navigation) it trains on lengths 1..40 and is evaluated at every test length of
the task at once; it stops when every length passes. Each finished run is one JSON file under
``<out>/runs/``, written atomically, so a killed lab loses only the run in flight and a rerun
with the same budget reads the file instead of training.
"""

import dataclasses
import functools
import json
import re
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.lib.lab_control import cell_spec
from experiments.lib.lab_tasks import TASKS, Batch, Task
from rnn_jax.data.files import write_json
from rnn_jax.models import SequenceTagger, count_params

EVAL_SEED = 1_000_003  # The held-out examples: one draw per (task, difficulty), never trained on.


@dataclasses.dataclass(frozen=True)
class Budget:
    """What every run of a lab gets.

    Attributes:
      steps: the most training steps (a run stops earlier when it passes).
      batch: fresh examples per step.
      width: hidden size of every layer (the state size MQAR's load is measured against).
      layers: recurrent layers (pre-norm residual between them).
      eval_every: steps between held-out evaluations.
      eval_examples: held-out examples per evaluation (per test length).
      clip: global gradient-norm clipping.
      max_dials: walk and evaluate only the first ``max_dials`` difficulties of each task (None:
        all of them).
      early_stop: stop a run at the first evaluation that passes (False: train every step and
        report the metric at the end of the budget).
    """

    steps: int = 2000
    batch: int = 64
    width: int = 64
    layers: int = 1
    eval_every: int = 100
    eval_examples: int = 256
    clip: float = 1.0
    max_dials: int | None = None
    early_stop: bool = True


FULL = Budget()
# --quick: a smoke run of the whole protocol; its numbers mean nothing.
QUICK = Budget(steps=20, batch=8, width=8, eval_every=10, eval_examples=32, max_dials=2)


@dataclasses.dataclass(frozen=True)
class RunKey:
    """What identifies a run (with its ``Budget``).

    ``difficulty`` is None for a task that extrapolates: one training run serves every test
    length.
    """

    cell: str
    task: str
    difficulty: int | None
    learning_rate: float
    seed: int

    def file_name(self) -> str:
        dial = "train1-40" if self.difficulty is None else str(self.difficulty)
        cell = re.sub(r"[^A-Za-z0-9_]+", "_", self.cell)  # module:Class -> a file name.
        return f"{cell}__{self.task}__{dial}__lr{self.learning_rate:g}__s{self.seed}.json"


def make_model(cell: str, task: Task, budget: Budget) -> SequenceTagger:
    """The tagger a run trains: embedding or input projection, ``layers`` x ``cell``, readout."""
    return SequenceTagger(
        cell=cell_spec(cell),
        hidden_size=budget.width,
        out_features=task.outputs,
        num_layers=budget.layers,
        vocab_size=task.vocab_size,
        residual=budget.layers > 1,
    )


def _mask_of(lengths: jax.Array, time: int) -> jax.Array:
    return jnp.arange(time)[None, :] < lengths[:, None]


def _scores(model, task: Task, params, batch: dict[str, jax.Array]):
    """Per-position (loss, correct) <float32>[batch, time] of the model on ``batch``."""
    inputs = batch["inputs"]
    outputs = model.apply({"params": params}, inputs, _mask_of(batch["lengths"], inputs.shape[1]))
    if task.regression:
        error = (outputs[..., 0] - batch["targets"]) ** 2
        return error, error
    loss = optax.softmax_cross_entropy_with_integer_labels(outputs, batch["targets"])
    return loss, (outputs.argmax(-1) == batch["targets"]).astype(jnp.float32)


@functools.lru_cache(maxsize=64)
def compiled(cell: str, task_name: str, budget: Budget):
    """``(init, optimizer, train_step, evaluate)`` for a cell, task and budget, jit-compiled.

    The learning rate is a value in the optimizer state (``inject_hyperparams``), so runs at
    every rate and seed share the compiled programs (jit compiles once per input shape).
    """
    task = TASKS[task_name]
    model = make_model(cell, task, budget)
    optimizer = optax.chain(
        optax.clip_by_global_norm(budget.clip),
        optax.inject_hyperparams(optax.adam)(learning_rate=1e-3),
    )

    def loss_fn(params, batch):
        loss, _ = _scores(model, task, params, batch)
        mask = batch["mask"].astype(jnp.float32)
        return (loss * mask).sum() / mask.sum()

    @jax.jit
    def train_step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    @jax.jit
    def evaluate(params, batch):
        """Metric (mean over scored steps) and the share of rows with every scored step right."""
        _, correct = _scores(model, task, params, batch)
        mask = batch["mask"]
        metric = jnp.where(mask, correct, 0.0).sum() / mask.sum()
        rows = jnp.all(jnp.where(mask, correct > 0.5, True), axis=1).mean()
        return metric, rows

    # Compiled, not eager: eager initialization compiles every op of the scan on its own, which
    # took longer than compiling the training step.
    init = jax.jit(lambda key, inputs, mask: model.init(key, inputs, mask)["params"])
    return init, optimizer, train_step, evaluate


def as_arrays(batch: Batch) -> dict[str, jax.Array]:
    return {f.name: jnp.asarray(getattr(batch, f.name)) for f in dataclasses.fields(batch)}


@functools.lru_cache(maxsize=256)
def held_out(task_name: str, difficulty: int, examples: int) -> dict[str, jax.Array]:
    """The evaluation examples of a task at a difficulty: the same for every run."""
    rng = np.random.default_rng(EVAL_SEED)
    return as_arrays(TASKS[task_name].generate(rng, examples, difficulty))


def evaluated_dials(key: RunKey, budget: Budget) -> tuple[int, ...]:
    """The difficulties a run is evaluated at: its own, or every test length of its task."""
    if key.difficulty is None:
        return TASKS[key.task].dials[: budget.max_dials]
    return (key.difficulty,)


def train(key: RunKey, budget: Budget) -> dict[str, Any]:
    """Trains one run until it passes at every evaluated difficulty or the budget ends.

    Returns:
      The run's record: the key's fields, ``budget``, ``metrics`` and ``rows_right`` (difficulty
      -> last held-out metric and share of rows entirely right), ``passed`` (difficulty -> bool),
      ``steps``, ``seconds`` (compilation included), ``parameters``, ``chance``, ``threshold``
      and ``curve`` (one ``{step, loss, metrics}`` per evaluation).
    """
    task = TASKS[key.task]
    init, optimizer, train_step, evaluate = compiled(key.cell, key.task, budget)
    start = time.perf_counter()
    rng = np.random.default_rng([key.seed, 0])  # The training stream; EVAL_SEED is apart.
    first = as_arrays(task.train_batch(rng, budget.batch, key.difficulty or 0))
    mask = _mask_of(first["lengths"], first["inputs"].shape[1])
    params = init(jax.random.key(key.seed), first["inputs"], mask)
    opt_state = optimizer.init(params)
    opt_state[1].hyperparams["learning_rate"] = jnp.asarray(key.learning_rate, jnp.float32)
    curve, batch, step = [], first, 0
    dials = evaluated_dials(key, budget)
    while step < budget.steps:
        params, opt_state, loss = train_step(params, opt_state, batch)
        step += 1
        if step % budget.eval_every == 0 or step == budget.steps:
            results = {
                d: evaluate(params, held_out(key.task, d, budget.eval_examples)) for d in dials
            }
            metrics = {d: float(m) for d, (m, _) in results.items()}
            rows = {d: float(r) for d, (_, r) in results.items()}
            curve.append({"step": step, "loss": float(loss), "metrics": metrics})
            if budget.early_stop and all(task.passes(m) for m in metrics.values()):
                break
        batch = as_arrays(task.train_batch(rng, budget.batch, key.difficulty or 0))
    return {
        **dataclasses.asdict(key),
        "budget": dataclasses.asdict(budget),
        "metrics": metrics,
        "rows_right": rows,
        "passed": {d: task.passes(m) for d, m in metrics.items()},
        "steps": step,
        "seconds": round(time.perf_counter() - start, 2),
        "parameters": count_params(params),
        "chance": task.chance,
        "threshold": task.threshold,
        "curve": curve,
    }


def _with_int_dials(record: dict[str, Any]) -> dict[str, Any]:
    """JSON keys are strings; a record read back has its difficulties as ints again."""
    for field in ("metrics", "rows_right", "passed"):
        record[field] = {int(d): v for d, v in record[field].items()}
    for point in record["curve"]:
        point["metrics"] = {int(d): v for d, v in point["metrics"].items()}
    return record


def run(key: RunKey, budget: Budget, folder: Path, log=print) -> dict[str, Any]:
    """The record of a run: read from ``folder`` if it finished with this budget, else trained."""
    path = Path(folder) / key.file_name()
    if path.exists():
        record = json.loads(path.read_text())
        if record["budget"] == dataclasses.asdict(budget):
            return _with_int_dials(record)
    record = train(key, budget)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    passed = ", ".join(f"{d}: {'pass' if p else 'fail'}" for d, p in record["passed"].items())
    log(
        f"{key.cell} {key.task} difficulty={key.difficulty} lr={key.learning_rate:g} "
        f"seed={key.seed}: {passed} ({record['steps']} steps, {record['seconds']:.1f} s)"
    )
    return _with_int_dials(json.loads(path.read_text()))
