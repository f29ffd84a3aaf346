"""Multi-host training with real processes: two JAX processes on 127.0.0.1, one CPU device each,
joined by JAX's distributed runtime as ``launch.sh`` documents (the JAX_* variables), on the
real IMDB data, under both data-parallel paths (``config.parallelism``): the reference runs
under ``pmap`` on one process, the two processes under ``shard_map``, and each fault is injected
under one path and resumed under the other. Faults come from ``tests.multihost_helpers``; every
wait is bounded."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnn_jax.inference import ensemble
from rnn_jax.inference import runs as inference
from tests.test_train import DATA_DIR

# One test worker runs every test that starts processes of its own (see launch.sh test), so
# the bounded waits below are not shared with another multi-process test.
pytestmark = [pytest.mark.xdist_group("subprocesses"), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 20  # --distributed_timeout: joining, and a silent peer.
STEPS_PER_EPOCH = 12  # 256 reviews, 20% validation, batch 16.
TINY = [
    "--config=configs/lstm.py",
    "--config.max_examples=256",
    "--config.vocab_size=300",
    "--config.max_len=32",
    "--config.embed_dim=8",
    "--config.hidden_size=8",
    "--config.batch_size=16",
    "--config.eval_batch_size=64",
    "--config.num_epochs=2",
    "--config.progress_bar=False",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    def __init__(self, args, env):
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "tests.multihost_helpers", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait(self, timeout=240):
        try:
            self.stdout, self.stderr = self.popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.stdout, self.stderr = self.popen.communicate()
            raise AssertionError(f"no exit within {timeout} s:\n{self.stderr[-3000:]}") from None
        self.ended = time.monotonic()
        self.code = self.popen.returncode
        return self

    @property
    def last_line(self) -> str:
        return (self.stderr.strip().splitlines() or [""])[-1]


def launch(
    workdir,
    cache,
    *,
    processes=2,
    faults=None,
    extra=None,
    address=None,
    devices=1,
    parallelism="pmap",
    common=(),
):
    """Starts the processes of one run; ``faults[i]`` = (fault, step), ``extra[i]`` = flags of
    process i, ``common`` = flags of every process."""
    address = address or f"127.0.0.1:{free_port()}"
    started = []
    for index in range(processes):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TFDS_DATA_DIR=str(DATA_DIR))
        if processes > 1:
            env.update(
                JAX_COORDINATOR_ADDRESS=address,
                JAX_NUM_PROCESSES=str(processes),
                JAX_PROCESS_ID=str(index),
            )
        fault, step = (faults or {}).get(index, ("none", 0))
        flags = [
            *TINY,
            f"--workdir={workdir}",
            f"--config.cache_dir={cache}",
            f"--config.cpu_devices={devices}",
            f"--config.parallelism={parallelism}",
            f"--distributed_timeout={TIMEOUT}",
            *common,
            *(extra or {}).get(index, []),
        ]
        started.append(Process([fault, str(step), *flags], env))
    return started


def metrics(workdir: Path):
    keys = ("epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy")
    history = json.loads((workdir / "history.json").read_text())
    summary = json.loads((workdir / "summary.json").read_text())
    return [{k: h[k] for k in keys} for h in history], {
        k: summary[k] for k in ("test_accuracy", "test_loss", "best_epoch", "epochs")
    }


def finished(processes):
    for p in processes:
        p.wait()
        assert p.code == 0, p.stderr[-3000:]
    return processes


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The reference runs, shared: one process with 2 CPU devices under pmap, and 2 processes
    under shard_map."""
    base = tmp_path_factory.mktemp("multihost")
    cache = base / "cache"
    finished(launch(base / "one", cache, processes=1, devices=2))
    two = finished(launch(base / "two", cache, parallelism="shard_map"))
    return base, cache, two


def test_two_processes_under_shard_map_train_exactly_like_one_process_with_two_devices(runs):
    """The global arrays of 2 processes x 1 device compute what pmap computes on 2 devices."""
    base, _, two = runs
    assert metrics(base / "two") == metrics(base / "one")
    assert "JAX: process 1 of 2, coordinator 127.0.0.1:" in two[1].stderr
    assert "data parallel: shard_map over 2 cpu device(s), 2 process(es)" in two[0].stderr
    # Process 0 alone wrote the workdir's files: one TensorBoard events file, not two.
    events = [n for n in os.listdir(base / "two" / "tensorboard") if "tfevents" in n]
    assert len(events) == 1
    for name in ("config.json", "vocab.json", "history.json", "summary.json"):
        assert (base / "two" / name).is_file()


def test_a_checkpoint_of_two_processes_restores_in_one(runs):
    base, _, _ = runs
    os.environ.setdefault("TFDS_DATA_DIR", str(DATA_DIR))
    run = inference.load_run(str(base / "two"))
    probabilities = inference.predict_texts(run, ["a wonderful film", "dull and far too long"])
    assert all(0 < p < 1 for p in probabilities)
    summary = json.loads((base / "two" / "summary.json").read_text())
    scored = ensemble.evaluate([str(base / "two")], "test")
    assert (scored["accuracy"], scored["count"]) == (summary["test_accuracy"], 256)


def test_sigterm_at_different_steps_stops_both_at_the_first_and_the_rerun_resumes_exactly(runs):
    """Under pmap, process 1 is preempted after step 17, process 0 would be after step 19: both
    stop at 17 (neither waits in a collective for the other), save together, exit 143; a rerun
    of both under shard_map ends exactly like the uninterrupted run."""
    base, cache, _ = runs
    workdir = base / "term"
    stopped = launch(workdir, cache, faults={0: ("sigterm", 19), 1: ("sigterm", 17)})
    for p in stopped:
        p.wait()
        assert p.code == 128 + signal.SIGTERM, p.stderr[-3000:]
        assert p.last_line.startswith("interrupted: SIGTERM at step 17 (epoch 2)"), p.last_line
    resumed = finished(launch(workdir, cache, parallelism="shard_map"))
    assert "Resumed from checkpoint step 17" in resumed[0].stderr
    assert metrics(workdir) == metrics(base / "two")


def test_a_dead_peer_stops_the_survivor_in_bounded_time_and_the_rerun_ends_the_same(runs):
    """kill -9 of process 1 mid-epoch 2 under shard_map: process 0 stops with one line (exit 1)
    within the timeout, epoch 1's checkpoint is intact, and rerunning both under pmap ends like
    the uninterrupted run."""
    base, cache, _ = runs
    workdir = base / "dead_peer"
    survivor, victim = launch(workdir, cache, faults={1: ("sigkill", 17)}, parallelism="shard_map")
    victim.wait()
    assert victim.code == -signal.SIGKILL
    survivor.wait(timeout=3 * TIMEOUT)
    assert survivor.code == 1, survivor.stderr[-3000:]
    assert survivor.last_line.startswith("error: a step failed in this 2-process run"), (
        survivor.stderr[-2000:]
    )
    assert "rerun every process to resume" in survivor.last_line
    stop_seconds = survivor.ended - victim.ended
    print(f"the survivor stopped {stop_seconds:.1f} s after its peer died")
    assert stop_seconds < TIMEOUT + 15
    assert (workdir / "checkpoints" / str(STEPS_PER_EPOCH)).is_dir()  # Epoch 1's is intact.
    resumed = finished(launch(workdir, cache))
    assert f"Resumed from checkpoint step {STEPS_PER_EPOCH}" in resumed[0].stderr
    assert metrics(workdir) == metrics(base / "two")


NO_DROPOUT = ("--config.dropout_rate=0", "--config.embed_dropout_rate=0")


def by_name(tree) -> dict:
    """A checkpoint's leaves by Orbax's name for them (``state/params/embedding/...``)."""
    import jax
    import numpy as np
    import orbax.checkpoint as ocp

    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(ocp.tree.str_keypath(path)): np.asarray(leaf) for path, leaf in leaves}


def restores_exactly_on_both_paths(workdir: Path, step: int) -> None:
    """The checkpoint of ``step``, read as the code resumes it and placed by each path (this
    process: one device), holds exactly the arrays saved on disk."""
    import ml_collections
    import orbax.checkpoint as ocp

    from rnn_jax import models
    from rnn_jax.training import parallel, resumption, train_steps
    from rnn_jax.training import workdir as workdirs
    from rnn_jax.training.checkpointing import Checkpoints

    saved = by_name(
        ocp.StandardCheckpointer().restore(workdir / "checkpoints" / str(step) / "default")
    )
    config = ml_collections.ConfigDict(workdirs.read_config(str(workdir)))
    state = train_steps.create_train_state(config, models.create_model(config), 1)
    fresh = {"state": state, "sums": train_steps.zero_metrics()}
    checkpoints = Checkpoints(str(workdir / "checkpoints"), 2, read_only=True)
    restored, restored_step = resumption.resume(checkpoints, fresh)
    checkpoints.close()
    assert restored_step == step
    for parallelism in parallel.PARALLELISMS:
        data_parallel = parallel.create(parallelism)
        placed = {name: data_parallel.replicate(tree) for name, tree in restored.items()}
        read = by_name(data_parallel.fetch(placed))
        assert read.keys() == saved.keys()
        for name, array in saved.items():
            assert read[name].dtype == array.dtype and np.array_equal(read[name], array), name


def test_a_run_resumes_on_another_device_count_under_the_other_path(runs):
    """Stopped mid-epoch 2 on 2 devices under pmap, resumed on 1 under shard_map, and the other
    way round: the checkpoint restores exactly under either path, and both runs end alike. (No
    dropout here: the device count then changes only the order the gradients are summed in, so
    the two runs must agree to float rounding; with dropout, each device draws its own masks.)"""
    base, cache, _ = runs
    ends = []
    for first, second in [((2, "pmap"), (1, "shard_map")), ((1, "shard_map"), (2, "pmap"))]:
        workdir = base / f"devices_{first[0]}_to_{second[0]}"
        (stopped,) = launch(
            workdir,
            cache,
            processes=1,
            devices=first[0],
            parallelism=first[1],
            faults={0: ("sigterm", 17)},
            common=NO_DROPOUT,
        )
        assert stopped.wait().code == 128 + signal.SIGTERM, stopped.stderr[-3000:]
        restores_exactly_on_both_paths(workdir, 17)
        (resumed,) = finished(
            launch(
                workdir,
                cache,
                processes=1,
                devices=second[0],
                parallelism=second[1],
                common=NO_DROPOUT,
            )
        )
        assert "Resumed from checkpoint step 17" in resumed.stderr
        ends.append(metrics(workdir))
    (history, summary), (other_history, other_summary) = ends
    assert [h["step"] for h in history] == [h["step"] for h in other_history]
    for entry, other in zip(history, other_history, strict=True):
        for key in ("train_loss", "val_loss"):
            assert entry[key] == pytest.approx(other[key], rel=1e-4), (key, entry, other)
    assert summary["test_loss"] == pytest.approx(other_summary["test_loss"], rel=1e-4)
    assert abs(summary["test_accuracy"] - other_summary["test_accuracy"]) <= 2 / 256


def test_an_unreachable_coordinator_is_one_line_within_the_timeout(tmp_path):
    (alone,) = launch(
        tmp_path / "w",
        tmp_path / "c",
        processes=1,
        extra={
            0: [
                "--num_processes=2",
                "--process_id=1",
                f"--coordinator_address=127.0.0.1:{free_port()}",
                "--distributed_timeout=5",
            ]
        },
    )
    alone.wait(timeout=60)
    assert alone.code == 1, alone.stderr[-3000:]
    assert alone.last_line.startswith("error: could not join the coordinator at 127.0.0.1:")
    assert "within 5 s" in alone.last_line
    assert alone.ended - alone.started < 40


@pytest.mark.parametrize(
    "extra, messages",
    [
        (
            {1: ["--config.hidden_size=9"]},
            ["error: the config or --workdir differs between processes"] * 2,
        ),
        (
            {0: ["--config.batch_size=15"], 1: ["--config.batch_size=15"]},
            ["error: config.batch_size=15 is not allowed: a multiple of the device count (2)"] * 2,
        ),
        (
            {1: ["--config.batch_size=15"]},  # Refused by one process only: both stop.
            [
                "error: process 1 refused the config (its error says why)",
                "error: config.batch_size=15 is not allowed: a multiple of the device count (2)",
            ],
        ),
    ],
    ids=["different_configs", "batch_not_divisible", "refused_by_one"],
)
def test_a_launch_that_cannot_work_is_one_line_and_exit_2_before_training(
    tmp_path, extra, messages
):
    processes = launch(tmp_path / "w", tmp_path / "c", extra=extra)
    for p, message in zip(processes, messages, strict=True):
        p.wait(timeout=3 * TIMEOUT)
        assert p.code == 2, p.stderr[-3000:]
        assert p.last_line.startswith(message), p.last_line
    assert not (tmp_path / "w" / "checkpoints").exists()


def test_an_incomplete_launch_names_what_is_missing(tmp_path):
    (p,) = launch(tmp_path / "w", tmp_path / "c", processes=1, extra={0: ["--num_processes=2"]})
    p.wait(timeout=60)
    assert p.code == 2
    assert p.last_line.startswith("error: a multi-host launch needs all three"), p.last_line
    assert "--coordinator_address (or $JAX_COORDINATOR_ADDRESS)" in p.last_line


# --------------------------------------------------------------------------- start-up, unit


@pytest.fixture
def joins(monkeypatch):
    """Records jax.distributed.initialize's arguments instead of joining anything."""
    import jax

    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    return calls


def test_no_launch_settings_and_no_cluster_is_a_single_process(joins):
    from rnn_jax.training import distributed

    assert distributed.initialize(environ={}) == "single process"
    assert (
        distributed.initialize(
            environ={
                "JAX_NUM_PROCESSES": "1",
                "JAX_PROCESS_ID": "0",
                "JAX_COORDINATOR_ADDRESS": "h:1",
            }
        )
        == "single process"
    )
    assert joins == []


def test_the_environment_variables_are_passed_to_jax_explicitly_and_flags_win(joins):
    from rnn_jax.training import distributed

    environ = {
        "JAX_COORDINATOR_ADDRESS": "host0:1234",
        "JAX_NUM_PROCESSES": "4",
        "JAX_PROCESS_ID": "3",
    }
    distributed.initialize(environ=environ, timeout_seconds=7)
    distributed.initialize(process_id=1, environ=environ)
    assert joins[0] == {
        "coordinator_address": "host0:1234",
        "num_processes": 4,
        "process_id": 3,
        "initialization_timeout": 7 + 10,
        "heartbeat_timeout_seconds": 7,
        "shutdown_timeout_seconds": 7,
    }
    assert joins[1]["process_id"] == 1


def test_a_slurm_step_is_left_to_jax_detection(joins, monkeypatch):
    import jax

    from rnn_jax.training import distributed

    monkeypatch.setattr(jax, "process_count", lambda: 2)
    slurm = {
        "SLURM_JOB_ID": "7",
        "SLURM_PROCID": "0",
        "SLURM_STEP_NODELIST": "n[1-2]",
        "SLURM_NTASKS": "2",
    }
    assert distributed.initialize(environ=slurm).startswith("SLURM: process 0 of 2")
    assert "coordinator_address" not in joins[0]  # JAX reads SLURM's variables itself.
    assert distributed.detected_cluster(slurm | {"SLURM_NTASKS": "1"}) is None
    assert distributed.detected_cluster({"TPU_WORKER_HOSTNAMES": "t0,t1"}) == "Cloud TPU"


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"}, "missing: --coordinator_address"),
        (
            {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"},
            "num_processes='two' is not allowed",
        ),
        (
            {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"},
            "process_id=2 is not allowed: 0 to 1",
        ),
    ],
)
def test_bad_launch_settings_name_what_is_wrong(joins, environ, message):
    from rnn_jax.training import distributed

    with pytest.raises(distributed.LaunchError, match=message):
        distributed.initialize(environ=environ)
    assert joins == []


def test_auto_asks_jax_to_detect_and_the_timeout_must_be_positive(joins, monkeypatch):
    import jax

    from rnn_jax.training import distributed

    monkeypatch.setattr(jax, "process_count", lambda: 4)
    assert distributed.initialize("auto", environ={}).endswith("of 4, found by JAX")
    assert "coordinator_address" not in joins[0]
    with pytest.raises(distributed.LaunchError, match="--distributed_timeout=0 is not allowed"):
        distributed.initialize(environ={}, timeout_seconds=0)
