"""Multi-host runs: start-up on JAX's distributed runtime, and what the processes must agree on.

One process per host (``launch.sh`` starts it; the same command everywhere). A process learns
its place from flags (``--coordinator_address``, ``--num_processes``, ``--process_id``) or the
environment variables ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``,
all three or none; flags win. With none, a SLURM step (``srun``) or a GKE TPU pod is left to
JAX's own cluster detection, and anything else is a single process, which starts nothing.
``--coordinator_address=auto`` alone asks JAX to detect the cluster (Cloud TPU VMs, MPI, ...).

Every wait is bounded by ``timeout_seconds``: joining the coordinator, and JAX's heartbeat, after
which the coordination service ends a process whose peer stopped answering. A peer that dies
mid-step makes the next collective fail at once; ``main`` turns that into one line and exit 1.
"""

import hashlib
import json
import os
import sys
import threading
from collections.abc import Mapping

import jax
import numpy as np

ENV_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
DEFAULT_TIMEOUT_SECONDS = 120


_joined = False  # Whether this process joined others (is part of a multi-host run).


def joined() -> bool:
    """Whether this process runs with others (``initialize`` joined them)."""
    return _joined


class LaunchError(ValueError):
    """The launch settings are incomplete or contradict each other (exit 2, before any work)."""


class DistributedError(RuntimeError):
    """The processes could not meet, or lost each other (exit 1)."""


def detected_cluster(environ: Mapping[str, str]) -> str | None:
    """The multi-process cluster JAX can detect on its own, from the environment, or None."""
    if all(k in environ for k in ("SLURM_JOB_ID", "SLURM_PROCID", "SLURM_STEP_NODELIST")):
        if int(environ.get("SLURM_NTASKS", "1")) > 1:
            return "SLURM"
    hosts = environ.get("TPU_PROCESS_ADDRESSES") or environ.get("TPU_WORKER_HOSTNAMES") or ""
    if "," in hosts:
        return "Cloud TPU"
    return None


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
    environ: Mapping[str, str] = os.environ,
) -> str:
    """Joins the other processes of a multi-host run (must run before JAX starts its backend).

    Args:
      coordinator_address: ``host:port`` of process 0; None reads ``JAX_COORDINATOR_ADDRESS``.
      num_processes: processes in the run; None reads ``JAX_NUM_PROCESSES``.
      process_id: this process, ``0 .. num_processes - 1``; None reads ``JAX_PROCESS_ID``.
      timeout_seconds: bound on joining and on a silent peer (JAX's heartbeat timeout).
      environ: where the environment variables are read.

    Returns:
      What was started, for the log: ``"single process"``, or a description of the run.

    Raises:
      LaunchError: some of the three settings are given but not all, or they are not valid.
      DistributedError: the coordinator could not be reached within ``timeout_seconds``.
    """
    if timeout_seconds < 1:
        raise LaunchError(
            f"--distributed_timeout={timeout_seconds} is not allowed: a positive number of seconds"
        )
    given = {
        "coordinator_address": _setting(coordinator_address, environ, ENV_VARS[0]),
        "num_processes": _setting(num_processes, environ, ENV_VARS[1]),
        "process_id": _setting(process_id, environ, ENV_VARS[2]),
    }
    auto = given["coordinator_address"] == "auto"
    if auto and given["num_processes"] is None and given["process_id"] is None:
        _join(timeout_seconds, "the cluster JAX detects (--coordinator_address=auto)")
        return f"process {jax.process_index()} of {jax.process_count()}, found by JAX"
    if all(v is None for v in given.values()):
        cluster = detected_cluster(environ)
        if cluster is None:
            return "single process"
        _join(timeout_seconds, f"{cluster} (detected by JAX)")
        return f"{cluster}: process {jax.process_index()} of {jax.process_count()}"
    missing = [
        f"--{name} (or ${variable})"
        for (name, value), variable in zip(given.items(), ENV_VARS, strict=True)
        if value is None
    ]
    if missing:
        raise LaunchError(
            f"a multi-host launch needs all three of coordinator address, process count and "
            f"process id; missing: {', '.join(missing)}"
        )
    address = str(given["coordinator_address"])
    count = _integer("num_processes", given["num_processes"], minimum=1)
    index = _integer("process_id", given["process_id"], minimum=0)
    if index >= count:
        raise LaunchError(
            f"process_id={index} is not allowed: 0 to {count - 1} (num_processes - 1)"
        )
    if count == 1:
        return "single process"
    _join(
        timeout_seconds,
        f"the coordinator at {address} as process {index} of {count}",
        coordinator_address=address,
        num_processes=count,
        process_id=index,
    )
    return f"process {index} of {count}, coordinator {address}"


def _setting(value, environ: Mapping[str, str], name: str):
    return value if value is not None else environ.get(name) or None


def _integer(name: str, value, minimum: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number < minimum:
        raise LaunchError(f"{name}={value!r} is not allowed: an integer >= {minimum}")
    return number


# JAX's own initialization timeout ends the process with a C++ abort and a stack trace; ours
# fires this much earlier and exits with one line.
_JAX_TIMEOUT_MARGIN_SECONDS = 10


def _join(timeout_seconds: int, what: str, **arguments) -> None:
    """``jax.distributed.initialize``, given up after ``timeout_seconds`` with one line, exit 1.

    A process that cannot reach the coordinator, or a coordinator whose peers never come, waits
    inside JAX (C++, the interpreter blocked); a timer thread ends it at the bound.
    """
    message = (
        f"could not join {what} within {timeout_seconds} s; start every process within that "
        "time, with the same coordinator address (--distributed_timeout sets the bound)"
    )
    joined = threading.Event()

    def give_up():
        if not joined.is_set():
            print(f"error: {message}", file=sys.stderr, flush=True)
            os._exit(1)  # No clean exit: JAX's shutdown would wait for the missing peers.

    # Our SignalFlag handles SIGTERM while training; JAX's preemption service would install a C++
    # handler that swallows it everywhere else (data loading, restore, test).
    jax.config.update("jax_enable_preemption_service", False)
    timer = threading.Timer(timeout_seconds, give_up)
    timer.daemon = True
    timer.start()
    try:
        jax.distributed.initialize(
            **arguments,
            initialization_timeout=timeout_seconds + _JAX_TIMEOUT_MARGIN_SECONDS,
            heartbeat_timeout_seconds=timeout_seconds,
            shutdown_timeout_seconds=timeout_seconds,  # The barrier of a normal exit.
        )
    except Exception as error:  # JAX raises several types; the user needs one line.
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        raise DistributedError(f"{message} ({type(error).__name__}: {first_line})") from None
    finally:
        joined.set()
        timer.cancel()
    global _joined
    _joined = True


def _digest(value) -> np.ndarray:
    return np.frombuffer(
        hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest(), np.uint32
    )


def _gather(array: np.ndarray) -> np.ndarray:
    """Every process's ``array``, stacked in process order (all processes call it together)."""
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(array))


def agree_to_start(value: dict, error: Exception | None) -> None:
    """Every process starts, or every process stops with the same kind of error (exit 2).

    A process whose config ``validate`` refused would otherwise leave the others waiting for it
    in their first collective.

    Args:
      value: what must be the same everywhere (the config and the workdir), JSON-serializable.
      error: this process's own objection (e.g. a ``ConfigError``), None if it has none.

    Raises:
      ``error`` where there is one; ``LaunchError`` on the other processes, or on all when
      ``value`` differs between processes.
    """
    if jax.process_count() == 1:
        if error is not None:
            raise error
        return
    everyone = _gather(np.concatenate([_digest(value), [np.uint32(error is not None)]]))
    refused = [p for p in range(len(everyone)) if everyone[p, -1]]
    if error is not None:
        raise error
    if refused:
        raise LaunchError(f"process {refused[0]} refused the config (its error says why)")
    differ = [p for p in range(len(everyone)) if not np.array_equal(everyone[p], everyone[0])]
    if differ:
        raise LaunchError(
            f"the config or --workdir differs between processes (process {differ[0]} vs "
            "process 0); start every process with the same command and flags"
        )


def check_same_everywhere(what: str, value) -> None:
    """Raises ``DistributedError`` unless every process holds the same ``value``.

    Args:
      what: names the value in the message (``"the restored checkpoint step"``).
      value: JSON-serializable.
    """
    if jax.process_count() == 1:
        return
    everyone = _gather(_digest(value))
    differ = [p for p in range(len(everyone)) if not np.array_equal(everyone[p], everyone[0])]
    if differ:
        raise DistributedError(
            f"{what} differs between processes (process {differ[0]} vs process 0); rerun every "
            "process"
        )


def stop_everywhere(signum: int | None) -> int | None:
    """The signal every process stops for: one arrived at any of them (all call this together).

    A signal reaches the processes of a preempted job at slightly different steps; stopping
    only where it arrived would leave the others waiting in the next collective.

    Args:
      signum: the signal this process received, None if none.

    Returns:
      The largest signal number any process received, None if none did.
    """
    if jax.process_count() == 1:
        return signum
    return int(_gather(np.int32(signum or 0)).max()) or None


def is_writer() -> bool:
    """Whether this process writes the workdir's files (process 0); all save checkpoints."""
    return jax.process_index() == 0
