"""Training: steps, optimizers, schedules, evaluation counting, resume, pmap, the workdir."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import default
from rnn_jax import models
from rnn_jax.cells import CELLS
from rnn_jax.data import batching, input_pipeline
from rnn_jax.inference import runs as inference
from rnn_jax.training import parallel, train, train_steps
from rnn_jax.training import workdir as workdirs
from rnn_jax.training.checkpointing import Checkpoints
from tests.helpers import SUMMARY_KEYS

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO.parent / "shared" / "tensorflow_datasets"


def tiny_config(**overrides):
    """A config small enough to train in seconds on the real data (first 256 reviews/split)."""
    config = default.get_config()
    config.update(
        dict(
            vocab_size=500,
            max_len=32,
            embed_dim=8,
            hidden_size=8,
            batch_size=16,
            eval_batch_size=64,
            num_epochs=2,
            max_examples=256,
            progress_bar=False,
            data_dir=str(DATA_DIR),
            # No dropout or clipping: steps the hand-computed checks below can follow exactly.
            dropout_rate=0.0,
            embed_dropout_rate=0.0,
            grad_clip_norm=0.0,
            schedule="constant",  # Lets a resumed run raise num_epochs.
        )
    )
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    assert (DATA_DIR / "imdb_reviews").is_dir(), f"IMDB data missing: expected it in {DATA_DIR}"
    return str(tmp_path_factory.mktemp("cache"))


def random_batch(batch_size, time, vocab_size, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, time + 1, batch_size)
    token_ids = rng.integers(4, vocab_size, (batch_size, time)).astype(np.int32)
    token_ids[np.arange(time)[None, :] < (time - lengths)[:, None]] = 0  # pre-padding
    return {
        "token_ids": token_ids,
        "length": lengths.astype(np.int32),
        "label": rng.integers(0, 2, batch_size).astype(np.int32),
    }


@pytest.mark.slow  # A train step per cell.
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_one_step_changes_every_param_with_finite_grads(cell):
    config = tiny_config(cell=cell, dropout_rate=0.1, embed_dropout_rate=0.1)
    model = models.create_model(config)
    state = train_steps.create_train_state(config, model, steps_per_epoch=10)
    batch = random_batch(16, config.max_len, config.vocab_size)
    new_state, sums = jax.jit(train_steps.train_step)(state, train_steps.zero_metrics(), batch)
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.params, new_state.params)
    assert all(jax.tree.leaves(changed)), changed
    assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(new_state.params))
    assert int(new_state.step) == 1
    assert float(sums["count"]) == 16 and 0 <= float(sums["correct"]) <= 16
    assert int(sums["first_nonfinite_step"]) == -1


def test_train_step_loss_sum_is_the_mean_bce_times_batch():
    config = tiny_config(cell="gru")
    model = models.create_model(config)
    state = train_steps.create_train_state(config, model, steps_per_epoch=10)
    batch = random_batch(16, config.max_len, config.vocab_size, seed=3)
    logits = model.apply({"params": state.params}, batch["token_ids"])
    expected = optax.sigmoid_binary_cross_entropy(logits, batch["label"].astype(float)).sum()
    _, sums = jax.jit(train_steps.train_step)(state, train_steps.zero_metrics(), batch)
    np.testing.assert_allclose(float(sums["loss"]), float(expected), rtol=1e-6)
    correct = np.sum((np.asarray(logits) > 0) == (batch["label"] == 1))
    assert float(sums["correct"]) == correct


def test_nonfinite_loss_records_its_step():
    config = tiny_config(cell="rnn")
    model = models.create_model(config)
    state = train_steps.create_train_state(config, model, steps_per_epoch=10)
    state = state.replace(
        step=jnp.asarray(7, jnp.int32), params=jax.tree.map(lambda p: p * jnp.nan, state.params)
    )
    batch = random_batch(16, config.max_len, config.vocab_size)
    _, sums = jax.jit(train_steps.train_step)(state, train_steps.zero_metrics(), batch)
    assert int(sums["first_nonfinite_step"]) == 7


@pytest.mark.slow  # Training infrastructure, not cells.
@pytest.mark.parametrize("bucket_width", [0, 8])
def test_evaluate_counts_every_example_exactly_once(bucket_width):
    config = tiny_config(cell="lstm")
    model = models.create_model(config)
    state = train_steps.create_train_state(config, model, steps_per_epoch=10)
    data = random_batch(37, config.max_len, config.vocab_size, seed=5)  # 37 = 2*16 + 5
    data_parallel = parallel.create("pmap")
    _, eval_step = train_steps.compile_steps(data_parallel)
    metrics = train_steps.evaluate(
        eval_step, data_parallel, data_parallel.replicate(state), data, 16, bucket_width
    )
    logits = np.asarray(model.apply({"params": state.params}, data["token_ids"]))
    losses = optax.sigmoid_binary_cross_entropy(logits, data["label"].astype(float))
    assert metrics["count"] == 37
    np.testing.assert_allclose(metrics["loss"], float(np.mean(losses)), rtol=1e-5)
    assert metrics["accuracy"] == np.mean((logits > 0) == (data["label"] == 1))


def _metrics(history):
    keys = ("epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy")
    return [{k: h[k] for k in keys} for h in history]


def interrupt_at(monkeypatch, stop_after: int):
    """Sends this process SIGTERM once the training step has run ``stop_after`` times."""
    from tests.multihost_helpers import with_fault

    faulty = with_fault(parallel.create, signal.SIGTERM, stop_after)
    monkeypatch.setattr(parallel, "create", faulty)


@pytest.mark.slow  # Whole runs.
@pytest.mark.parametrize("bucket_width", [0, 8])
def test_train_and_evaluate_writes_the_workdir_and_resumes_identically(
    tmp_path, cache_dir, bucket_width, monkeypatch, caplog
):
    """SIGTERM in the middle of epoch 2, with dropout and clipping on; the rerun restores that
    step (logged), does not train epoch 1 again, and ends exactly like an uninterrupted run."""
    config = tiny_config(
        cell="gru",
        cache_dir=cache_dir,
        num_epochs=2,
        bucket_width=bucket_width,
        dropout_rate=0.3,
        embed_dropout_rate=0.3,
        grad_clip_norm=0.5,
    )
    full = train.train_and_evaluate(config, str(tmp_path / "full"))
    steps_per_epoch = batching.num_train_batches(256 - round(0.2 * 256), 16)
    stop = steps_per_epoch + 5
    with monkeypatch.context() as patch:
        interrupt_at(patch, stop)
        with pytest.raises(train.Interrupted, match=f"SIGTERM at step {stop} "):
            train.train_and_evaluate(config, str(tmp_path / "split"))
    before = json.loads((tmp_path / "split" / "history.json").read_text())
    assert [h["epoch"] for h in before] == [1]
    with caplog.at_level("INFO"):
        resumed = train.train_and_evaluate(config, str(tmp_path / "split"))
    assert f"Resumed from checkpoint step {stop}" in caplog.text

    for key in ("test_accuracy", "test_loss", "best_val_accuracy", "best_epoch", "epochs"):
        assert resumed[key] == full[key], key
    histories = [json.loads((tmp_path / d / "history.json").read_text()) for d in ("full", "split")]
    assert _metrics(histories[0]) == _metrics(histories[1])
    assert histories[1][0] == before[0]  # Epoch 1 was not trained again (same epoch_seconds).
    assert [h["resumed_mid_epoch"] for h in histories[1]] == [False, True]

    workdir = tmp_path / "full"
    summary = json.loads((workdir / "summary.json").read_text())
    for key in SUMMARY_KEYS:
        assert key in summary, key
    assert summary["test_examples"] == 256 and summary["epochs"] == 2
    assert json.loads((workdir / "config.json").read_text())["cell"] == "gru"
    assert len(histories[0]) == 2
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(workdir / "tensorboard"))
    events.Reload()  # TensorBoard reads what the run wrote, epoch by epoch.
    assert [e.step for e in events.Scalars("val_accuracy")] == [h["step"] for h in histories[0]]
    assert [e.value for e in events.Scalars("train_loss")] == pytest.approx(
        [h["train_loss"] for h in histories[0]]
    )
    steps = sorted(int(s) for s in os.listdir(workdir / "checkpoints") if s.isdigit())
    assert steps == [steps_per_epoch, 2 * steps_per_epoch]


def run_script(script: str, *args: str, xla_flags: str, pythonpath: str = "") -> dict:
    """Runs ``script`` in a fresh Python (JAX's devices are fixed once it starts); its JSON line.

    ``pythonpath``: a folder to import from besides the repository (a researcher's cells).
    """
    # After the session's own flags (tests/conftest.py), which they override where they overlap.
    flags = f"{os.environ.get('XLA_FLAGS', '')} {xla_flags}"
    env = dict(os.environ, XLA_FLAGS=flags, TF_CPP_MIN_LOG_LEVEL="2")
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


STEP_SCRIPT = """
import json, sys
import jax, jax.numpy as jnp, numpy as np, optax
assert jax.device_count() == 2, jax.devices()
from tests.test_train import random_batch, tiny_config
from rnn_jax import models
from rnn_jax.training import parallel, train_steps
from rnn_jax.cells import CELLS

out = {}
for cell in sorted(CELLS):
    # SGD (an update proportional to the gradient: a sum instead of a mean shows) and dropout.
    config = tiny_config(cell=cell, optimizer="sgd", learning_rate=0.5, dropout_rate=0.3,
                         embed_dropout_rate=0.3)
    model = models.create_model(config)
    state = train_steps.create_train_state(config, model, steps_per_epoch=10)
    state = state.replace(step=jnp.asarray(3, jnp.int32))
    batch = random_batch(16, config.max_len, config.vocab_size, seed=1)
    # The reference, from train_step's documented rule: device d draws its dropout from
    # fold_in(fold_in(key, step), d) on its half of the batch; the gradients are averaged.
    key = jax.random.fold_in(jax.random.wrap_key_data(state.dropout_key), 3)
    def loss(params, half, d):
        logits = model.apply({"params": params}, half["token_ids"], train=True,
                             rngs={"dropout": jax.random.fold_in(key, d)})
        return optax.sigmoid_binary_cross_entropy(logits, half["label"].astype(float)).mean()
    halves = [{k: v[8 * d : 8 * d + 8] for k, v in batch.items()} for d in (0, 1)]
    grads = [jax.grad(loss)(state.params, halves[d], d) for d in (0, 1)]
    reference = jax.tree.map(lambda p, g0, g1: p - 0.5 * (g0 + g1) / 2, state.params, *grads)
    def diff(a, b):
        return max(float(np.max(np.abs(x - y))) for x, y in
                   zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    out[cell] = {"moved": diff(reference, state.params)}
    params = {}
    for parallelism in parallel.PARALLELISMS:
        data_parallel = parallel.create(parallelism)
        step, _ = train_steps.compile_steps(data_parallel)
        zero = train_steps.zero_metrics()
        new, sums = step(data_parallel.replicate(state), data_parallel.replicate(zero),
                         data_parallel.shard(batch))
        replicas = [jax.tree.map(lambda x, y: np.asarray(x.addressable_shards[d].data).reshape(
            np.shape(y)), new.params, state.params) for d in (0, 1)]
        params[parallelism] = data_parallel.fetch(new.params)
        out[cell][parallelism] = {
            "replica_diffs": [diff(r, reference) for r in replicas],
            "count": float(data_parallel.fetch(sums)["count"]),
        }
    out[cell]["bitwise_equal"] = all(
        np.array_equal(a, b) for a, b in zip(*map(jax.tree.leaves, params.values())))
print(json.dumps(out))
"""


@pytest.mark.slow  # Compiles the step for two devices in a process of its own.
def test_a_two_device_step_averages_each_devices_own_dropout_gradients_on_both_paths():
    """Every device's copy equals an SGD step on the mean of the two halves' gradients, each
    half with its own dropout key, for every registered cell, under pmap and under shard_map;
    and the two paths' parameters are bitwise equal."""
    result = run_script(STEP_SCRIPT, xla_flags="--xla_force_host_platform_device_count=2")
    assert set(result) == set(CELLS)
    for cell, r in result.items():
        assert r["moved"] > 1e-3, cell  # A real step, not a no-op.
        for parallelism in parallel.PARALLELISMS:
            diffs = r[parallelism]["replica_diffs"]
            assert max(diffs) < 1e-6 * max(1.0, r["moved"]) + 1e-7, (cell, parallelism, r)
            assert r[parallelism]["count"] == 16.0
        assert r["bitwise_equal"], cell


CPU_DEVICES_SCRIPT = """
import json, os, sys
import jax
from rnn_jax.training import parallel
# The suite's own patience (tests/conftest.py) out, to see what use_cpu_devices sets.
os.environ["XLA_FLAGS"] = os.environ["XLA_FLAGS"].replace(sys.argv[2], "")
made = parallel.use_cpu_devices(int(sys.argv[1]), (16, 64))
# Starts the backend: an XLA flag it does not know would abort the process here.
patient = "terminate_timeout_seconds=3600" in os.environ.get("XLA_FLAGS", "")
print(json.dumps({"made": made, "devices": jax.device_count(),
                  "again": parallel.use_cpu_devices(1, (16, 64)), "patient_all_reduce": patient}))
"""


def cpu_devices_in_subprocess(requested: int, xla_flags: str = "") -> dict:
    patience = "--xla_cpu_collective_call_terminate_timeout_seconds=3600"
    return run_script(CPU_DEVICES_SCRIPT, str(requested), patience, xla_flags=xla_flags)


@pytest.mark.slow  # A process with several devices.
def test_cpu_devices_default_to_one_per_core_that_divides_the_batches():
    cores = len(os.sched_getaffinity(0))
    expected = max(n for n in range(1, cores + 1) if 16 % n == 0)
    # Once JAX has started, the devices stay as they are.
    # Several devices wait an hour, not XLA's 40 s, for a late device at the all-reduce.
    made = {"made": expected, "devices": expected, "again": None}
    assert cpu_devices_in_subprocess(0) == made | {"patient_all_reduce": expected > 1}
    assert cpu_devices_in_subprocess(3) == {
        "made": 3,
        "devices": 3,
        "again": None,
        "patient_all_reduce": True,
    }
    # An explicit XLA_FLAGS device count wins over the config, and gets the same patience.
    flags = "--xla_force_host_platform_device_count=4"
    assert cpu_devices_in_subprocess(1, flags) == {
        "made": None,
        "devices": 4,
        "again": None,
        "patient_all_reduce": True,
    }


@pytest.mark.slow  # A whole run in a process of its own.
@pytest.mark.xdist_group("subprocesses")
def test_a_two_device_run_that_never_syncs_the_host_finishes(tmp_path):
    """XLA's CPU runtime deadlocked the first all-reduce of this run (the course's LSTM on 2
    CPU devices, no progress bar: nothing syncs the host for 50 steps) every time, until each
    step waited for the one before (``parallel.wait_if_cpu_devices``)."""
    command = [
        sys.executable,
        "-m",
        "rnn_jax.main",
        "--config=configs/lstm.py",
        f"--workdir={tmp_path / 'run'}",
        f"--config.cache_dir={tmp_path / 'cache'}",
        f"--config.data_dir={DATA_DIR}",
        "--config.cpu_devices=2",
        "--config.max_examples=8192",
        "--config.num_epochs=1",
        "--config.progress_bar=False",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "data parallel: pmap over 2 cpu device(s)" in out.stderr


def test_workdir_refuses_another_config_but_allows_more_epochs(tmp_path):
    config = tiny_config()
    workdirs.prepare_workdir(config, str(tmp_path))
    (tmp_path / "checkpoints" / "8").mkdir(parents=True)  # A saved step: a run to resume.
    config.num_epochs = 5  # A constant schedule does not depend on the number of epochs.
    workdirs.prepare_workdir(config, str(tmp_path))
    config.hidden_size = 9
    with pytest.raises(workdirs.WorkdirError, match=r"hidden_size: 8 -> 9"):
        workdirs.prepare_workdir(config, str(tmp_path))


# A value other than the old behavior, per field added since workdirs were first written.
NEW_VALUES = {
    "bucket_width": 8,
    "ngram_buckets": 64,
    "ngram_order": 3,
    "embed_dropout_tokens": True,
    "evaluate_test": False,
    "compute_dtype": "bfloat16",
    "time_parallel": "sequential",
    "lstm_backend": "scan",
    "residual": True,
    # The evaluation options (every RecurrenceOptions field is an added field).
    "unroll": 2,
    "input_projection": "in_step",
    "remat": True,
    "parallelism": "shard_map",
    "task": "language_model",
    "chunk_length": 64,
    "steps_per_epoch": 10,
    "cell_kwargs": '{"reset_after": false}',
}


@pytest.mark.parametrize("field", sorted(workdirs.ADDED_FIELDS))
def test_a_run_written_before_a_field_existed_resumes_with_its_old_behavior(tmp_path, field):
    old = workdirs.ADDED_FIELDS[field]
    assert default.get_config()[field] == old  # The default is the behavior before the field.
    config = tiny_config()
    workdirs.prepare_workdir(config, str(tmp_path))
    (tmp_path / "checkpoints" / "8").mkdir(parents=True)  # A saved step: a run to resume.
    path = tmp_path / "config.json"
    stored = json.loads(path.read_text())
    del stored[field]  # As written before the field existed.
    path.write_text(json.dumps(stored))
    assert workdirs.read_config(str(tmp_path))[field] == old
    workdirs.prepare_workdir(config, str(tmp_path))  # Same run: accepted.
    path.write_text(json.dumps(stored))
    config[field] = NEW_VALUES[field]
    if field in workdirs.RESUMABLE_FIELDS:  # Changes no numbers: the run may go on with it.
        workdirs.prepare_workdir(config, str(tmp_path))
        return
    with pytest.raises(workdirs.WorkdirError, match=rf"{field}: {old!r} -> {NEW_VALUES[field]!r}"):
        workdirs.prepare_workdir(config, str(tmp_path))


def test_a_tuning_run_leaves_test_unseen_until_rerun_with_evaluate_test(tmp_path):
    config = tiny_config(evaluate_test=False)
    tuning = train.train_and_evaluate(config, str(tmp_path / "tuning"))
    assert (tuning["test_accuracy"], tuning["test_loss"], tuning["test_examples"]) == (
        None,
        None,
        0,
    )
    assert tuning["best_val_accuracy"] is not None
    config.evaluate_test = True
    tested = train.train_and_evaluate(config, str(tmp_path / "tuning"))  # Finished: no training.
    assert tested["test_examples"] == 256
    assert tested["train_seconds"] == tuning["train_seconds"]
    assert tested["best_epoch"] == tuning["best_epoch"]
    # The same test accuracy as a run that evaluated test from the start: same checkpoint.
    direct = train.train_and_evaluate(config, str(tmp_path / "direct"))
    assert tested["test_accuracy"] == pytest.approx(direct["test_accuracy"], abs=1e-6)
    assert tested["test_loss"] == pytest.approx(direct["test_loss"], rel=1e-5)


@pytest.mark.slow  # A whole run.
def test_a_refit_trains_on_every_training_review_and_tests_its_last_epoch(
    tmp_path, cache_dir, caplog
):
    config = tiny_config(validation_fraction=0.0, cache_dir=cache_dir, num_epochs=2)
    summary = train.train_and_evaluate(config, str(tmp_path))
    assert "tracked_metric" not in caplog.text  # No metric to rank by, and Orbax is not told to.
    history = json.loads((tmp_path / "history.json").read_text())
    assert [(h["val_loss"], h["val_accuracy"]) for h in history] == [(None, None)] * 2
    assert summary["best_val_accuracy"] is None and summary["best_epoch"] == 2
    steps_per_epoch = 256 // 16  # All 256 training reviews, none held out.
    steps = sorted(int(s) for s in os.listdir(tmp_path / "checkpoints") if s.isdigit())
    assert steps == [steps_per_epoch, 2 * steps_per_epoch]
    # The test numbers are those of the last checkpoint (the first one's differ).
    data = input_pipeline.load_imdb_for(config)
    data_parallel = parallel.create("pmap")
    _, eval_step = train_steps.compile_steps(data_parallel)
    checkpoints = Checkpoints(str(tmp_path / "checkpoints"), 2, read_only=True)
    template = {"state": train_steps.create_train_state(config, models.create_model(config), 1)}
    losses = []
    for step in steps:
        state = checkpoints.restore(step, template | {"sums": train_steps.zero_metrics()})["state"]
        replicated = data_parallel.replicate(state)
        metrics = train_steps.evaluate(eval_step, data_parallel, replicated, data.test, 64)
        losses.append(metrics["loss"])
    assert summary["test_loss"] == pytest.approx(losses[1], rel=1e-5)
    assert losses[0] != pytest.approx(losses[1], rel=1e-3)
    # Rerun: finished, so nothing is trained, and the same last checkpoint is tested.
    assert train.train_and_evaluate(config, str(tmp_path)) == summary
    # Restoring the run for prediction also takes the last checkpoint (there is no best).
    assert inference.load_run(str(tmp_path)).step == steps[1]
    # The evaluation CLI refuses the split the run does not have, in one line.
    result = subprocess.run(
        [sys.executable, "-m", "rnn_jax.evaluate", f"--workdir={tmp_path}", "--split=validation"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: the run in {tmp_path} has no validation split (validation_fraction=0: it "
        "trained on all training reviews); allowed here: --split=train or --split=test"
    )


def test_cosine_schedule_run_cannot_change_its_epochs(tmp_path):
    config = tiny_config(schedule="warmup_cosine", warmup_epochs=1.0, num_epochs=2)
    workdirs.prepare_workdir(config, str(tmp_path))
    (tmp_path / "checkpoints" / "8").mkdir(parents=True)  # A saved step: a run to resume.
    config.num_epochs = 3  # Would stretch the cosine decay: different numbers.
    with pytest.raises(workdirs.WorkdirError, match=r"num_epochs: 2 -> 3"):
        workdirs.prepare_workdir(config, str(tmp_path))


@pytest.mark.parametrize("parallelism", parallel.PARALLELISMS)
def test_the_train_step_compiles_once(caplog, parallelism):
    """Replicated inputs are placed like the step's outputs: no recompilation between steps."""
    config = tiny_config(cell="rnn")
    model = models.create_model(config)
    state = train_steps.create_train_state(config, model, steps_per_epoch=10)
    data_parallel = parallel.create(parallelism)
    train_step, _ = train_steps.compile_steps(data_parallel)
    state = data_parallel.replicate(state)
    sums = data_parallel.replicate(train_steps.zero_metrics())
    batch = data_parallel.shard(random_batch(16, config.max_len, config.vocab_size))
    with jax.log_compiles(), caplog.at_level("WARNING"):
        for _ in range(3):
            state, sums = train_step(state, sums, batch)
        sums = data_parallel.replicate(train_steps.zero_metrics())  # As after every epoch.
        state, sums = train_step(state, sums, batch)
    # pmap compiles jit(shard_map(_fun)) of a <[devices, rows, time]> batch; shard_map the step
    # of a global batch split over 'data' (its type reads int32[16@data,32]).
    batch_type = re.compile(r"int32\[(1,16|16@data),32\]")
    compiles = [
        r.getMessage()[:200]
        for r in caplog.records
        if r.getMessage().startswith("Compiling jit(") and batch_type.search(r.getMessage())
    ]
    assert len(compiles) == 1, compiles


def script_validation(monkeypatch, metrics=None, signal_at=None):
    """Replaces validation's (accuracy, loss) by ``metrics`` epoch after epoch, and/or sends
    SIGTERM while validating epoch ``signal_at`` (1-based); test is evaluated for real."""
    real = train.Job.evaluate
    epochs = iter(range(1, 100))

    def evaluate(job, state, split):
        result = real(job, state, split)
        if split != "validation":
            return result
        epoch = next(epochs)
        if epoch == signal_at:
            os.kill(os.getpid(), signal.SIGTERM)
        if metrics is not None:
            accuracy, loss = metrics[epoch - 1]
            result = result | {"accuracy": accuracy, "loss": loss}
        return result

    monkeypatch.setattr(train.Job, "evaluate", evaluate)


def test_the_best_epoch_is_the_argmax_of_validation_and_outlives_keep_checkpoints(
    tmp_path, cache_dir, monkeypatch
):
    # Epoch 4 ties epoch 2's accuracy with a higher loss: the tie goes to the lower loss.
    script_validation(monkeypatch, metrics=[(0.6, 0.5), (0.9, 0.4), (0.7, 0.3), (0.9, 0.45)])
    config = tiny_config(cache_dir=cache_dir, num_epochs=4, keep_checkpoints=1)
    summary = train.train_and_evaluate(config, str(tmp_path))
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["val_accuracy"] for h in history] == [0.6, 0.9, 0.7, 0.9]
    assert summary["best_epoch"] == 2 and summary["best_val_accuracy"] == 0.9
    steps_per_epoch = history[0]["step"]
    on_disk = sorted(int(s) for s in os.listdir(tmp_path / "checkpoints") if s.isdigit())
    assert on_disk == [2 * steps_per_epoch, 4 * steps_per_epoch]  # The best and the latest one.
    # The test metrics are those of epoch 2's parameters.
    checkpoints = Checkpoints(str(tmp_path / "checkpoints"), 1, read_only=True)
    model = models.create_model(config)
    best = checkpoints.restore(2 * steps_per_epoch, train_steps.checkpoint_template(config, model))
    checkpoints.close()
    data = input_pipeline.load_imdb_for(config)
    data_parallel = parallel.create("pmap")
    _, eval_step = train_steps.compile_steps(data_parallel)
    best_state = data_parallel.replicate(best["state"])
    test = train_steps.evaluate(
        eval_step, data_parallel, best_state, data.test, config.eval_batch_size
    )
    assert (test["accuracy"], test["loss"]) == (summary["test_accuracy"], summary["test_loss"])


def test_a_signal_during_validation_finishes_the_epoch_and_resumes_after_it(
    tmp_path, cache_dir, monkeypatch, caplog
):
    config = tiny_config(cell="lstm", cache_dir=cache_dir, num_epochs=2, dropout_rate=0.3)
    full = train.train_and_evaluate(config, str(tmp_path / "full"))
    with monkeypatch.context() as patch:
        script_validation(patch, signal_at=1)
        with pytest.raises(train.Interrupted, match="SIGTERM at step 12 .epoch 1."):
            train.train_and_evaluate(config, str(tmp_path / "split"))
    # Epoch 1 is finished: validated, in the history, saved with its metric.
    saved = json.loads((tmp_path / "split" / "history.json").read_text())
    assert [h["epoch"] for h in saved] == [1]
    with caplog.at_level("INFO"):
        resumed = train.train_and_evaluate(config, str(tmp_path / "split"))
    assert "Resumed from checkpoint step 12" in caplog.text
    histories = [json.loads((tmp_path / d / "history.json").read_text()) for d in ("full", "split")]
    assert _metrics(histories[0]) == _metrics(histories[1])
    assert resumed["test_accuracy"] == full["test_accuracy"]
    assert resumed["best_epoch"] == full["best_epoch"]
