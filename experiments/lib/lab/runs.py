"""One run of the cell lab: a cell trained on a task at one difficulty, rate and seed.

A run trains ``rnn_jax.models.SequenceTagger`` with Adam (gradients clipped at global norm 1)
on fresh examples every step, for at most ``Budget.steps`` steps, and evaluates on a held-out
set (the same examples for every run at that task and difficulty) every ``eval_every`` steps;
with ``Budget.early_stop`` it stops at the first evaluation that passes the task's threshold.
For a task that extrapolates (parity, cycle navigation) it trains on lengths 1..40 and is
evaluated at every test length of the task at once; it stops when every length passes.

**The verdict** is the final parameters' metric on a second, independent held-out draw (the
confirmation set, ``CONFIRM_SEED``), the same rule for every task: stopping at the first of up
to 20 evaluations that passes would otherwise pick the luckiest one on the same examples.

Each finished run is one JSON file under ``<out>/runs/``, written atomically, so a killed lab
loses only the run in flight; a rerun reads the file back when its key, budget and evaluated
difficulties are the run's own (anything else is trained again), and recomputes ``passed`` from
the stored metrics with the task's current threshold.
"""

import dataclasses
import functools
import json
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.lib.flags import file_stem
from experiments.lib.lab.control import ATTENTION, AttentionTagger, cell_spec
from experiments.lib.lab.tasks import TASKS, Batch, Task
from rnn_jax.data.files import write_json
from rnn_jax.models import SequenceTagger, count_params

# The held-out examples, one draw per (task, difficulty), never trained on: EVAL_SEED's are
# watched during training (early stopping), CONFIRM_SEED's only give the final verdict.
EVAL_SEED = 1_000_003
CONFIRM_SEED = 1_000_033
# A stored run is read back only if it was written under the same rules (2: the verdict is on
# the confirmation set).
RECORD_VERSION = 2


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
    cell_kwargs: str = ""  # The cell's constructor arguments, JSON ('': none).

    def file_name(self) -> str:
        dial = "train1-40" if self.difficulty is None else str(self.difficulty)
        cell = file_stem(self.cell, self.cell_kwargs)
        return f"{cell}__{self.task}__{dial}__lr{self.learning_rate:g}__s{self.seed}.json"


def make_model(cell: str, task: Task, budget: Budget, cell_kwargs: str = ""):
    """The tagger a run trains: embedding or input projection, ``layers`` x ``cell``, readout.

    ``attention`` (the positive control) is ``control.AttentionTagger`` at the same width.
    """
    if cell == ATTENTION:
        return AttentionTagger(budget.width, task.outputs, vocab_size=task.vocab_size)
    return SequenceTagger(
        cell=cell_spec(cell),
        cell_kwargs=cell_kwargs,
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
def compiled(cell: str, task_name: str, budget: Budget, cell_kwargs: str = ""):
    """``(init, optimizer, train_step, evaluate)`` for a cell, task and budget, jit-compiled.

    The learning rate is a value in the optimizer state (``inject_hyperparams``), so runs at
    every rate and seed share the compiled programs (jit compiles once per input shape).
    """
    task = TASKS[task_name]
    model = make_model(cell, task, budget, cell_kwargs)
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
        """Metric (mean over scored steps) and the share of rows with every scored step right.

        A regression's step is right when its squared error is within the task's threshold.
        """
        _, correct = _scores(model, task, params, batch)
        mask = batch["mask"]
        metric = jnp.where(mask, correct, 0.0).sum() / mask.sum()
        right = correct <= task.threshold if task.regression else correct > 0.5
        rows = jnp.all(jnp.where(mask, right, True), axis=1).mean()
        return metric, rows

    # Compiled, not eager: eager initialization compiles every op of the scan on its own, which
    # took longer than compiling the training step.
    init = jax.jit(lambda key, inputs, mask: model.init(key, inputs, mask)["params"])
    return init, optimizer, train_step, evaluate


def as_arrays(batch: Batch) -> dict[str, jax.Array]:
    return {f.name: jnp.asarray(getattr(batch, f.name)) for f in dataclasses.fields(batch)}


@functools.lru_cache(maxsize=256)
def held_out(
    task_name: str, difficulty: int, examples: int, seed: int = EVAL_SEED
) -> dict[str, jax.Array]:
    """Held-out examples of a task at a difficulty, the same for every run (``seed``: the draw)."""
    rng = np.random.default_rng(seed)
    return as_arrays(TASKS[task_name].generate(rng, examples, difficulty))


def _measured(values: tuple[jax.Array, jax.Array], task: Task) -> tuple[float, float]:
    """(metric, rows right) as floats; a metric that is not finite (a diverged run) is chance."""
    metric, rows = (float(v) for v in values)
    return (metric, rows) if np.isfinite(metric) else (task.chance, 0.0)


def evaluated_dials(key: RunKey, budget: Budget) -> tuple[int, ...]:
    """The difficulties a run is evaluated at: its own, or every test length of its task."""
    if key.difficulty is None:
        return TASKS[key.task].dials[: budget.max_dials]
    return (key.difficulty,)


def optimizer_state(optimizer, params, learning_rate: float):
    """A fresh state of ``compiled``'s optimizer whose Adam steps at ``learning_rate``."""
    state = optimizer.init(params)
    state[1].hyperparams["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
    return state


def _evaluations(evaluate, params, key: RunKey, budget: Budget, seed: int) -> dict[int, tuple]:
    """(metric, rows right) at every evaluated difficulty, on the held-out draw ``seed``."""
    task = TASKS[key.task]
    return {
        d: _measured(evaluate(params, held_out(key.task, d, budget.eval_examples, seed)), task)
        for d in evaluated_dials(key, budget)
    }


def train(key: RunKey, budget: Budget) -> dict[str, Any]:
    """Trains one run until it passes at every evaluated difficulty or the budget ends.

    Returns:
      The run's record: the key's fields, ``budget``, ``metrics`` and ``rows_right`` (difficulty
      -> the final parameters' metric and share of rows entirely right on the confirmation
      set), ``passed`` (difficulty -> bool, from ``metrics``), ``steps``, ``diverged`` (the
      loss stopped being finite; the run then scores chance), ``seconds`` (compilation
      included), ``parameters``, ``chance``, ``threshold`` and ``curve`` (one ``{step, loss,
      metrics}`` per evaluation, on the watched held-out set).
    """
    task = TASKS[key.task]
    init, optimizer, train_step, evaluate = compiled(key.cell, key.task, budget, key.cell_kwargs)
    start = time.perf_counter()
    rng = np.random.default_rng([key.seed, 0])  # The training stream; the held-out are apart.
    batch = as_arrays(task.train_batch(rng, budget.batch, key.difficulty or 0))
    mask = _mask_of(batch["lengths"], batch["inputs"].shape[1])
    params = init(jax.random.key(key.seed), batch["inputs"], mask)
    opt_state = optimizer_state(optimizer, params, key.learning_rate)
    curve, step, diverged = [], 0, False
    while step < budget.steps and not diverged:
        params, opt_state, loss = train_step(params, opt_state, batch)
        step += 1
        diverged = not np.isfinite(float(loss))
        if step % budget.eval_every == 0 or step == budget.steps or diverged:
            watched = _evaluations(evaluate, params, key, budget, EVAL_SEED)
            metrics = {d: m for d, (m, _) in watched.items()}
            curve.append({"step": step, "loss": float(loss), "metrics": metrics})
            if budget.early_stop and all(task.passes(m) for m in metrics.values()):
                break
        batch = as_arrays(task.train_batch(rng, budget.batch, key.difficulty or 0))
    final = _evaluations(evaluate, params, key, budget, CONFIRM_SEED)
    metrics = {d: m for d, (m, _) in final.items()}
    return {
        **dataclasses.asdict(key),
        "version": RECORD_VERSION,
        "budget": dataclasses.asdict(budget),
        "metrics": metrics,
        "rows_right": {d: r for d, (_, r) in final.items()},
        "passed": {d: task.passes(m) for d, m in metrics.items()},
        "steps": step,
        "diverged": diverged,
        "seconds": round(time.perf_counter() - start, 2),
        "parameters": count_params(params),
        "chance": task.chance,
        "threshold": task.threshold,
        "curve": curve,
    }


def with_int_dials(record: dict[str, Any]) -> dict[str, Any]:
    """JSON keys are strings; a record read back has its difficulties as ints again."""
    for field in ("metrics", "rows_right", "passed"):
        record[field] = {int(d): v for d, v in record[field].items()}
    for point in record["curve"]:
        point["metrics"] = {int(d): v for d, v in point["metrics"].items()}
    return record


def _read_back(record: dict[str, Any], key: RunKey, budget: Budget) -> dict[str, Any] | None:
    """A stored record if it is this key's run with this budget, else None (train again).

    ``passed`` is recomputed from the stored metrics, so a changed threshold takes effect.
    """
    # A field added since a record was written holds its default there (no constructor args).
    same_key = all(
        record.get(f.name, None if f.default is dataclasses.MISSING else f.default)
        == getattr(key, f.name)
        for f in dataclasses.fields(key)
    )
    if not same_key or record.get("version") != RECORD_VERSION:
        return None
    if Budget(**record["budget"]) != budget:
        return None
    record = with_int_dials(record)
    if tuple(record["metrics"]) != evaluated_dials(key, budget):
        return None  # The task's difficulties changed since the run was trained.
    task = TASKS[key.task]
    record["passed"] = {d: task.passes(m) for d, m in record["metrics"].items()}
    return record


def run(key: RunKey, budget: Budget, folder: Path, log=print) -> dict[str, Any]:
    """The record of a run: read from ``folder`` if it finished with this budget, else trained."""
    path = Path(folder) / key.file_name()
    if path.exists():
        record = _read_back(json.loads(path.read_text()), key, budget)
        if record is not None:
            return record
    record = train(key, budget)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    passed = ", ".join(f"{d}: {'pass' if p else 'fail'}" for d, p in record["passed"].items())
    log(
        f"{key.cell} {key.task} difficulty={key.difficulty} lr={key.learning_rate:g} "
        f"seed={key.seed}: {passed} ({record['steps']} steps, {record['seconds']:.1f} s)"
    )
    return _read_back(json.loads(path.read_text()), key, budget)
