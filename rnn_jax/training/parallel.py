"""Data parallelism: one training step on every device, as ``pmap`` or as ``shard_map``.

``config.parallelism`` picks one of two ``DataParallel``s (``create``). The loop above uses
their four operations only -- ``replicate`` the state, ``shard`` a batch, ``compile`` a step,
``fetch`` a replicated value back to the host -- and never asks which one runs:

* ``Pmap`` (``'pmap'``, the default the design card names): every array carries a leading axis
  of local devices; the state is copied onto each, a batch is reshaped to
  <[local_devices, rows / local_devices, ...]>, and ``jax.pmap`` maps the step over that axis.
* ``ShardMap`` (``'shard_map'``, what JAX recommends since 0.8): a one-axis mesh ``('data',)``
  over every device of every process; the state is one global ``jax.Array`` replicated
  (``P()``), a batch one global array whose rows are split over the mesh (``P('data')``), built
  from each process's own rows by ``jax.make_array_from_process_local_data`` (the same call for
  one process and many); the step is ``jit(shard_map(step))``. No array has a device axis.

A value that differs between rows -- a batch, or the carries of a language model's streams,
which pass from step to step -- is ``SHARDED``: ``shard`` places this process's rows, and
``gather`` brings every process's rows back to the host (for a checkpoint).

Either way each device runs ``step(..., axis_name=AXIS_NAME)`` on its own rows, and the step
averages its gradients with one ``lax.pmean`` (``train_steps.train_step``). ``pmap`` is itself
``jit(shard_map)`` since JAX 0.8, so both compile the same per-device program and the same
all-reduce: their losses, parameters and checkpoints are bitwise equal as the tests compile
(``tests/test_parallel.py``); with XLA's default CPU code generation a few steps differ by
float rounding (``experiments/parallel_rounding.py``: 2 of 100, at most 1.2e-7 relative).

Why ``check_vma=False`` (as ``pmap`` sets it): with JAX's varying-axes checking on, the gradient
of a replicated parameter inside ``shard_map`` is already summed over the devices (the transpose
of the implicit broadcast of an invariant value is a ``psum``), and ``pmean`` of that sum is a
no-op: a step written for ``pmap`` would apply ``devices`` times the mean gradient, silently. It
would also refuse every scan whose initial carry is a constant (zeros are invariant, the steps'
states vary over ``'data'``). With it off, the body is the per-device program ``pmap`` runs.

Reading back: a replicated value is read from this process's first device (``fetch``), never
by indexing a global array, which is a gather across every device (and fails across hosts).
Checkpoints hold what ``fetch`` returns, plain arrays without a device axis, so a run resumes on
any device count and under either path.

The CPU's split into several devices (``use_cpu_devices``) lives here as well: it decides how
many devices either path runs on.
"""

import abc
import functools
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

AXIS_NAME = "data"
PARALLELISMS = ("pmap", "shard_map")

# Where a step's argument or result lives: the same on every device, or split along its rows.
REPLICATED = "replicated"
SHARDED = "sharded"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def use_cpu_devices(requested: int, batch_sizes: tuple[int, ...]) -> int | None:
    """Splits the host CPU into several JAX devices, so each core runs one slice of a batch.

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
        # The devices are XLA_FLAGS' choice; the all-reduce still needs its longer wait (read
        # when the CPU backend starts: too late if it has, harmless with one device).
        wait_longer_for_late_devices()
        return None
    if requested == 0:
        divisor = math.gcd(*batch_sizes)
        requested = max(n for n in range(1, usable_cores() + 1) if divisor % n == 0)
    try:
        jax.config.update("jax_num_cpu_devices", requested)
    except RuntimeError:  # "should be updated before backends are initialized".
        return None
    if requested > 1:
        wait_longer_for_late_devices()  # The CPU backend has not started yet (see above).
    return requested


def wait_longer_for_late_devices() -> None:
    """Raises XLA's CPU all-reduce wait for a late device to ``COLLECTIVE_TIMEOUT_SECONDS``.

    Sets ``XLA_FLAGS``, which the CPU backend reads once, when it starts; a limit already set
    there wins.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "collective_call_terminate" not in flags:
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_cpu_collective_call_terminate_timeout_"
            f"seconds={COLLECTIVE_TIMEOUT_SECONDS}"
        ).strip()


# How long XLA's CPU all-reduce waits for a late device before aborting the process (XLA: 40 s).
COLLECTIVE_TIMEOUT_SECONDS = 3600


def wait_if_cpu_devices(tree: Any) -> Any:
    """Waits until ``tree`` is computed when this process splits its CPU into several devices.

    The loops call it on the previous step's output before they send the next step, so at most
    one step is queued behind the running one. With several CPU devices, XLA's CPU runtime
    deadlocked when the host ran further ahead: the first step's all-reduce waited forever for
    its other device (``configs/lstm.py`` on 2 devices, every time, when nothing else synced
    the host; the language model's evaluation under load). GPUs and TPUs, and one CPU device,
    keep the host running ahead.
    """
    if jax.default_backend() == "cpu" and jax.local_device_count() > 1:
        jax.block_until_ready(tree)
    return tree


class DataParallel(abc.ABC):
    """Runs a step on every device, each on its own rows of the batch.

    A step is ``step(*args, axis_name=...)``; with ``AXIS_NAME`` bound it may ``pmean`` or
    ``psum`` over the devices. ``compile`` says for each argument and result whether it is
    ``REPLICATED`` (placed with ``replicate``) or ``SHARDED`` (placed with ``shard``).
    """

    name: str

    @abc.abstractmethod
    def replicate(self, tree: Any) -> Any:
        """A pytree of host or device arrays, copied onto every device."""

    @abc.abstractmethod
    def shard(self, tree: Any) -> Any:
        """This process's rows of a global batch (or of any pytree of rows), over its devices.

        Args:
          tree: arrays <[rows, ...]>, this process's rows (``process_rows``), ``rows`` a
            multiple of its local device count.
        """

    @abc.abstractmethod
    def gather(self, tree: Any) -> Any:
        """A ``SHARDED`` pytree as host arrays <[rows of every process, ...]>, in process order.

        Every process calls it together (several processes exchange their rows).
        """

    @abc.abstractmethod
    def compile(
        self,
        step: Callable,
        inputs: Sequence[str],
        outputs: str | Sequence[str],
        *,
        donate_state: bool,
    ) -> Callable:
        """``step`` run on every device with ``axis_name=AXIS_NAME``, compiled on first call.

        Args:
          step: ``step(*args, axis_name=...)``.
          inputs: ``REPLICATED`` or ``SHARDED`` for each positional argument.
          outputs: the same for the result (one string), or for each item of a result tuple.
          donate_state: let XLA reuse the first argument's buffers (the train state).
        """

    def fetch(self, tree: Any) -> Any:
        """A replicated pytree as host numpy arrays, read from this process's first device."""
        shards = jax.tree.map(lambda x: x.addressable_shards[0].data, tree)
        return jax.tree.map(self._drop_device_axis, jax.device_get(shards))

    def _drop_device_axis(self, shard: np.ndarray) -> np.ndarray:
        return shard

    def describe(self) -> str:
        """The log line: which path runs, on which devices."""
        devices = f"{jax.device_count()} {jax.default_backend()} device(s)"
        return f"data parallel: {self.name} over {devices}, {jax.process_count()} process(es)"


class Pmap(DataParallel):
    """``jax.pmap`` over this process's devices: every array has a leading device axis."""

    name = "pmap"

    def replicate(self, tree: Any) -> Any:
        """Copies placed exactly as the pmapped steps place their outputs.

        A pmap of the identity whose axis has the step's name: a step fed a freshly replicated
        state reuses the compilation it made for its own outputs (with
        ``flax.jax_utils.replicate`` it compiled three times per run).
        """
        devices = jax.local_device_count()
        stacked = jax.tree.map(
            lambda x: np.broadcast_to(np.asarray(x), (devices, *np.shape(x))), tree
        )
        return _pmap_identity()(stacked)

    def shard(self, tree: Any) -> Any:
        devices = jax.local_device_count()
        return jax.tree.map(lambda v: np.reshape(v, (devices, -1, *np.shape(v)[1:])), tree)

    def gather(self, tree: Any) -> Any:
        # A pmapped array holds this process's devices only: <[local devices, rows, ...]>.
        local = jax.tree.map(lambda x: np.asarray(x).reshape(-1, *x.shape[2:]), tree)
        return _all_processes(local)

    def compile(self, step, inputs, outputs, *, donate_state):
        del inputs, outputs  # Every argument and result is mapped over the device axis.
        return _pmapped(step, donate_state)

    def _drop_device_axis(self, shard: np.ndarray) -> np.ndarray:
        # A device's block of a pmapped array is <[1, ...]>. (Not shard[0]: a scalar would come
        # back as a NumPy scalar, which Orbax does not take as a restore target.)
        return shard.reshape(shard.shape[1:])


# The compiled steps are kept per step function and placement, so that runs in one process
# (seeds of a study, the tests) reuse one compilation instead of tracing a new partial each time.


@functools.lru_cache(maxsize=64)
def _pmapped(step: Callable, donate_state: bool) -> Callable:
    return jax.pmap(
        functools.partial(step, axis_name=AXIS_NAME),
        axis_name=AXIS_NAME,
        donate_argnums=(0,) if donate_state else (),
    )


@functools.lru_cache(maxsize=64)
def _shard_mapped(mesh, step: Callable, in_specs, out_specs, donate_state: bool) -> Callable:
    mapped = jax.shard_map(
        functools.partial(step, axis_name=AXIS_NAME),
        mesh=mesh,
        in_specs=in_specs,
        out_specs=out_specs,
        check_vma=False,  # As pmap: see the module docstring.
    )
    return jax.jit(mapped, donate_argnums=(0,) if donate_state else ())


@functools.cache
def _pmap_identity() -> Callable:
    return jax.pmap(lambda tree: tree, axis_name=AXIS_NAME)


class ShardMap(DataParallel):
    """``jit(shard_map(step))`` over a one-axis mesh of every device; global arrays throughout."""

    name = "shard_map"

    def __init__(self):
        # Devices in process order, each process's in a block: a process's rows of the global
        # batch are then one contiguous block, as batching.shard_for_process and process_rows
        # cut them (and as pmap places them), which gather's order and a resume rely on.
        devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
        self.mesh = jax.sharding.Mesh(
            np.array(devices), (AXIS_NAME,), axis_types=(jax.sharding.AxisType.Explicit,)
        )

    def sharding(self, placement: str) -> NamedSharding:
        """Where ``REPLICATED`` and ``SHARDED`` values live on the mesh."""
        return NamedSharding(self.mesh, self.spec(placement))

    @staticmethod
    def spec(placement: str) -> P:
        if placement not in (REPLICATED, SHARDED):
            raise ValueError(f"placement {placement!r}: one of {REPLICATED!r}, {SHARDED!r}")
        return P() if placement == REPLICATED else P(AXIS_NAME)

    def replicate(self, tree: Any) -> Any:
        sharding = self.sharding(REPLICATED)
        # Every process holds the whole value: its "local data" is the global array.
        return jax.tree.map(
            lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree
        )

    def shard(self, tree: Any) -> Any:
        sharding = self.sharding(SHARDED)
        return jax.tree.map(
            lambda v: jax.make_array_from_process_local_data(sharding, np.asarray(v)), tree
        )

    def gather(self, tree: Any) -> Any:
        if jax.process_count() == 1:
            return jax.tree.map(np.asarray, tree)
        from jax.experimental import multihost_utils

        return jax.tree.map(
            lambda x: np.asarray(multihost_utils.process_allgather(x, tiled=True)), tree
        )

    def compile(self, step, inputs, outputs, *, donate_state):
        out_specs = (
            self.spec(outputs) if isinstance(outputs, str) else tuple(map(self.spec, outputs))
        )
        in_specs = tuple(map(self.spec, inputs))
        return _shard_mapped(self.mesh, step, in_specs, out_specs, donate_state)


def _all_processes(tree: Any) -> Any:
    """Each process's host rows, concatenated in process order on every process."""
    if jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    return jax.tree.map(
        lambda x: np.asarray(multihost_utils.process_allgather(x, tiled=True)), tree
    )


def process_rows(tree: Any) -> Any:
    """This process's contiguous share of the rows of a global host pytree (as batches split)."""
    index, count = jax.process_index(), jax.process_count()

    def rows(x):
        share = len(x) // count
        return x[index * share : (index + 1) * share]

    return jax.tree.map(rows, tree)


def create(parallelism: str) -> DataParallel:
    """The ``DataParallel`` that ``config.parallelism`` names, over every device there is.

    Raises:
      ValueError: ``parallelism`` is not one of ``PARALLELISMS``.
    """
    if parallelism == "pmap":
        return Pmap()
    if parallelism == "shard_map":
        return ShardMap()
    raise ValueError(f"parallelism={parallelism!r}: one of {', '.join(PARALLELISMS)}")
