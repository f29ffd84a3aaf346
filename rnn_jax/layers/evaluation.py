"""How a recurrent layer evaluates its cell over time: the options, and the one place they resolve.

``RecurrenceOptions`` is every choice about evaluation, declared once and passed down whole
(model -> stack -> layer); ``resolve`` turns it, the cell and the backend into a ``Plan``. Every
``"auto"`` is decided here and nowhere else, and ``Plan.describe`` is the log line that says
which path ran. The layer asks the cell what it offers, never which class it is:

* every cell runs step by step, in a masked ``lax.scan`` (the default path, ``"scan"``);
* a cell linear in h (``rnn_jax.cells.is_linear``: it computes its coefficients ``(a, b)`` from
  ``x`` alone) runs its recurrence ``h = a h + b`` sequentially or as an associative scan
  (``"linear"``);
* a cell with a fused whole-sequence kernel (``why_not_fused`` and ``fused_sequence``; today the
  LSTM's cuDNN call) may run through it (``"fused"``).

Where ``x W`` runs: a cell computes ``x_t W + h_{t-1} U``, and only the second term depends on
the previous step, so ``x W`` for all T steps can be one <[time*batch, in]> x <[in, G*H]> matmul
before the scan (``"before_scan"``) or run inside each step (``"in_step"``), which saves the
round trip of the <[time, batch, G*H]> projection through memory. ``"auto"``: in the step on CPU,
where it measured faster for the LSTM and GRU (``experiments/results/benchmark/table.md``), before
the scan elsewhere. Cells linear in h always project before (their coefficients need it).

``time_parallel="auto"``: sequential on CPU, where it measured faster
(``experiments/results/benchmark/linear.md``), parallel on GPU and TPU. ``lstm_backend="auto"``:
a cell's fused kernel on a GPU when the layer is eligible. ``remat``: recompute each scan step in
the backward pass instead of storing its intermediates (``jax.checkpoint``), which trades compute
for memory on long sequences; the linear recurrence stores only its states, so it ignores it.
"""

import dataclasses

import jax

from rnn_jax.cells import is_linear, linear_cell_names

INPUT_PROJECTIONS = ("auto", "before_scan", "in_step")
TIME_PARALLEL = ("auto", "sequential", "parallel")
LSTM_BACKENDS = ("auto", "scan", "cudnn")


def _check_choice(field: str, value, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{field}={value!r} is not allowed: one of {', '.join(allowed)}")


@dataclasses.dataclass(frozen=True)
class RecurrenceOptions:
    """How recurrent layers are evaluated; a config's fields of the same names (``from_config``).

    Attributes:
      unroll: scan steps per loop iteration (``lax.scan``'s ``unroll``).
      input_projection: where ``x W`` runs: ``"auto"``, ``"before_scan"`` or ``"in_step"``.
      time_parallel: a linear cell's recurrence: ``"auto"``, ``"sequential"`` or ``"parallel"``.
      lstm_backend: ``"auto"`` (a cell's fused cuDNN kernel on a GPU when eligible), ``"scan"``
        (never) or ``"cudnn"`` (always; an error when it cannot run).
      remat: recompute each scan step's intermediates in the backward pass (less memory).
    """

    unroll: int = 1
    input_projection: str = "auto"
    time_parallel: str = "auto"
    lstm_backend: str = "auto"
    remat: bool = False

    def __post_init__(self):
        if not isinstance(self.unroll, int) or isinstance(self.unroll, bool) or self.unroll < 1:
            raise ValueError(f"unroll={self.unroll!r} is not allowed: an integer >= 1")
        _check_choice("input_projection", self.input_projection, INPUT_PROJECTIONS)
        _check_choice("time_parallel", self.time_parallel, TIME_PARALLEL)
        _check_choice("lstm_backend", self.lstm_backend, LSTM_BACKENDS)
        if not isinstance(self.remat, bool):
            raise ValueError(f"remat={self.remat!r} is not allowed: True or False")

    @classmethod
    def from_config(cls, config) -> "RecurrenceOptions":
        """The options a config (or any mapping) holds under the same field names."""
        return cls(**{field.name: config[field.name] for field in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class Plan:
    """How one layer runs, as ``resolve`` decided.

    Attributes:
      path: ``"scan"`` (the masked step-by-step scan), ``"linear"`` (the linear recurrence) or
        ``"fused"`` (the cell's ``fused_sequence``).
      project_before_scan: ``x W`` for all steps in one matmul before the recurrence.
      parallel: the linear recurrence runs as an associative scan.
      options: what was asked.
      why: the reason for the path, in words.
    """

    path: str
    project_before_scan: bool
    parallel: bool
    options: RecurrenceOptions
    why: str

    def describe(self) -> str:
        """The log line: which path runs, and why."""
        if self.path == "fused":
            return f"recurrence: fused kernel (cuDNN): {self.why}"
        if self.path == "linear":
            how = "parallel (lax.associative_scan)" if self.parallel else "sequential (lax.scan)"
            # Its coefficients are always one matmul before, and it stores only its states.
            ignored = "; input_projection and remat do not apply to a cell linear in h"
            return f"recurrence: time_parallel={self.options.time_parallel!r} -> {how}{ignored}"
        where = "before the scan" if self.project_before_scan else "in each step"
        remat = ", remat" if self.options.remat else ""
        return f"recurrence: lax.scan, x W {where}{remat} ({self.why})"


def resolve(
    cell,
    options: RecurrenceOptions,
    *,
    dtype=None,
    has_initial_carry: bool = False,
    has_reset: bool = False,
    backend=None,
) -> Plan:
    """The plan for a layer of ``cell`` (see the module docstring for every rule).

    Args:
      cell: the layer's (unbound) cell: one of ours, or any Flax cell.
      options: what the layer was asked.
      dtype: the dtype the layer computes in (a cell's own ``dtype`` overrides it).
      has_initial_carry: the caller passes its own initial carry.
      has_reset: the layer resets its state inside sequences (a fused kernel cannot).
      backend: the JAX backend to plan for; JAX's default backend if None.

    Raises:
      ValueError: ``time_parallel="parallel"`` for a cell not linear in h, or
        ``lstm_backend="cudnn"`` for a layer or backend that cannot take the fused path.
    """
    backend = backend or jax.default_backend()
    name = type(cell).__name__
    linear = is_linear(cell)
    if options.time_parallel == "parallel" and not linear:
        raise ValueError(
            f"time_parallel='parallel' is not allowed: it needs a cell linear in h "
            f"(registered: {', '.join(linear_cell_names())}); {name} is not"
        )
    why_not_fused = getattr(cell, "why_not_fused", None)
    if why_not_fused is None:
        reason = f"cell is {type(cell).__module__}.{name}, which has no fused kernel"
    elif has_reset:
        reason = "the layer resets its state inside the sequence, which a fused kernel cannot"
    else:
        reason = why_not_fused(dtype=dtype, has_initial_carry=has_initial_carry)
    if reason is None and backend != "gpu":
        reason = f"the backend is {backend}, not a GPU"
    if options.lstm_backend == "cudnn" and reason is not None:
        raise ValueError(f"lstm_backend='cudnn' is not allowed: {reason}")
    if options.lstm_backend != "scan" and reason is None:
        return Plan("fused", False, False, options, f"lstm_backend={options.lstm_backend!r}")
    if linear:
        parallel = options.time_parallel == "parallel" or (
            options.time_parallel == "auto" and backend != "cpu"
        )
        return Plan("linear", True, parallel, options, "the cell is linear in h")
    if not hasattr(cell, "project_inputs"):  # A Flax cell: always whole inside the step.
        before, why = False, f"{name} cannot project its inputs apart"
    elif options.input_projection == "auto":
        before, why = backend != "cpu", f"input_projection='auto' on {backend}"
    else:
        before, why = options.input_projection == "before_scan", "as asked"
    if options.lstm_backend != "scan":
        why += f"; not fused: {reason}"
    return Plan("scan", before, False, options, why)
