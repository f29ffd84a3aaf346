"""Does every cell compute on the default device what it computes on the host CPU?

The numerical half of ``python -m experiments.accelerator``; ``tests/test_device_checks.py``
runs the same checks as tests on whatever device is present (``pytest -m device`` on a GPU or
TPU host). For every cell of ``rnn_jax.cells.CELLS``, each linear cell with ``time_parallel``
sequential and parallel, the LSTM also through its cuDNN path (on a GPU
``jax.experimental.rnn.lstm``; elsewhere ``lstm_ref_with_flat_weights``, its CPU stand-in, and
the row says so):

* device vs host (``case_rows``): a ``Recurrence(return_sequences=True)`` layer on float32
  inputs <[B, T, 32]> with a mixed mask (a full row, post-padded rows, pre-padded rows, an empty
  row), the same parameters and inputs on the default device and on the host CPU; forward
  outputs, final carry, and the gradients of ``sum(sin(outputs)) + sum(carry**2)`` with respect
  to the parameters and the inputs, at JAX's default matmul precision and at ``"highest"`` on
  both sides;
* padding (``case_rows``): on the device, the same sequences post- and pre-padded give the same
  final carry (and the same outputs on the real steps);
* pmap (``pmap_row``): ``rnn_jax.training.train_steps.train_step`` under ``pmap`` over all local
  devices makes the same parameter update as one ``jit`` step on the same global batch (one
  device runs it too).

Each row reports the largest absolute error relative to the reference's largest absolute value
and passes or fails against ``HIGHEST_RTOL`` / ``DEFAULT_RTOL``. On a CPU-only machine "device"
and "host" are one device, and the rows say so.
"""

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.lib import timing
from experiments.lib.reporting import cell_label
from rnn_jax.cells import CELLS, is_linear
from rnn_jax.cells.cudnn_lstm import cudnn_lstm, lstm_ref_with_flat_weights
from rnn_jax.layers import Recurrence, RecurrenceOptions

# A small layer: the errors checked come from the arithmetic, not the size, and on a busy CPU
# each of the ~25 compilations costs seconds.
CHECK_SHAPE = {"batch": 8, "time": 16, "features": 32, "hidden": 32}
# One full row, post-padded rows, pre-padded rows and an empty row (cuDNN fails on a length of 0,
# jax-ml/jax#17966; rnn_jax.cudnn_lstm works around it).
CHECK_LENGTHS = (16, 13, 8, 1, 15, 7, 2, 0)
CHECK_PADDING = ("post", "post", "post", "post", "pre", "pre", "pre", "post")
# Random parameters (not the initializers'): every bias nonzero, no structure an implementation
# could get right by accident. Scale 0.3 keeps the gates away from saturation at 32 inputs.
PARAM_SCALE = 0.3
# Values on padded steps that would change every result if they leaked in (moderate: a huge
# value saturates a gate and then hides a leak).
GARBAGE_SCALE = 3.0
# "highest" on both sides is float32 arithmetic in another order (other fusions, FMA,
# transcendental implementations): ~1e-6 relative per op, ~1e-5 after 16 steps forward and
# back, so 1e-4 of the reference's largest value leaves room and still catches any real bug.
HIGHEST_RTOL = 1e-4
# The default precision lets a GPU round matmul inputs to TF32 (10-bit mantissa, ~5e-4
# relative per rounding) and a TPU to bfloat16 (8 bits, ~4e-3); a few matmuls deep and through
# the recurrence that reaches ~1e-2 of the largest value.
DEFAULT_RTOL = 2e-2
TOLERANCES = {"default": DEFAULT_RTOL, "highest": HIGHEST_RTOL}
LOSS_TERMS = ("outputs", "carry", "grad_params", "grad_inputs")
TIME_MODES = ("sequential", "parallel")


@dataclasses.dataclass(frozen=True)
class LayerCase:
    """One path of one cell, as the device runs it and as the host reference runs it.

    Attributes:
      cell: its name in ``CELLS``.
      path: what the row calls the path (e.g. ``time_parallel=parallel``).
      device_apply: ``(params, inputs, mask) -> (final_carry, outputs)`` on the device.
      host_apply: the same function for the host reference; the same object unless the device
        takes another implementation (cuDNN) than the reference (the scan).
    """

    cell: str
    path: str
    device_apply: Callable
    host_apply: Callable


def recurrence_apply(cell: str, **options) -> Callable:
    """``(params, inputs, mask) -> (carry, outputs)`` of a ``Recurrence`` of ``cell``."""
    cell_module = CELLS[cell](features=CHECK_SHAPE["hidden"])
    layer = Recurrence(cell_module, True, options=RecurrenceOptions(**options))

    def apply(params, inputs, mask):
        return layer.apply({"params": params}, inputs, mask)

    return apply


def cudnn_apply(on_gpu: bool) -> Callable:
    """The LSTM's cuDNN path: ``Recurrence(lstm_backend="cudnn")`` on a GPU, else its stand-in."""
    if on_gpu:
        return recurrence_apply("lstm", lstm_backend="cudnn")

    def apply(params, inputs, mask):
        return cudnn_lstm(
            params["cell"],
            inputs,
            mask,
            reverse=False,
            return_sequences=True,
            lstm=lstm_ref_with_flat_weights,
        )

    return apply


def layer_cases(on_gpu: bool) -> list[LayerCase]:
    """Every registered cell; linear ones in both time modes; the LSTM also by cuDNN."""
    cases = []
    for cell in CELLS:
        if is_linear(CELLS[cell]):
            for mode in TIME_MODES:
                apply = recurrence_apply(cell, time_parallel=mode)
                cases.append(LayerCase(cell, f"time_parallel={mode}", apply, apply))
        elif cell == "lstm":
            # "auto" would take cuDNN on a GPU: the scan is asked for by name.
            scan = recurrence_apply(cell, lstm_backend="scan")
            cases.append(LayerCase(cell, "lstm_backend=scan", scan, scan))
            path = "cuDNN (jax.experimental.rnn.lstm)" if on_gpu else "cuDNN stand-in (lstm_ref)"
            cases.append(LayerCase(cell, f"{path} vs scan", cudnn_apply(on_gpu), scan))
        else:
            apply = recurrence_apply(cell)
            cases.append(LayerCase(cell, "defaults", apply, apply))
    return cases


def check_batch(layout: str, seed: int = 0) -> dict[str, np.ndarray]:
    """The same sequences, padded as ``layout`` says, with garbage on the padded steps.

    Args:
      layout: ``"mixed"`` (each row as ``CHECK_PADDING``), ``"post"`` or ``"pre"``.
      seed: the sequences' seed (the garbage always differs from them).

    Returns:
      ``inputs`` <float32>[batch, time, features] and ``mask`` <bool>[batch, time].
    """
    batch, steps, features = (CHECK_SHAPE[k] for k in ("batch", "time", "features"))
    rng = np.random.default_rng(seed)
    sequences = rng.standard_normal((batch, steps, features)).astype(np.float32)
    inputs = GARBAGE_SCALE * rng.standard_normal((batch, steps, features)).astype(np.float32)
    mask = np.zeros((batch, steps), bool)
    for row, (length, padding) in enumerate(zip(CHECK_LENGTHS, CHECK_PADDING, strict=True)):
        padding = padding if layout == "mixed" else layout
        start = 0 if padding == "post" else steps - length
        inputs[row, start : start + length] = sequences[row, :length]
        mask[row, start : start + length] = True
    return {"inputs": inputs, "mask": mask}


def random_params(case: LayerCase, batch: dict, seed: int = 0) -> dict:
    """Normal parameters (``PARAM_SCALE``) with the shapes ``case``'s layer creates, as numpy."""
    # Every path of a cell creates the same parameters; the scan's are read without running it.
    cell = CELLS[case.cell](features=CHECK_SHAPE["hidden"])
    layer = Recurrence(cell, options=RecurrenceOptions(lstm_backend="scan"))
    init = functools.partial(layer.init, jax.random.key(0), batch["inputs"], batch["mask"])
    shapes = jax.eval_shape(init)["params"]
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda s: (PARAM_SCALE * rng.standard_normal(s.shape)).astype(s.dtype), shapes
    )


def forward_and_grads(apply: Callable, params, inputs, mask) -> dict:
    """Outputs, final carry, and the gradients of a fixed scalar loss of both.

    The loss, ``sum(sin(outputs)) + sum(carry**2)``, weighs every output and carry element
    differently, so a gradient that is wrong anywhere changes it.

    Args:
      apply: ``(params, inputs, mask) -> (carry, outputs)``.
      params: the layer's parameters.
      inputs: <float32>[batch, time, features].
      mask: <bool>[batch, time].

    Returns:
      ``outputs`` <[batch, time, H]>, ``carry`` (the cell's), ``grad_params`` (as ``params``)
      and ``grad_inputs`` <[batch, time, features]>.
    """

    def loss(params, inputs):
        carry, outputs = apply(params, inputs, mask)
        total = jnp.sum(jnp.sin(outputs)) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carry))
        return total, (outputs, carry)

    (_, (outputs, carry)), grads = jax.value_and_grad(loss, (0, 1), has_aux=True)(params, inputs)
    return {"outputs": outputs, "carry": carry, "grad_params": grads[0], "grad_inputs": grads[1]}


def precision_context(precision: str):
    """``"highest"``: ``jax.default_matmul_precision("highest")``; ``"default"``: JAX's own."""
    if precision == "highest":
        return jax.default_matmul_precision("highest")
    return contextlib.nullcontext()


def run_on(function: Callable, device, precision: str, *args) -> Any:
    """``function(*args)`` with every argument committed to ``device``; results as numpy.

    ``function`` is jitted, so it runs where its committed arguments are; the precision context
    covers its tracing, so each precision compiles its own version.
    """
    with precision_context(precision):
        return jax.device_get(function(*jax.device_put(args, device)))


def relative_error(actual, expected) -> float:
    """Largest ``|actual - expected|`` over the reference's largest ``|expected|``, worst leaf.

    A NaN or infinite difference counts as ``inf`` (a table would show NaN as missing).
    """
    worst = 0.0
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
        if a.size == 0:
            continue
        difference, scale = np.max(np.abs(a - e)), np.max(np.abs(e))
        error = 0.0 if difference == 0 else difference / scale if scale > 0 else np.inf
        worst = max(worst, float(error) if np.isfinite(error) else np.inf)
    return worst


def agreement_row(check: str, case: LayerCase, precision: str, errors: dict, tolerance: float):
    """A correctness row from the relative errors of some of ``LOSS_TERMS``."""
    max_error = max(errors.values())
    return {
        "check": check,
        "cell": cell_label(case.cell),
        "cell_name": case.cell,
        "path": case.path,
        "precision": precision,
        **errors,
        "max_error": max_error,
        "tolerance": tolerance,
        "passed": bool(max_error <= tolerance),
    }


def device_vs_host_row(case: LayerCase, precision: str, actual: dict, expected: dict) -> dict:
    """Device results against the host's, every term of ``LOSS_TERMS``."""
    errors = {term: relative_error(actual[term], expected[term]) for term in LOSS_TERMS}
    return agreement_row("device vs host", case, precision, errors, TOLERANCES[precision])


def padding_row(case: LayerCase, post: dict, pre: dict) -> dict:
    """Pre- against post-padded results: final carry, and outputs on each row's real steps."""
    steps = CHECK_SHAPE["time"]
    post_outputs = [post["outputs"][row, :n] for row, n in enumerate(CHECK_LENGTHS)]
    pre_outputs = [pre["outputs"][row, steps - n :] for row, n in enumerate(CHECK_LENGTHS)]
    errors = {
        "outputs": relative_error(pre_outputs, post_outputs),
        "carry": relative_error(pre["carry"], post["carry"]),
    }
    return agreement_row("pre vs post padding", case, "highest", errors, HIGHEST_RTOL)


def case_rows(case: LayerCase, device, host, precisions: Sequence[str]) -> list[dict]:
    """Device vs host at ``precisions``, and pre vs post padding on the device."""
    device_fn = jax.jit(functools.partial(forward_and_grads, case.device_apply))
    # The same jitted function when the paths agree: on a CPU-only machine, where device and
    # host are one device, each precision then compiles once.
    same = case.host_apply is case.device_apply
    host_fn = device_fn if same else jax.jit(functools.partial(forward_and_grads, case.host_apply))
    mixed = check_batch("mixed")
    params = random_params(case, mixed)
    rows = []
    for precision in precisions:
        actual = run_on(device_fn, device, precision, params, mixed["inputs"], mixed["mask"])
        expected = run_on(host_fn, host, precision, params, mixed["inputs"], mixed["mask"])
        rows.append(device_vs_host_row(case, precision, actual, expected))
    # Same shapes as above: the "highest" compilation is reused.
    post, pre = (
        run_on(device_fn, device, "highest", params, b["inputs"], b["mask"])
        for b in (check_batch("post"), check_batch("pre"))
    )
    rows.append(padding_row(case, post, pre))
    return rows


def pmap_config(devices: int):
    """A tiny LSTM config whose step is deterministic and linear in the gradient.

    No dropout (pmap folds the device index into the dropout key, jit does not), and plain SGD
    at a constant rate: Adam's first step is ``g / (|g| + eps)``, which turns a 1e-7 difference
    in a near-zero gradient into a full step of difference.
    """
    from configs import default

    config = default.get_config()
    config.update(
        vocab_size=1000,
        max_len=CHECK_SHAPE["time"],
        embed_dim=16,
        hidden_size=16,
        dropout_rate=0.0,
        embed_dropout_rate=0.0,
        optimizer="sgd",
        schedule="constant",
        learning_rate=0.1,
        batch_size=4 * devices,
    )
    return config


def pmap_row() -> dict:
    """``train_step`` under ``pmap`` over all local devices against one ``jit`` step.

    Compared: the parameter update (params after minus before), relative to the largest update,
    at "highest" precision (so the batch split changes only the summation order).
    """
    from rnn_jax import models
    from rnn_jax.training import parallel, train_steps

    devices = jax.local_device_count()
    config = pmap_config(devices)
    model = models.create_model(config)
    shape = {"batch": config.batch_size, "time": config.max_len, "vocab": config.vocab_size}
    tokens = timing.make_batch(shape)
    batch = {"token_ids": tokens["token_ids"], "label": tokens["labels"].astype(np.int32)}
    with jax.default_matmul_precision("highest"):
        state = train_steps.create_train_state(config, model, steps_per_epoch=1)
        sums = train_steps.zero_metrics()
        jitted, _ = jax.jit(train_steps.train_step)(state, sums, batch)
        data_parallel = parallel.create("pmap")
        p_step, _ = train_steps.compile_steps(data_parallel)
        state_r, sums_r = data_parallel.replicate(state), data_parallel.replicate(sums)
        pmapped, _ = p_step(state_r, sums_r, data_parallel.shard(batch))
    before = jax.device_get(state.params)
    expected = jax.tree.map(np.subtract, jax.device_get(jitted.params), before)
    actual = jax.tree.map(np.subtract, data_parallel.fetch(pmapped.params), before)
    error = relative_error(actual, expected)
    return {
        "check": "pmap vs jit",
        "cell": cell_label(config.cell),
        "cell_name": config.cell,
        "path": f"train_step, pmap over {devices} device(s), global batch {config.batch_size}",
        "precision": "highest",
        "reference": "jit on one device",
        "max_error": error,
        "tolerance": HIGHEST_RTOL,
        "passed": bool(error <= HIGHEST_RTOL),
        "note": "error of the parameter update (SGD, lstm_backend=auto)",
    }


def host_device():
    """The host CPU, the reference device.

    Raises:
      SystemExit: JAX has no CPU backend (``JAX_PLATFORMS`` leaves it out), so there is nothing
        to compare with.
    """
    try:
        return jax.devices("cpu")[0]
    except RuntimeError as error:
        raise SystemExit(
            f"no CPU backend to compare with ({error}): unset JAX_PLATFORMS or include cpu in "
            "it, e.g. JAX_PLATFORMS=cuda,cpu"
        ) from error
