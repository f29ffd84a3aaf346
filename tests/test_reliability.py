"""Reliability: what a user sees when things go wrong, and that nothing is lost.

Bad config values, missing data, unusable workdirs, SIGTERM/SIGINT/SIGKILL mid-run, damaged or
half-written checkpoints, NaN losses, odd texts for prediction, reproducibility.

Real ``python -m rnn_jax.main`` subprocesses on the real IMDB (first 512 reviews per split, a
4.5k-parameter LSTM, 25 steps per epoch, 3 epochs) are all started at the beginning of the
module by a background runner (tests/reliability_helpers.py), a few at a time; each test waits
for the runs it checks, and the in-process tests run meanwhile. Runs that must end alike are
compared on their metrics (not timings), bitwise.
"""

import gc
import json
import math
import re
import shutil
import signal
from pathlib import Path

import pytest

from configs import default
from rnn_jax.training import configuration
from tests.helpers import SUMMARY_KEYS
from tests.reliability_helpers import (
    DATA_DIR,
    STEPS_PER_EPOCH,
    TEST_EXAMPLES,
    TINY,
    Job,
    JobRunner,
    base_env,
    checkpoint_steps,
    damage,
    main_args,
    run_metrics,
    tiny_config,
)

pytestmark = [
    pytest.mark.slow,  # Starts dozens of training processes.
    pytest.mark.usefixtures("runner"),
    # One test worker runs every test that starts processes of its own (see launch.sh test).
    pytest.mark.xdist_group("subprocesses"),
    # After a failed restore, Orbax leaves callbacks to an event loop it has closed and
    # coroutines never awaited: harmless noise, reported by whichever test runs at the time.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning"),
]

LONG_REVIEW = " ".join(["this", "movie", "was", "good", "but"] * 20_000)  # 100,000 words.
ODD_TEXTS = {
    "empty": "",
    "punctuation": "!!! ... ???",
    "emoji": "😀🎬🍿",
    "japanese": "この映画は本当に素晴らしかった。",
    "arabic": "كان هذا الفيلم رائعا حقا",
    "hindi": "यह फिल्म वाकई बहुत अच्छी थी",
    "unknown_words": "zzxq qqzv",
    "whitespace": " \t\n ",
    "long": LONG_REVIEW,
}
# A command-line argument is limited to 128 KiB on Linux: the CLI gets a 15,000-word review.
CLI_TEXTS = [t for k, t in ODD_TEXTS.items() if k != "long"] + [LONG_REVIEW[: 15_000 * 6]]


def epoch_logged(epoch: int):
    """Trigger: the run logged the end of ``epoch`` (its checkpoint save comes next)."""
    return lambda job: f"epoch {epoch}/{TINY['num_epochs']}:" in job.stderr_text()


def checkpoint_exists(workdir: Path, step: int):
    return lambda job: (workdir / "checkpoints" / str(step)).is_dir()


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    """Starts every subprocess of the module; tests wait with ``runner.result(name)``."""
    assert (DATA_DIR / "imdb_reviews").is_dir(), f"IMDB data missing: expected it in {DATA_DIR}"
    base = tmp_path_factory.mktemp("reliability")
    cache, logs, empty = base / "cache", base / "logs", base / "empty"
    for d in (cache, logs, empty):
        d.mkdir()
    (base / "afile").write_text("a regular file, so afile/run cannot be a directory\n")
    runner = JobRunner(logs, parallel=3)
    runner.base, runner.cache = base, cache
    env = base_env(jax_cache_dir=base / "jax_cache")
    w = {name: base / name for name in ("ref", "rerun", "term", "kill", "int", "nan", "broken")}

    def cached():  # The reference run has tokenized the data into the shared cache (or failed).
        return any(cache.glob("*.npz")) or runner.jobs["ref"].done.is_set()

    def add(name, argv, **kwargs):
        runner.add(Job(name, argv, **({"env": env} | kwargs)))

    def scenario(name):
        return ["-m", "tests.reliability_helpers", name, str(base / name), str(cache)]

    add("ref", main_args(w["ref"], cache), workdir=w["ref"])
    # Config errors: refused before TensorFlow is imported, data read or the workdir made.
    two_devices = env | {
        "XLA_FLAGS": f"{env['XLA_FLAGS']} --xla_force_host_platform_device_count=2"
    }
    for name, field, value, job_env in [
        ("cfg_cell", "cell", "transformer", env),
        ("cfg_fraction", "validation_fraction", "1.0", env),
        ("cfg_parallelism", "parallelism", "pjit", env),
        ("cfg_devices", "batch_size", "15", two_devices),
    ]:
        add(name, main_args(base / name, cache, **{field: value}), workdir=base / name, env=job_env)
    for name, field in [("key_unknown", "no_such_field"), ("key_typo", "hiden_size")]:
        add(name, [*main_args(base / name, cache), f"--config.{field}=1"], workdir=base / name)
    # Runs signalled once the first epoch is over; rerun below with the same command.
    for name, signum, trigger in [
        ("term", signal.SIGTERM, epoch_logged(1)),
        ("kill", signal.SIGKILL, checkpoint_exists(w["kill"], STEPS_PER_EPOCH)),
        ("int", signal.SIGINT, checkpoint_exists(w["int"], STEPS_PER_EPOCH)),
    ]:
        add(
            f"{name}1",
            main_args(w[name], cache),
            workdir=w[name],
            ready=cached,
            trigger=trigger,
            send=signum,
            snapshot_to=base / f"{name}_snapshot",
        )
    for name in ("signals_in_epoch_2", "nan_in_epoch_2"):
        add(name, scenario(name), workdir=base / name, ready=cached)
    add("rerun", main_args(w["rerun"], cache), workdir=w["rerun"], ready=cached)
    # Missing data (and no cache to fall back on), unwritable workdir, no run, NaN loss.
    add("no_data", main_args(base / "no_data", empty, data_dir=empty), workdir=base / "no_data")
    add("unwritable", main_args(base / "afile" / "run", cache), workdir=base / "afile" / "run")
    add("predict_empty", ["-m", "rnn_jax.predict", f"--workdir={empty}", "a fine film"])
    nan_args = main_args(w["nan"], cache, optimizer="sgd", learning_rate="1e30")
    add("nan", nan_args, workdir=w["nan"], ready=cached)
    # The second halves, and the tools that need a finished run.
    for name in ("term", "kill", "int"):
        add(f"{name}2", main_args(w[name], cache), workdir=w[name], ready=runner.after(f"{name}1"))

    def copy_ref_and_damage_every_checkpoint():
        shutil.copytree(w["ref"], w["broken"])
        for step in checkpoint_steps(w["broken"] / "checkpoints"):
            damage(w["broken"] / "checkpoints" / str(step), "truncate")

    add(
        "all_damaged",
        main_args(w["broken"], cache),
        workdir=w["broken"],
        ready=runner.after("ref"),
        before=copy_ref_and_damage_every_checkpoint,
    )
    add("evaluate", ["-m", "rnn_jax.evaluate", f"--workdir={w['ref']}"], ready=runner.after("ref"))
    add(
        "predict",
        ["-m", "rnn_jax.predict", f"--workdir={w['ref']}", *CLI_TEXTS],
        ready=runner.after("ref"),
        env=env | {"PYTHONIOENCODING": "ascii"},  # A terminal that cannot show the previews.
    )
    runner.start()
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def target(runner):
    """What a checkpoint of the tiny run restores into (its shapes and dtypes)."""
    from rnn_jax import models
    from rnn_jax.training import train_steps

    config = tiny_config(runner.cache)
    state = train_steps.create_train_state(config, models.create_model(config), STEPS_PER_EPOCH)
    return {"state": state, "sums": train_steps.zero_metrics()}


def finished(runner, name):
    result = runner.result(name)
    assert result.returncode == 0, result.describe()
    return result


def assert_one_line_error(result, code: int, start: str):
    assert result.returncode == code, result.describe()
    assert result.last_line.startswith(start), result.describe()
    assert "Traceback" not in result.stderr, result.describe()


def assert_finite_params(item):
    import jax
    import numpy as np

    assert all(np.isfinite(np.asarray(p)).all() for p in jax.tree.leaves(item["state"].params))


# ----------------------------------------------------------------------------------------------
# 1. Config validation.


@pytest.mark.parametrize("device_count", [1, 2])
def test_validate_accepts_the_default_and_tiny_configs(device_count):
    configuration.validate(default.get_config(), device_count)
    configuration.validate(tiny_config("unused"), device_count)


@pytest.mark.parametrize(
    "field, value",
    [
        ("cell", "transformer"),
        ("cell", "LSTM"),
        ("optimizer", "adamw"),
        ("schedule", "cosine"),
        ("padding", "middle"),
        ("truncating", "both"),
        ("pooling", "attention"),
        ("activation", "gelu"),
        ("embed_dim", 0),
        ("hidden_size", -8),
        ("num_layers", 0),
        ("batch_size", 0),
        ("eval_batch_size", -1),
        ("max_len", 0),
        ("num_epochs", 0),
        ("dropout_rate", 1.0),
        ("dropout_rate", -0.1),
        ("dropout_rate", math.nan),
        ("embed_dropout_rate", 1.5),
        ("validation_fraction", 1.0),
        ("validation_fraction", -0.2),
        ("vocab_size", 4),
        ("vocab_size", 0),
        ("learning_rate", 0.0),
        ("learning_rate", math.nan),
        ("max_examples", -1),
        ("seed", -1),
        ("bucket_width", -10),
        ("ngram_buckets", -1),
        ("ngram_buckets", 2**31),
        ("ngram_order", 1),
        ("kernel_init", "no_such_init"),
        ("compute_dtype", "float16"),
        ("parallelism", "jit"),
        ("task", "translation"),
        ("chunk_length", 0),
        ("steps_per_epoch", -1),
        ("cell_kwargs", "[1, 2]"),
        ("cell_kwargs", '{"activation": "relu"}'),  # config.activation's to set.
        ("cell_kwargs", '{"no_such_field": 1}'),  # The cell does not build.
    ],
)
def test_validate_names_the_field_the_value_and_what_is_allowed(field, value):
    config = default.get_config()
    config[field] = value
    with pytest.raises(configuration.ConfigError) as info:
        configuration.validate(config, 1)
    message = str(info.value)
    prefix = f"config.{field}={value!r} is not allowed: "
    assert message.startswith(prefix), message
    assert len(message) > len(prefix) + 5, message  # ... and says what is allowed.
    assert "\n" not in message


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"max_examples": 10},
            r"^config\.batch_size=16 is not allowed: at most the 8 training reviews \(max_exa",
        ),
        (
            {"max_examples": 2},
            r"^config\.validation_fraction: validation_fraction=0\.2 of 2 training examples "
            r"leaves 0 for validation",
        ),
    ],
)
def test_too_few_reviews_for_the_config_is_a_config_error(runner, tmp_path, overrides, message):
    # Only known once the data is read (with max_examples): still one line naming the field.
    from rnn_jax.training import train

    with pytest.raises(configuration.ConfigError, match=message):
        train.train_and_evaluate(tiny_config(runner.cache, **overrides), str(tmp_path))


def test_validate_refuses_a_run_that_evaluates_nothing():
    config = default.get_config()
    config.validation_fraction, config.evaluate_test = 0.0, False
    with pytest.raises(
        configuration.ConfigError, match=r"^config\.validation_fraction=0\.0 .*evaluate_test"
    ):
        configuration.validate(config, 1)
    config.evaluate_test = True  # A refit: no validation, tested once.
    configuration.validate(config, 1)


def test_validate_refuses_bucketing_an_unmasked_model():
    config = default.get_config()
    config.bucket_width, config.mask_padding = 50, False
    with pytest.raises(configuration.ConfigError, match=r"^config\.bucket_width=50 .*mask_padding"):
        configuration.validate(config, 1)
    config.mask_padding = True
    configuration.validate(config, 1)


@pytest.mark.parametrize("field", ["batch_size", "eval_batch_size"])
def test_validate_refuses_a_batch_not_divisible_by_the_devices(field):
    config = default.get_config()
    config[field] = 15
    with pytest.raises(
        configuration.ConfigError, match=rf"^config\.{field}=15 .*device count \(2\)"
    ):
        configuration.validate(config, 2)
    configuration.validate(config, 1)  # Fine on one device.


@pytest.mark.parametrize(
    "job, expected",
    [
        (
            "cfg_cell",
            "error: config.cell='transformer' is not allowed: unknown cell 'transformer': "
            "one of gru, lstm, mgu, mingru, minlstm, rglru, rnn, or package.module:ClassName",
        ),
        (
            "cfg_fraction",
            "error: config.validation_fraction=1.0 is not allowed: a fraction in [0, 1) "
            "(0: no validation, train on all training reviews)",
        ),
        (
            "cfg_parallelism",
            "error: config.parallelism='pjit' is not allowed: one of pmap, shard_map",
        ),
        (
            "cfg_devices",
            "error: config.batch_size=15 is not allowed: a multiple of the device count (2)",
        ),
    ],
)
def test_main_refuses_a_bad_config_value_before_any_work(runner, job, expected):
    result = runner.result(job)
    assert_one_line_error(result, 2, "error: config.")
    assert result.last_line == expected
    assert not runner.jobs[job].workdir.exists(), "failed only after making the workdir"
    assert "Constructing tf.data" not in result.stderr and "IMDB" not in result.stderr


@pytest.mark.parametrize(
    "job, field", [("key_unknown", "no_such_field"), ("key_typo", "hiden_size")]
)
def test_main_refuses_an_unknown_config_field(runner, job, field):
    result = runner.result(job)
    assert_one_line_error(result, 2, f"error: --config.{field}: the config has no field '{field}'")
    assert "configs/default.py" in result.last_line
    if field == "hiden_size":
        assert 'Did you mean "hidden_size"' in result.last_line
    assert not runner.jobs[job].workdir.exists()


# ----------------------------------------------------------------------------------------------
# 2. Missing data, unusable workdir.


def test_missing_data_is_one_clear_line(runner):
    result = runner.result("no_data")
    empty = runner.base / "empty"
    assert_one_line_error(result, 1, f"error: IMDB dataset not found in {empty}: ")
    assert "set TFDS_DATA_DIR or --config.data_dir" in result.last_line
    assert "imdb_reviews/plain_text/" in result.last_line
    assert checkpoint_steps(runner.base / "no_data" / "checkpoints") == []


def test_unwritable_workdir_is_one_clear_line(runner):
    result = runner.result("unwritable")
    workdir = runner.base / "afile" / "run"
    assert_one_line_error(result, 1, f"error: workdir '{workdir}' is not writable (")
    assert "pass --workdir=DIR with a directory you can write to" in result.last_line


def test_workdir_of_another_config_is_refused_once_it_saved_a_checkpoint(runner, tmp_path):
    from rnn_jax.training import workdir as workdirs

    # Nothing saved yet (a run that stopped before its first checkpoint): a new config replaces it.
    workdirs.prepare_workdir(tiny_config(runner.cache, hidden_size=4), str(tmp_path))
    workdirs.prepare_workdir(tiny_config(runner.cache), str(tmp_path))
    (tmp_path / "checkpoints" / "5").mkdir(parents=True)  # A saved step: now there is a run.
    # Fields that do not change the numbers may differ (e.g. the evaluation batch).
    workdirs.prepare_workdir(tiny_config(runner.cache, eval_batch_size=128), str(tmp_path))
    with pytest.raises(workdirs.WorkdirError) as info:
        workdirs.prepare_workdir(tiny_config(runner.cache, hidden_size=16), str(tmp_path))
    message = str(info.value)
    assert message.startswith(f"workdir '{tmp_path}' holds a run with another config (")
    assert "hidden_size: 8 -> 16" in message and "use a new --workdir" in message
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["hidden_size"] == 8  # The refused config did not overwrite the run's.


# ----------------------------------------------------------------------------------------------
# 3. Interruption and resumption.


def interrupted_step(result, name: str) -> int:
    pattern = rf"^interrupted: {name} at step (\d+) \(epoch \d+\): checkpoint saved in "
    match = re.search(pattern, result.last_line)
    assert match, result.describe()
    return int(match.group(1))


@pytest.mark.parametrize("name, job", [("SIGTERM", "term"), ("SIGINT", "int")])
def test_signal_saves_a_checkpoint_and_exits_128_plus_signum(runner, target, name, job):
    from rnn_jax.training.checkpointing import Checkpoints

    result = runner.result(f"{job}1")
    signum = getattr(signal, name)
    assert result.signalled == signum
    assert result.returncode == 128 + signum, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    assert result.last_line.endswith("rerun the same command to resume")
    step = interrupted_step(result, name)
    assert STEPS_PER_EPOCH <= step <= TINY["num_epochs"] * STEPS_PER_EPOCH
    assert step in result.steps_at_exit, result.steps_at_exit
    # It holds the state after `step` steps and the running sums of the partial epoch.
    checkpoints = Checkpoints(str(result.snapshot), 2, read_only=True)
    item = checkpoints.restore(step, target)
    checkpoints.close()
    assert int(item["state"].step) == step
    assert float(item["sums"]["count"]) == (step % STEPS_PER_EPOCH) * TINY["batch_size"]
    assert_finite_params(item)


@pytest.mark.parametrize("name, job", [("SIGTERM", "term"), ("SIGINT", "int")])
def test_rerun_after_a_signal_ends_like_an_uninterrupted_run(runner, name, job):
    step = interrupted_step(runner.result(f"{job}1"), name)
    result = finished(runner, f"{job}2")
    assert f"Resumed from checkpoint step {step}\n" in result.stderr
    finished(runner, "ref")
    assert run_metrics(runner.base / job) == run_metrics(runner.base / "ref")
    history = json.loads((runner.base / job / "history.json").read_text())
    mid_epoch = step % STEPS_PER_EPOCH > 0
    assert [h["resumed_mid_epoch"] for h in history].count(True) == int(mid_epoch)


def test_rerun_after_sigkill_resumes_from_the_last_checkpoint(runner):
    killed = runner.result("kill1")
    assert killed.signalled == signal.SIGKILL
    assert killed.returncode == -signal.SIGKILL, killed.describe()  # Killed, not finished.
    assert killed.steps_at_exit, "killed before the first checkpoint"
    result = finished(runner, "kill2")
    assert f"Resumed from checkpoint step {max(killed.steps_at_exit)}\n" in result.stderr
    finished(runner, "ref")
    assert run_metrics(runner.base / "kill") == run_metrics(runner.base / "ref")
    names = [p.name for p in (runner.base / "kill" / "checkpoints").iterdir()]
    assert not [n for n in names if "tmp" in n], names  # A save cut short is cleaned up.


def test_signals_mid_epoch_and_in_an_epochs_last_step_resume_exactly(runner):
    """SIGTERM at batch 10 of epoch 2, then (resumed) at its last batch, then a run to the end.

    The first stop saves step 36 with the partial epoch's sums. The second must finish epoch 2
    (validation, history, checkpoint with its metric) before stopping at step 50: a resumed run
    starts at the next epoch, so stopping earlier would lose epoch 2's validation and carry its
    sums into epoch 3. Signals are sent by the process to itself at chosen batches, so both
    cases happen every time (a signal from outside lands wherever the run happens to be).
    """
    result = finished(runner, "signals_in_epoch_2")
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    messages = outcome["messages"]
    assert len(messages) == 2, messages
    assert messages[0].startswith(f"SIGTERM at step {STEPS_PER_EPOCH + 11} (epoch 2): ")
    assert messages[1].startswith(f"SIGTERM at step {2 * STEPS_PER_EPOCH} (epoch 2): ")
    assert outcome["steps"][0][-1] == STEPS_PER_EPOCH + 11
    assert outcome["steps"][1][-1] == 2 * STEPS_PER_EPOCH
    workdir = runner.base / "signals_in_epoch_2"
    finished(runner, "ref")
    assert run_metrics(workdir) == run_metrics(runner.base / "ref")
    history = json.loads((workdir / "history.json").read_text())
    assert [h["resumed_mid_epoch"] for h in history] == [False, True, False]


# ----------------------------------------------------------------------------------------------
# 4. Damaged and half-written checkpoints.


@pytest.fixture
def ref_copy(runner, tmp_path):
    """A copy of the finished reference run: 2 or 3 epoch-end checkpoints (latest 2 + best)."""
    finished(runner, "ref")
    copy = tmp_path / "run"
    shutil.copytree(runner.base / "ref", copy)
    assert len(checkpoint_steps(copy / "checkpoints")) >= 2
    yield copy
    gc.collect()  # Orbax's futures of a failed restore log their errors now, not at exit.


@pytest.mark.parametrize("how", ["truncate", "truncate_data", "no_manifest"])
def test_damaged_latest_checkpoint_is_moved_aside_and_the_previous_restored(
    runner, target, ref_copy, how, caplog
):
    import jax
    import numpy as np

    from rnn_jax.training.checkpointing import Checkpoints

    *older, previous, latest = checkpoint_steps(ref_copy / "checkpoints")
    damage(ref_copy / "checkpoints" / str(latest), how)
    checkpoints = Checkpoints(str(ref_copy / "checkpoints"), 2)
    with caplog.at_level("WARNING"):
        step, item = checkpoints.restore_latest(target)
    checkpoints.close()
    assert step == previous and int(item["state"].step) == previous
    moved = ref_copy / "broken_checkpoints" / str(latest)
    assert (moved / "default").is_dir(), "the damaged checkpoint must be kept, not deleted"
    assert checkpoint_steps(ref_copy / "checkpoints") == [*older, previous]
    assert any(f"checkpoint step {latest} is damaged" in r.getMessage() for r in caplog.records)
    # What was restored is the reference run's checkpoint, not garbage.
    reference = Checkpoints(str(runner.base / "ref" / "checkpoints"), 2, read_only=True)
    expected = reference.restore(previous, target)
    reference.close()
    for a, b in zip(jax.tree.leaves(item), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_half_written_checkpoint_is_ignored_and_cleaned_up(target, ref_copy):
    from rnn_jax.training.checkpointing import Checkpoints

    directory = ref_copy / "checkpoints"
    steps = checkpoint_steps(directory)
    # What a run killed while saving step 100 leaves: Orbax's temporary directory.
    leftover = directory / f"{4 * STEPS_PER_EPOCH}.orbax-checkpoint-tmp-1795000000000000"
    shutil.copytree(directory / str(steps[-1]), leftover)
    (leftover / "commit_success.txt").unlink(missing_ok=True)
    reader = Checkpoints(str(directory), 2, read_only=True)  # predict, evaluate: ignored.
    assert reader.steps() == steps
    reader.close()
    assert leftover.exists()
    checkpoints = Checkpoints(str(directory), 2)  # A training run: ignored and removed.
    step, _ = checkpoints.restore_latest(target)
    checkpoints.close()
    assert step == steps[-1]
    assert not leftover.exists()
    assert not (ref_copy / "broken_checkpoints").exists()


def test_every_checkpoint_damaged_is_a_clear_error(target, ref_copy):
    from rnn_jax.training.checkpointing import Checkpoints, NoUsableCheckpointError

    steps = checkpoint_steps(ref_copy / "checkpoints")
    for step in steps:
        damage(ref_copy / "checkpoints" / str(step), "truncate")
    checkpoints = Checkpoints(str(ref_copy / "checkpoints"), 2)
    with pytest.raises(NoUsableCheckpointError) as info:
        checkpoints.restore_latest(target)
    message = str(info.value)
    assert f"could be restored (tried steps {steps[::-1]}" in message
    assert "remove the workdir to start over" in message
    assert checkpoint_steps(ref_copy / "broken_checkpoints") == steps
    assert checkpoint_steps(ref_copy / "checkpoints") == []


def test_a_checkpoint_of_other_code_is_a_clear_error_and_stays_in_place(target, ref_copy):
    # A cell edited after the run saved (here: a new parameter) is not damage: moving the steps
    # aside would make the next rerun start over from step 0.
    import jax.numpy as jnp

    from rnn_jax.training.checkpointing import CheckpointMismatchError, Checkpoints

    steps = checkpoint_steps(ref_copy / "checkpoints")
    state = target["state"]
    edited = target | {"state": state.replace(params=state.params | {"peephole": jnp.zeros(3)})}
    checkpoints = Checkpoints(str(ref_copy / "checkpoints"), 2)
    with pytest.raises(
        CheckpointMismatchError, match=r"missing from the checkpoint: state\.params\.peephole"
    ):
        checkpoints.restore_latest(edited)
    assert checkpoint_steps(ref_copy / "checkpoints") == steps
    assert not (ref_copy / "broken_checkpoints").exists()
    step, _ = checkpoints.restore_latest(target)  # The code that saved it still resumes.
    checkpoints.close()
    assert step == steps[-1]


def test_predict_skips_a_damaged_best_checkpoint(ref_copy, caplog):
    from rnn_jax.inference import runs as inference

    best = json.loads((ref_copy / "summary.json").read_text())["best_epoch"] * STEPS_PER_EPOCH
    steps = checkpoint_steps(ref_copy / "checkpoints")
    damage(ref_copy / "checkpoints" / str(best), "truncate_data")
    with caplog.at_level("WARNING"):
        run = inference.load_run(str(ref_copy))
    assert run.step == max(s for s in steps if s != best)
    assert any(f"checkpoint step {best} is damaged" in r.getMessage() for r in caplog.records)
    assert checkpoint_steps(ref_copy / "checkpoints") == steps  # Read-only: nothing moved.
    for step in steps:
        damage(ref_copy / "checkpoints" / str(step), "truncate")
    with pytest.raises(inference.RunNotFoundError, match=r"^no checkpoint in .* could be restored"):
        inference.load_run(str(ref_copy))


def test_main_with_every_checkpoint_damaged_exits_1(runner):
    result = runner.result("all_damaged")
    checkpoints = runner.base / "broken" / "checkpoints"
    assert_one_line_error(result, 1, f"error: no checkpoint in {checkpoints} could be restored")
    steps = runner.result("ref").steps_at_exit
    assert f"checkpoint step {steps[-1]} is damaged" in result.stderr
    assert checkpoint_steps(runner.base / "broken" / "broken_checkpoints") == steps


# ----------------------------------------------------------------------------------------------
# 5. NaN / Inf losses.


def test_absurd_learning_rate_stops_without_saving(runner):
    """SGD at 1e30: the weights blow up while the training loss stays finite (saturated gates),
    so it is validation that finds the NaN. (A NaN in the training loss itself: next test.)
    """
    result = runner.result("nan")
    assert_one_line_error(result, 1, "error: validation loss became NaN/Inf after epoch 1 ")
    expected = rf"\(step {STEPS_PER_EPOCH}\); stopped without saving; last good checkpoint: none\."
    assert re.search(expected, result.last_line), result.last_line
    assert "Lower config.learning_rate or set config.grad_clip_norm" in result.last_line
    assert checkpoint_steps(runner.base / "nan" / "checkpoints") == []
    assert not (runner.base / "nan" / "history.json").exists()


def test_nan_after_the_first_epoch_keeps_the_first_epochs_checkpoint(runner, target):
    """NaN from step 30 (epoch 2) on: the run stops, epoch 1's checkpoint stays and restores.

    The NaN is real: a wrapped train step turns the parameters into NaN from step 30 on, so the
    loss the real step computes is NaN and the run's own check has to catch it.
    """
    from rnn_jax.training.checkpointing import Checkpoints

    result = finished(runner, "nan_in_epoch_2")
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["message"] == (
        f"training loss or gradients became NaN/Inf at step {outcome['bad_from']} (epoch 2); "
        "stopped without "
        f"saving; last good checkpoint: step {STEPS_PER_EPOCH}. Lower config.learning_rate or "
        "set config.grad_clip_norm"
    )
    workdir = runner.base / "nan_in_epoch_2"
    assert checkpoint_steps(workdir / "checkpoints") == [STEPS_PER_EPOCH]
    assert [h["epoch"] for h in json.loads((workdir / "history.json").read_text())] == [1]
    checkpoints = Checkpoints(str(workdir / "checkpoints"), 2, read_only=True)
    item = checkpoints.restore(STEPS_PER_EPOCH, target)
    checkpoints.close()
    assert int(item["state"].step) == STEPS_PER_EPOCH
    assert_finite_params(item)


# ----------------------------------------------------------------------------------------------
# 6. Prediction on odd text, evaluation of a saved run.


def test_predict_texts_on_odd_reviews_gives_probabilities(runner):
    import numpy as np

    from rnn_jax.inference import runs as inference

    finished(runner, "ref")
    run = inference.load_run(str(runner.base / "ref"))
    texts = list(ODD_TEXTS.values())
    probabilities = inference.predict_texts(run, texts)
    assert probabilities.shape == (len(texts),)
    assert np.all(np.isfinite(probabilities))
    assert np.all((probabilities >= 0) & (probabilities <= 1)), probabilities
    _, known = inference.encode_texts(run, texts)
    known = dict(zip(ODD_TEXTS, known.tolist(), strict=True))
    assert known["long"] == 100_000  # All known; the model reads the last max_len.
    no_words = ("empty", "punctuation", "emoji", "unknown_words", "whitespace", "japanese", "hindi")
    assert all(known[k] == 0 for k in no_words), known


def test_predict_cli_prints_one_probability_per_review(runner):
    result = finished(runner, "predict")
    lines = result.stdout.splitlines()
    assert len(lines) == len(CLI_TEXTS), result.stdout
    for line in lines:
        assert 0.0 <= float(line.split("\t")[0]) <= 1.0, line
    assert "\\U0001f600" in result.stdout  # The emoji preview, escaped for an ASCII terminal.
    assert "note: no known words in ''" in result.stderr  # Said, not silently guessed.


def test_predict_without_a_run_is_a_clear_error(runner, tmp_path):
    from rnn_jax.inference import runs as inference
    from rnn_jax.training import workdir as workdirs

    empty = runner.base / "empty"
    result = runner.result("predict_empty")
    assert_one_line_error(result, 1, f"error: {empty}/config.json not found: is '{empty}' the ")
    # A workdir whose run never saved a checkpoint (e.g. stopped by a NaN in epoch 1).
    workdirs.prepare_workdir(tiny_config(runner.cache), str(tmp_path))
    shutil.copy(runner.base / "ref" / "vocab.json", tmp_path / "vocab.json")
    with pytest.raises(inference.RunNotFoundError, match=r"^no checkpoint in .*: train first$"):
        inference.load_run(str(tmp_path))


def test_evaluate_prints_the_test_accuracy_of_the_summary(runner):
    result = finished(runner, "evaluate")
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    summary = json.loads((runner.base / "ref" / "summary.json").read_text())
    assert metrics["split"] == "test"
    assert metrics["count"] == summary["test_examples"] == TEST_EXAMPLES
    assert metrics["accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-7)
    assert metrics["loss"] == pytest.approx(summary["test_loss"], rel=1e-6)
    assert metrics["steps"] == [summary["best_epoch"] * STEPS_PER_EPOCH]  # Best on validation.


# ----------------------------------------------------------------------------------------------
# 7. Reproducibility.


def test_same_config_and_seed_give_identical_runs(runner):
    for name in ("ref", "rerun"):
        assert "Resumed" not in finished(runner, name).stderr
    reference, rerun = run_metrics(runner.base / "ref"), run_metrics(runner.base / "rerun")
    assert len(reference["history"]) == TINY["num_epochs"]
    assert reference == rerun


def test_main_on_the_real_data_leaves_a_complete_workdir(runner):
    """The smoke run of ``python -m rnn_jax.main``: every file the workdir contract names."""
    finished(runner, "ref")
    workdir = runner.base / "ref"
    config = json.loads((workdir / "config.json").read_text())
    assert config["max_examples"] > 0 and set(config) == set(default.get_config().keys())
    assert json.loads((workdir / "vocab.json").read_text())
    history = json.loads((workdir / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, TINY["num_epochs"] + 1))
    events = list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    assert checkpoint_steps(workdir / "checkpoints"), "no checkpoint saved"
    summary = json.loads((workdir / "summary.json").read_text())
    for key in SUMMARY_KEYS:
        assert summary[key] is not None, key
    assert summary["test_examples"] == TEST_EXAMPLES and summary["epochs"] == TINY["num_epochs"]
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert (
        summary["devices"] == 1
    )  # config.cpu_devices (XLA_FLAGS sets no device count for the runs).
