"""Helpers of tests/test_reliability.py: command lines, a small parallel job runner, metrics.

Every ``python -m rnn_jax.main`` costs seconds of imports, so the reliability tests start all
their subprocesses at once, from a background thread, a few at a time (``JobRunner``), and each
test waits only for the jobs it checks. In-process tests run meanwhile.
"""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The checkout's sibling ../shared holds the prepared IMDB (never hard-code the machine's paths).
DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "tensorflow_datasets"

# A tiny run on the first 512 reviews of each split: 410 train reviews -> 25 steps per epoch.
TINY = {
    "max_examples": 512,
    "max_len": 32,
    "embed_dim": 8,
    "hidden_size": 8,
    "batch_size": 16,
    "eval_batch_size": 64,
    "vocab_size": 500,
    "num_epochs": 3,
    "progress_bar": False,
}
STEPS_PER_EPOCH = 25
TEST_EXAMPLES = 512

# What a run computes (not how fast): these must match bitwise between equivalent runs.
HISTORY_METRICS = (
    "epoch",
    "step",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
)
SUMMARY_METRICS = (
    "test_accuracy",
    "test_loss",
    "test_examples",
    "best_val_accuracy",
    "best_epoch",
    "epochs",
    "num_params",
)


def main_args(workdir, cache_dir, data_dir=DATA_DIR, **overrides) -> list[str]:
    """``python -m rnn_jax.main`` arguments of the tiny run (``overrides`` change fields)."""
    fields = dict(TINY, data_dir=str(data_dir), cache_dir=str(cache_dir)) | overrides
    return [
        "-m",
        "rnn_jax.main",
        "--config=configs/default.py",
        f"--workdir={workdir}",
        *(f"--config.{k}={v}" for k, v in fields.items()),
    ]


def base_env(jax_cache_dir=None, **extra) -> dict[str, str]:
    """The subprocess environment; ``jax_cache_dir`` shares compiled XLA programs between runs.

    The runs compile the same few programs (a cache hit returns the very same executable, so
    results are unchanged); sharing them saves seconds of CPU per run.
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    # One CPU device unless a test asks for more; the session's other flags (tests/conftest.py)
    # stay.
    flags = os.environ.get("XLA_FLAGS", "").split()
    env["XLA_FLAGS"] = " ".join(f for f in flags if "device_count" not in f)
    if jax_cache_dir is not None:
        env |= {
            "JAX_COMPILATION_CACHE_DIR": str(jax_cache_dir),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
        }
    return env | extra


def run_metrics(workdir) -> dict:
    """The metrics of a finished run's ``history.json`` and ``summary.json``."""
    workdir = Path(workdir)
    history = json.loads((workdir / "history.json").read_text())
    summary = json.loads((workdir / "summary.json").read_text())
    return {
        "history": [{k: entry[k] for k in HISTORY_METRICS} for entry in history],
        "summary": {k: summary[k] for k in SUMMARY_METRICS},
    }


def checkpoint_steps(directory) -> list[int]:
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def damage(step_dir, how: str) -> None:
    """Damages a saved checkpoint the way a full disk or a half-finished copy would.

    ``truncate``: every file under ``<step>/default`` cut to half its size (its JSON metadata
    no longer parses). ``truncate_data``: only the array chunks (``d/`` files) cut in half.
    ``no_manifest``: the OCDBT ``manifest.ocdbt`` files deleted.
    """
    root = Path(step_dir) / "default"
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files, f"nothing to damage in {root}"
    for path in files:
        if how == "truncate" or (how == "truncate_data" and path.parent.name == "d"):
            os.truncate(path, path.stat().st_size // 2)
        elif how == "no_manifest" and path.name == "manifest.ocdbt":
            path.unlink()
        elif how not in ("truncate", "truncate_data", "no_manifest"):
            raise ValueError(how)


@dataclasses.dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    signalled: int | None  # The signal the runner sent, if any.
    steps_at_exit: list[int]  # Checkpoint steps in the workdir the moment the process ended.
    snapshot: Path | None  # A copy of the workdir's checkpoints taken the moment it ended.

    @property
    def last_line(self) -> str:
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""

    def describe(self) -> str:
        return f"exit {self.returncode} after {self.seconds:.1f} s; stderr tail:\n" + "\n".join(
            self.stderr.strip().splitlines()[-15:]
        )


@dataclasses.dataclass
class Job:
    """One subprocess; it starts once ``ready()`` holds and a slot is free.

    ``trigger(job)`` is polled while it runs; when true, ``send`` is sent once.
    ``before()`` runs just before the start (e.g. damage a copied workdir).
    """

    name: str
    argv: list[str]
    workdir: Path | None = None
    env: dict[str, str] | None = None
    ready: Callable[[], bool] = lambda: True
    before: Callable[[], None] | None = None
    trigger: Callable[["Job"], bool] | None = None
    send: int = signal.SIGTERM
    snapshot_to: Path | None = None
    timeout: float = 300.0
    # Filled in by the runner.
    proc: subprocess.Popen | None = None
    started: float = 0.0
    signalled: int | None = None
    result: Result | None = None
    error: str | None = None
    done: threading.Event = dataclasses.field(default_factory=threading.Event)

    def stderr_text(self) -> str:
        return self._stderr_path.read_text(errors="replace") if self.proc else ""

    def start(self, log_dir: Path) -> None:
        if self.before is not None:
            self.before()
        self._stdout_path = log_dir / f"{self.name}.stdout"
        self._stderr_path = log_dir / f"{self.name}.stderr"
        with open(self._stdout_path, "w") as out, open(self._stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, *self.argv],
                cwd=REPO,
                env=self.env or base_env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                text=True,
            )
        self.started = time.monotonic()

    def finish(self) -> None:
        steps, snapshot = [], None
        if self.workdir is not None:
            checkpoints = self.workdir / "checkpoints"
            steps = checkpoint_steps(checkpoints)
            if self.snapshot_to is not None and checkpoints.is_dir():
                shutil.copytree(checkpoints, self.snapshot_to)
                snapshot = self.snapshot_to
        self.result = Result(
            returncode=self.proc.returncode,
            stdout=self._stdout_path.read_text(errors="replace"),
            stderr=self.stderr_text(),
            seconds=time.monotonic() - self.started,
            signalled=self.signalled,
            steps_at_exit=steps,
            snapshot=snapshot,
        )


class JobRunner:
    """Runs jobs in order of submission, at most ``parallel`` at a time, in a daemon thread."""

    def __init__(self, log_dir: Path, parallel: int = 3):
        self.log_dir = log_dir
        self.parallel = parallel
        self.jobs: dict[str, Job] = {}
        self._pending: list[Job] = []
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def add(self, job: Job) -> None:
        with self._lock:
            self.jobs[job.name] = job
            self._pending.append(job)

    def start(self) -> None:
        self._thread.start()

    def after(self, name: str) -> Callable[[], bool]:
        """A ``ready`` condition: the named job has finished."""
        return lambda: self.jobs[name].done.is_set()

    def result(self, name: str, timeout: float = 600.0) -> Result:
        job = self.jobs[name]
        if not job.done.wait(timeout):
            raise TimeoutError(f"job {name!r} did not finish within {timeout} s")
        if job.error is not None:
            raise RuntimeError(f"job {name!r} failed in the runner:\n{job.error}")
        return job.result

    def close(self) -> None:
        """Kills what still runs (only this runner's own processes); writes ``timeline.txt``."""
        self._stop = True
        self._thread.join(timeout=30)
        for job in self.jobs.values():
            if job.proc is not None and job.proc.poll() is None:
                job.proc.kill()
                job.proc.wait()
        started = [job.started for job in self.jobs.values() if job.started]
        lines = [
            f"{job.name:20s} start {job.started - min(started):6.1f} s  "
            f"took {job.result.seconds:5.1f} s  exit {job.result.returncode}"
            for job in sorted(self.jobs.values(), key=lambda j: j.started)
            if job.result is not None
        ]
        (self.log_dir / "timeline.txt").write_text("\n".join(lines) + "\n")

    def _loop(self) -> None:
        running: list[Job] = []
        while not self._stop:
            with self._lock:
                pending = list(self._pending)
            if not pending and not running:
                time.sleep(0.05)
                continue
            for job in pending:
                if len(running) >= self.parallel:
                    break
                if not job.ready():
                    continue
                with self._lock:
                    self._pending.remove(job)
                try:
                    job.start(self.log_dir)
                    running.append(job)
                except Exception:  # noqa: BLE001 -- reported by result().
                    job.error = traceback.format_exc()
                    job.done.set()
            for job in list(running):
                try:
                    if job.proc.poll() is None:
                        if job.trigger is not None and job.signalled is None and job.trigger(job):
                            job.proc.send_signal(job.send)
                            job.signalled = job.send
                        if time.monotonic() - job.started > job.timeout:
                            job.proc.kill()
                            job.proc.wait()
                            job.error = f"timed out after {job.timeout} s"
                        else:
                            continue
                    job.finish()
                except Exception:  # noqa: BLE001 -- reported by result().
                    job.error = (job.error or "") + traceback.format_exc()
                running.remove(job)
                job.done.set()
            time.sleep(0.02)


# ----------------------------------------------------------------------------------------------
# Scenarios that need to reach inside a run (``python -m tests.reliability_helpers NAME ...``):
# run as subprocesses, beside the others, so a signal sent to the process itself cannot hit the
# test session, and so they share the compilation cache.


def tiny_config(cache_dir, **overrides):
    """The config of ``main_args`` (``configs/default.py`` plus ``TINY``)."""
    from configs import default

    config = default.get_config()
    config.update(TINY | {"data_dir": str(DATA_DIR), "cache_dir": str(cache_dir)} | overrides)
    return config


def scenario_signals_in_epoch_2(workdir: str, cache_dir: str) -> None:
    """SIGTERM at chosen batches of epoch 2, each followed by the same run again.

    First while batch 10 is made (mid-epoch: stops at step 36), then, in the resumed run, while
    the epoch's last batch is made (stops at step 50, which ends the epoch), then a run to the
    end. Prints one JSON line: the messages of the ``Interrupted`` raised and the checkpoint
    steps after each stop.
    """
    from rnn_jax.data import batching
    from rnn_jax.training import train

    real_batches = batching.train_batches
    plan = [(1, 10), (1, STEPS_PER_EPOCH - 1)]  # (epoch index, batch index) of each signal.

    def batches(data, batch_size, *, seed, epoch, start_batch=0, **options):
        stream = real_batches(
            data, batch_size, seed=seed, epoch=epoch, start_batch=start_batch, **options
        )
        for index, batch in enumerate(stream, start=start_batch):
            if plan and plan[0] == (epoch, index):
                plan.pop(0)
                os.kill(os.getpid(), signal.SIGTERM)
            yield batch

    batching.train_batches = batches
    config = tiny_config(cache_dir)
    outcome = {"messages": [], "steps": []}
    for _ in range(3):
        try:
            train.train_and_evaluate(config, workdir)
            break
        except train.Interrupted as error:
            outcome["messages"].append(str(error))
            outcome["steps"].append(checkpoint_steps(Path(workdir) / "checkpoints"))
    print(json.dumps(outcome))


def scenario_nan_in_epoch_2(workdir: str, cache_dir: str) -> None:
    """The parameters become NaN from step ``STEPS_PER_EPOCH + 5`` on, inside the train step.

    The loss the real step computes is then NaN, and the run's own check has to catch it.
    Prints one JSON line: the first bad step and the ``NonFiniteLossError`` message.
    """
    import jax
    import jax.numpy as jnp

    from rnn_jax.training import train, train_steps

    real_step = train_steps.train_step
    bad_from = STEPS_PER_EPOCH + 5

    def poisoned_step(state, sums, batch, *, axis_name=None):
        nan = state.step >= bad_from
        params = jax.tree.map(lambda p: jnp.where(nan, jnp.nan, p), state.params)
        return real_step(state.replace(params=params), sums, batch, axis_name=axis_name)

    train_steps.train_step = poisoned_step
    try:
        train.train_and_evaluate(tiny_config(cache_dir), workdir)
        outcome = {"bad_from": bad_from, "message": "finished"}
    except train.NonFiniteLossError as error:
        outcome = {"bad_from": bad_from, "message": str(error)}
    print(json.dumps(outcome))


SCENARIOS = {
    "signals_in_epoch_2": scenario_signals_in_epoch_2,
    "nan_in_epoch_2": scenario_nan_in_epoch_2,
}

if __name__ == "__main__":
    from absl import logging

    from rnn_jax.training import parallel

    logging.set_verbosity(logging.INFO)
    # First, as rnn_jax.main does: a scenario runs on the devices a main run of its config uses.
    config = tiny_config("unused")
    parallel.use_cpu_devices(config.cpu_devices, (config.batch_size, config.eval_batch_size))
    SCENARIOS[sys.argv[1]](*sys.argv[2:])
