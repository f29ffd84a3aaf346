"""Timing: the ``Candidate`` every speed study times, its synthetic batch, and the rounds.

A candidate is one implementation of one cell, compiled, with a training step and an inference
step to call. ``time_rounds`` visits every candidate in turn in each round, so load from other
processes on a shared machine spreads over all of them instead of hitting one: compare ratios,
not absolute numbers. ``build_candidates`` compiles a list of ``Spec`` (``experiments.lib.grids``
writes them), optionally leaving out one that raises so a broken path does not cost a run.
"""

import dataclasses
import time
from collections.abc import Callable

import numpy as np

# The course's shape: batch 64, 200 steps, embedding and hidden 128, vocabulary 10,000.
COURSE_SHAPE = {"batch": 64, "time": 200, "embed": 128, "hidden": 128, "vocab": 10_000}
QUICK_SHAPE = COURSE_SHAPE | {"batch": 8, "time": 20}
WARMUP = 2


@dataclasses.dataclass
class Candidate:
    """One implementation of one cell, compiled and ready to run training and inference steps.

    Attributes:
      framework: ``rnn_jax``, ``flax nn.RNN``, ``keras``, ``pytorch`` or ``jax.experimental.rnn``.
      variant: what distinguishes it within its framework (e.g. ``unroll=4``).
      cell: its name in ``rnn_jax.cells.CELLS``.
      compile_seconds: JAX: trace + lower + compile of the train step; Keras: its first
        ``train_on_batch``; PyTorch (eager): its first step.
      train: runs one training step and waits for its result.
      infer: runs one forward pass (logits) and waits for its result.
      temp_bytes: XLA's temporary buffers of the compiled train step (JAX only), else None.
      hlo: the compiled train step's optimized HLO text (JAX only), else None.
    """

    framework: str
    variant: str
    cell: str
    compile_seconds: float
    train: Callable[[], None]
    infer: Callable[[], None]
    temp_bytes: int | None = None
    hlo: str | None = dataclasses.field(default=None, repr=False)
    train_times: list[float] = dataclasses.field(default_factory=list)
    infer_times: list[float] = dataclasses.field(default_factory=list)

    @property
    def implementation(self) -> str:
        return f"{self.framework} {self.variant}".strip()


# A candidate to build: a line saying which, and the function that compiles it.
Spec = tuple[str, Callable[[], Candidate]]


def make_batch(shape: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Post-padded random reviews (Flax's ``seq_lengths`` and cuDNN need the padding at the end)."""
    rng = np.random.default_rng(seed)
    batch, time_steps = shape["batch"], shape["time"]
    lengths = rng.integers(time_steps // 2, time_steps + 1, batch).astype(np.int32)
    token_ids = rng.integers(4, shape["vocab"], (batch, time_steps)).astype(np.int32)
    token_ids[np.arange(time_steps)[None, :] >= lengths[:, None]] = 0
    labels = rng.integers(0, 2, batch).astype(np.float32)
    return {"token_ids": token_ids, "lengths": lengths, "labels": labels}


def train_flops_per_example(cell: str, shape: dict) -> float:
    """Matmul FLOPs of one training example: ``6 (E + H) G H T``.

    The recurrent layer's matmuls are ``2 (E + H) G H`` multiply-adds per time step forward
    (input projection and recurrent matmul, G gates: the cell's ``num_gates``), and a training
    step costs three times its forward matmuls (forward, and the two backward matmuls of each).
    A cell linear in h has no recurrent matmul: ``6 E G H T``.
    """
    from rnn_jax.cells import CELLS, is_linear  # Imports JAX, as everything that runs a model.

    gates = CELLS[cell].num_gates
    reads = shape["embed"] + (0 if is_linear(CELLS[cell]) else shape["hidden"])
    return 6 * reads * gates * shape["hidden"] * shape["time"]


def matmul_peak_flops(size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a large float32 JAX matmul on the default device (best of ``repeats``)."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((size, size), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    matmul(a, a).block_until_ready()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        matmul(a, a).block_until_ready()
        times.append(time.perf_counter() - started)
    return 2 * size**3 / min(times)


def time_rounds(candidates: list[Candidate], repeats: int) -> None:
    """Warm-up steps, then ``repeats`` rounds that time a step of every candidate in turn."""
    for candidate in candidates:
        for _ in range(WARMUP):
            candidate.train()
            candidate.infer()
    for _ in range(repeats):
        for c in candidates:
            for run, times in [(c.train, c.train_times), (c.infer, c.infer_times)]:
                started = time.perf_counter()
                run()
                times.append(time.perf_counter() - started)


def build_candidates(
    specs: list[Spec], label: str, log: Callable[[str], None], keep_going: bool = False
) -> tuple[list[Candidate], list[dict]]:
    """Compiles every candidate of ``specs``, logging each.

    Args:
      specs: what to build.
      label: what the log lines and failures name (e.g. the shape).
      log: prints a progress line.
      keep_going: run one step of each (compiling its forward pass too) and leave out one that
        raises (out of memory, a kernel this device lacks), so one broken path does not cost the
        whole run; else an error stops the run.

    Returns:
      ``(candidates, failures)``, each failure ``{"shape", "candidate", "error"}``.
    """
    candidates, failures = [], []
    for description, build in specs:
        log(f"{label}: compiling {description}")
        if not keep_going:
            candidates.append(build())
            continue
        try:
            candidate = build()
            candidate.train()
            candidate.infer()
        except Exception as error:  # Reported, not raised: see keep_going.
            message = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
            print(f"  FAILED: {message}", flush=True)
            failures.append({"shape": label, "candidate": description, "error": message})
            continue
        candidates.append(candidate)
    return candidates, failures
