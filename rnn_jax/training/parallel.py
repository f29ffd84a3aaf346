"""Everything ``pmap``: data parallelism over the local devices (multi-host: ``distributed``).

The train state is replicated on every local device; each global batch is split along its first
axis, one slice per device; gradients are averaged with ``lax.pmean`` inside the step (see
``train.train_step``'s ``axis_name``). A single device runs the very same code with a leading
axis of 1, so there is one code path to test.

In JAX >= 0.8 ``pmap`` is implemented with ``jit`` + ``shard_map`` and is in maintenance mode;
keeping it behind this module's functions (``replicate``, ``unreplicate``, ``shard``,
``pmap_step``) means moving to ``jit`` with a ``('data',)`` mesh touches only this file.
"""

import functools
import math
import os
from collections.abc import Callable
from typing import Any

import flax.jax_utils
import jax
import numpy as np

AXIS_NAME = "batch"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def use_cpu_devices(requested: int, batch_sizes: tuple[int, ...]) -> int | None:
    """Splits the host CPU into several JAX devices, so ``pmap`` runs one batch slice per core.

    XLA runs the small matmuls and gate math of a recurrent step on about one core; with one CPU
    device per core, each core runs its own slice of the batch (the speed-up on this project's
    machines: ``experiments/results/cores/table.md``). The gradients are then averaged by XLA's
    in-process CPU all-reduce, which by default aborts the process when a device is 40 s late
    ("Termination timeout for all reduce"); a busy machine can be that late, so several devices
    also raise that limit to ``COLLECTIVE_TIMEOUT_SECONDS``. ``config.cpu_devices`` still
    defaults to 1, so a config computes the same numbers on any machine (the all-reduce sums in
    another order).
    Only the CPU backend is affected: GPUs and TPUs are devices already. Must run before
    anything asks JAX about devices.

    Args:
      requested: devices to make; 0 means one per usable core, lowered to the largest count
        that divides every batch size (so a default config always splits evenly).
      batch_sizes: global batch sizes the devices must split evenly (train, evaluation).

    Returns:
      The CPU device count set; None when ``XLA_FLAGS`` sets it (that choice wins) or when JAX
      has started already (its devices stay as they are).
    """
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return None
    if requested == 0:
        divisor = math.gcd(*batch_sizes)
        requested = max(n for n in range(1, usable_cores() + 1) if divisor % n == 0)
    try:
        jax.config.update("jax_num_cpu_devices", requested)
    except RuntimeError:  # "should be updated before backends are initialized".
        return None
    if requested > 1 and "collective_call_terminate" not in os.environ.get("XLA_FLAGS", ""):
        # Read when the CPU backend starts, which has not happened yet (see above).
        os.environ["XLA_FLAGS"] = (
            f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_collective_call_terminate_timeout_"
            f"seconds={COLLECTIVE_TIMEOUT_SECONDS}"
        ).strip()
    return requested


# How long XLA's CPU all-reduce waits for a late device before aborting the process (XLA: 40 s).
COLLECTIVE_TIMEOUT_SECONDS = 3600


@functools.cache
def _replicator() -> Callable:
    return jax.pmap(lambda tree: tree, axis_name=AXIS_NAME)


def replicate(tree: Any) -> Any:
    """Copies a pytree onto every local device (adds a leading device axis).

    The copies are placed exactly as the pmapped steps place their outputs (a pmap whose axis
    has the same name), so a step fed a freshly replicated state reuses the compilation it made
    for its own outputs (with ``flax.jax_utils.replicate`` it compiled three times per run).
    """
    devices = jax.local_device_count()
    stacked = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (devices, *np.shape(x))), tree)
    return _replicator()(stacked)


def unreplicate(tree: Any) -> Any:
    """The first device's copy of a replicated pytree, fetched to the host as numpy."""
    return jax.device_get(flax.jax_utils.unreplicate(tree))


def shard(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Splits this host's batch over its local devices.

    Args:
      batch: arrays with a leading axis of size B (this host's share of the global batch).

    Returns:
      The same arrays reshaped to <[local_devices, B / local_devices, ...]>.
    """
    devices = jax.local_device_count()
    return {k: v.reshape(devices, -1, *v.shape[1:]) for k, v in batch.items()}


def pmap_step(step: Callable, *, donate_state: bool) -> Callable:
    """``pmap`` over local devices with ``AXIS_NAME`` bound, so the step can ``pmean``.

    Args:
      step: ``step(state, ..., axis_name=...)``; receives ``axis_name=AXIS_NAME``.
      donate_state: let XLA reuse the first argument's buffers (the train state).
    """
    return jax.pmap(
        functools.partial(step, axis_name=AXIS_NAME),
        axis_name=AXIS_NAME,
        donate_argnums=(0,) if donate_state else (),
    )
