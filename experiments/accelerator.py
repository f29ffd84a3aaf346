"""On a GPU or TPU: does every cell compute what it computes on the host CPU, and how fast is it?

    python -m experiments.accelerator [--repeats N] [--no-torch] [--no-speed]
                                      [--cpu-devices N] [--quick] [--out DIR]

One command for a researcher with an accelerator (about 5 minutes on one GPU, compilation
included). It needs only the core dependencies and synthetic token batches
(``experiments.benchmark.make_batch``): nothing on its path imports TensorFlow. PyTorch is an
optional peer, skipped with one line when it cannot be imported.

Correctness (``correctness.md``), every cell of ``rnn_jax.cells.CELLS``, each linear cell with
``time_parallel`` sequential and parallel, the LSTM also through its cuDNN path (on a GPU
``jax.experimental.rnn.lstm``; elsewhere ``lstm_ref_with_flat_weights``, its CPU stand-in, and
the row says so):

* device vs host: a ``Recurrence(return_sequences=True)`` layer on float32 inputs <[B, T, 32]>
  with a mixed mask (a full row, post-padded rows, pre-padded rows, an empty row), the same
  parameters and inputs on the default device and on the host CPU; forward outputs, final carry,
  and the gradients of ``sum(sin(outputs)) + sum(carry**2)`` with respect to the parameters and
  the inputs, at JAX's default matmul precision and at ``"highest"`` on both sides;
* padding: on the device, the same sequences post- and pre-padded give the same final carry
  (and the same outputs on the real steps);
* pmap: ``rnn_jax.train_steps.train_step`` under ``pmap`` over all local devices makes the same
  parameter update as one ``jit`` step on the same global batch (one device runs it too).

Each row reports the largest absolute error relative to the reference's largest absolute value
and passes or fails against ``HIGHEST_RTOL`` / ``DEFAULT_RTOL``. The command writes its report,
then exits non-zero, naming the failing rows, if any fails.

Speed (``table.md``): train and inference examples/s (median, p25-p75), compile seconds and XLA
temp memory (``experiments.benchmark``'s candidates, timed in interleaved rounds per shape):

* the course shape (B 64, T 200, E = H 128): every cell; the classic ones at unroll 1, 4, 16,
  with the input projection ``"auto"`` does not pick here, and computing in bfloat16; the
  linear ones in both ``time_parallel`` modes (and bfloat16); the LSTM through
  ``lstm_backend="cudnn"`` on a GPU; peers in the same rounds: Flax ``nn.RNN``, PyTorch
  (cuDNN on CUDA) and ``jax.experimental.rnn.lstm`` in the same classifier (GPU only);
* B 256 and B 1024 at T 1000: every cell at its defaults (linear cells both modes, the LSTM by
  scan and by cuDNN on a GPU), beside the LSTM peers.

Each row's training speed is divided by PyTorch's LSTM at the same shape (else the fastest LSTM
peer). ``--quick`` runs the same code on CPU in about a minute: one tiny shape, 2 rounds; every
cell at "highest", the LSTM at "default" too; every cell timed, the parallel scan on the minGRU
only, unroll 1 and 4 and the other variants (input projection, bfloat16) on the LSTM only, and
LSTM peers only; ``jax.experimental.rnn``'s classifier runs on the CPU stand-in there, so
everything a GPU runs is covered except cuDNN itself.
"""

import argparse
import contextlib
import dataclasses
import functools
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from experiments import benchmark, common, reporting
from experiments.reporting import Column, cell_label
from rnn_jax.cells.classic import CELLS, LINEAR_CELLS, is_linear
from rnn_jax.cells.cudnn_lstm import cudnn_lstm, lstm_ref_with_flat_weights
from rnn_jax.layers.recurrence import Recurrence, projects_before_scan
from rnn_jax.layers.scan import scans_in_parallel

# ----------------------------------------------------------------------------------------------
# Correctness: shapes, tolerances.

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

CORRECTNESS_COLUMNS = (
    Column("check", "check"),
    Column("cell", "cell"),
    Column("path", "path"),
    Column("precision", "matmul precision"),
    Column("device", "device"),
    Column("reference", "reference"),
    Column("outputs", "outputs", "{:.1e}"),
    Column("carry", "final carry", "{:.1e}"),
    Column("grad_params", "d loss / d params", "{:.1e}"),
    Column("grad_inputs", "d loss / d inputs", "{:.1e}"),
    Column("max_error", "max error / max abs", "{:.1e}"),
    Column("tolerance", "tolerance", "{:.0e}"),
    Column("passed", "result", lambda passed: "pass" if passed else "FAIL"),
    Column("note", "note"),
)

# ----------------------------------------------------------------------------------------------
# Speed: shapes, rounds.

SHAPES = {
    "B 64, T 200": benchmark.SHAPE,
    "B 256, T 1000": benchmark.SHAPE | {"batch": 256, "time": 1000},
    "B 1024, T 1000": benchmark.SHAPE | {"batch": 1024, "time": 1000},
}
# One tiny shape: the larger shapes run the same code (every cell at its defaults).
QUICK_SHAPES = {"B 8, T 12": benchmark.SHAPE | {"batch": 8, "time": 12}}
# GPU steps are milliseconds: 10 rounds give a stable median, and ~65 compilations fit the
# 5-minute budget only if the rounds stay few.
REPEATS, QUICK_REPEATS = 10, 2
UNROLLS, QUICK_UNROLLS = (1, 4, 16), (1, 4)
PEER_CELLS = benchmark.PEER_CELLS
# --quick checks the default precision and times the variants on QUICK_VARIED_CELLS only, and
# the parallel scan on QUICK_PARALLEL_CELLS only: the same code for every cell, and on 2 CPU
# cores each compilation costs seconds.
QUICK_VARIED_CELLS, QUICK_PARALLEL_CELLS = ("lstm",), ("mingru",)
EXPERIMENTAL_RNN = "jax.experimental.rnn"

COLUMNS = (
    Column("shape", "shape"),
    Column("implementation", "implementation"),
    Column("cell", "cell"),
    Column("compile_seconds", "compile s", "{:.2f}"),
    Column("train_examples_per_second", "train ex/s (median)", "{:,.0f}"),
    Column("train_spread", "train ex/s (p25–p75)"),
    Column("infer_examples_per_second", "inference ex/s (median)", "{:,.0f}"),
    Column("vs_reference", "train speed / reference", "{:.2f}"),
    Column("reference", "reference (PyTorch LSTM, else fastest LSTM peer)"),
    Column("temp_mb", "XLA temp MB", "{:.0f}"),
)


@dataclasses.dataclass
class Options:
    """What this run does, decided once from the flags and the backend.

    Attributes:
      quick: ``--quick``'s smaller matrix (see the module docstring).
      on_gpu: the default backend is a GPU (cuDNN rows run).
      torch: PyTorch is importable and not switched off.
      repeats: timed rounds per shape.
      started: ``time.perf_counter()`` at the start, for the progress lines.
    """

    quick: bool
    on_gpu: bool
    torch: bool
    repeats: int
    started: float = dataclasses.field(default_factory=time.perf_counter)

    def log(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.started:6.1f} s] {message}", flush=True)


# ----------------------------------------------------------------------------------------------
# The machine.


def nvidia_smi() -> str:
    """``nvidia-smi``'s name and driver of every GPU (``; ``-separated), or ``"n/a"``."""
    command = ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):  # No such program, no GPU, or it hung.
        return "n/a"
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    return "; ".join(lines) or "n/a"


def torch_versions(available: bool) -> dict | None:
    """PyTorch's version and the CUDA and cuDNN it was built with (None without PyTorch)."""
    if not available:
        return None
    import torch

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cudnn": cudnn,
    }


def environment(options: Options) -> dict[str, Any]:
    """What the numbers were measured on: device, versions, driver, and what ``auto`` picks."""
    import jaxlib

    device = jax.devices()[0]
    smi = nvidia_smi()
    return {
        "device_kind": device.device_kind,
        "platform": device.platform,
        "platform_version": getattr(device.client, "platform_version", "n/a"),
        "local_device_count": jax.local_device_count(),
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "python": platform.python_version(),
        "nvidia_smi": smi,
        "nvidia_driver": smi.split(";")[0].split(",")[-1].strip() if smi != "n/a" else "n/a",
        "default_matmul_precision": jax.config.jax_default_matmul_precision or "default",
        "torch": torch_versions(options.torch),
        # What the "auto" settings resolve to on this backend (the GPU/TPU defaults are guesses
        # until a run like this one is committed).
        "auto_input_projection": "before_scan" if projects_before_scan("auto") else "in_step",
        "auto_time_parallel": "parallel" if scans_in_parallel("auto") else "sequential",
        "auto_lstm_backend": "cudnn" if options.on_gpu else "scan",
    }


def environment_text(env: dict) -> str:
    """The environment as one Markdown paragraph."""
    torch = env["torch"]
    torch_text = (
        "not used"
        if torch is None
        else f"{torch['version']} (CUDA {torch['cuda']}, cuDNN {torch['cudnn']}, "
        f"CUDA available: {torch['cuda_available']})"
    )
    return (
        f"Device: **{env['device_kind']}** ({env['platform']}, {env['platform_version']}), "
        f"{env['local_device_count']} local device(s); JAX {env['jax_version']}, jaxlib "
        f"{env['jaxlib_version']}, Python {env['python']}; nvidia-smi: {env['nvidia_smi']} "
        f"(driver {env['nvidia_driver']}); default matmul precision: "
        f"{env['default_matmul_precision']}; PyTorch: {torch_text}. On this backend `auto` "
        f"means input_projection={env['auto_input_projection']}, "
        f"time_parallel={env['auto_time_parallel']}, lstm_backend={env['auto_lstm_backend']}."
    )


# ----------------------------------------------------------------------------------------------
# Correctness: the layers compared.


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
    layer = Recurrence(CELLS[cell](features=CHECK_SHAPE["hidden"]), True, **options)

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
    layer = Recurrence(CELLS[case.cell](features=CHECK_SHAPE["hidden"]), lstm_backend="scan")
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
    from rnn_jax.models import classifier as models
    from rnn_jax.training import parallel, train_steps

    devices = jax.local_device_count()
    config = pmap_config(devices)
    model = models.create_model(config)
    shape = {"batch": config.batch_size, "time": config.max_len, "vocab": config.vocab_size}
    tokens = benchmark.make_batch(shape)
    batch = {"token_ids": tokens["token_ids"], "label": tokens["labels"].astype(np.int32)}
    with jax.default_matmul_precision("highest"):
        state = train_steps.create_train_state(config, model, steps_per_epoch=1)
        sums = train_steps.zero_metrics()
        jitted, _ = jax.jit(train_steps.train_step)(state, sums, batch)
        p_step = parallel.pmap_step(train_steps.train_step, donate_state=False)
        state_r, sums_r = parallel.replicate(state), parallel.replicate(sums)
        pmapped, _ = p_step(state_r, sums_r, parallel.shard(batch))
    before = jax.device_get(state.params)
    expected = jax.tree.map(np.subtract, jax.device_get(jitted.params), before)
    actual = jax.tree.map(np.subtract, parallel.unreplicate(pmapped.params), before)
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


def failed_row(check: str, cell: str, path: str, error: Exception) -> dict:
    """A row for a check that raised: it fails, and the note says why."""
    return {
        "check": check,
        "cell": cell_label(cell),
        "cell_name": cell,
        "path": path,
        "passed": False,
        "note": f"raised {type(error).__name__}: {str(error).splitlines()[0][:200]}",
    }


def device_names(device, host) -> tuple[str, str]:
    """How the rows name the device and the reference (and when they are one device)."""
    name = f"{device.platform}:{device.id} ({device.device_kind})"
    if device == host:
        return f"{name}, the host itself", f"{host.platform}:{host.id}"
    return name, f"{host.platform}:{host.id} (host)"


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


def check_precisions(case: LayerCase, options: Options) -> tuple[str, ...]:
    """Both matmul precisions; in --quick runs "default" on the varied cells only."""
    if options.quick and case.cell not in QUICK_VARIED_CELLS:
        return ("highest",)
    return tuple(TOLERANCES)


def correctness_rows(options: Options) -> list[dict]:
    """Every correctness row (see the module docstring), progress printed per case."""
    device, host = jax.devices()[0], host_device()
    device_name, host_name = device_names(device, host)
    rows = []
    for case in layer_cases(options.on_gpu):
        options.log(f"correctness: {case.cell} {case.path}")
        try:
            case_result = case_rows(case, device, host, check_precisions(case, options))
        except Exception as error:  # Reported as a failing row; the other cases still run.
            case_result = [failed_row("device vs host", case.cell, case.path, error)]
        for row in case_result:
            reference = "same device" if row["check"] == "pre vs post padding" else host_name
            rows.append(row | {"device": device_name, "reference": reference})
    options.log("correctness: pmap train step")
    try:
        rows.append(pmap_row() | {"device": device_name})
    except Exception as error:
        rows.append(failed_row("pmap vs jit", "lstm", "train_step", error))
    return rows


# ----------------------------------------------------------------------------------------------
# Speed: the candidates.


def experimental_lstm_classifier(shape: dict, lstm: Callable) -> nn.Module:
    """The benchmark's classifier on ``jax.experimental.rnn``'s LSTM API.

    Embedding -> ``lstm`` (``rnn.lstm``'s signature) over the post-padded batch with
    ``seq_lengths`` -> ``h_n``, the state after each review's last real step -> Dense(1).
    """
    from jax.experimental import rnn

    embed, hidden = shape["embed"], shape["hidden"]

    class ExperimentalLstmClassifier(nn.Module):
        @nn.compact
        def __call__(self, token_ids, lengths):
            x = nn.Embed(shape["vocab"], embed)(token_ids)
            weights = self.param(
                "lstm", lambda key: rnn.init_lstm_weight(key, embed, hidden, 1, False)
            )
            zeros = jnp.zeros((1, token_ids.shape[0], hidden), x.dtype)  # <[layers, B, H]>
            _, h_n, _ = lstm(x, zeros, zeros, weights, lengths, embed, hidden, 1, 0.0, False)
            return nn.Dense(1)(h_n[0])[:, 0]

    return ExperimentalLstmClassifier()


def experimental_lstm_candidate(shape: dict, batch: dict, on_gpu: bool) -> benchmark.Candidate:
    """``jax.experimental.rnn.lstm`` (cuDNN) on a GPU; elsewhere its CPU stand-in, so labelled."""
    from jax.experimental import rnn

    if on_gpu:
        lstm, variant = rnn.lstm, "lstm (cuDNN)"
    else:
        lstm, variant = lstm_ref_with_flat_weights, "lstm_ref (CPU stand-in for cuDNN)"
    model = experimental_lstm_classifier(shape, lstm)
    inputs = (batch["token_ids"], batch["lengths"])
    return benchmark.jax_candidate(
        EXPERIMENTAL_RNN, variant, "lstm", model, inputs, batch["labels"]
    )


Spec = tuple[str, Callable[[], benchmark.Candidate]]


def rnn_jax_spec(cell: str, shape: dict, batch: dict, **variant) -> Spec:
    """A ``benchmark.rnn_jax_candidate`` to build, with a line saying which."""
    if cell == "lstm":
        variant.setdefault("lstm_backend", "scan")  # "auto" would take cuDNN on a GPU.
    words = ", ".join(f"{k}={v}" for k, v in variant.items())
    build = functools.partial(benchmark.rnn_jax_candidate, cell, shape, batch, **variant)
    return f"rnn_jax {cell} {words}".strip(), build


def classic_cells() -> list[str]:
    return [cell for cell in CELLS if not is_linear(CELLS[cell])]


def varied_cells(options: Options) -> tuple[str, ...]:
    """The cells whose variants (unroll, input projection, bfloat16) are timed."""
    return QUICK_VARIED_CELLS if options.quick else tuple(CELLS)


def default_specs(shape: dict, batch: dict, options: Options) -> list[Spec]:
    """Every cell at its defaults, each linear one in both time modes; the LSTM by cuDNN too."""
    specs = [rnn_jax_spec(cell, shape, batch) for cell in classic_cells()]
    for cell in LINEAR_CELLS:
        modes = TIME_MODES if not options.quick or cell in QUICK_PARALLEL_CELLS else TIME_MODES[:1]
        specs += [rnn_jax_spec(cell, shape, batch, time_parallel=mode) for mode in modes]
    if options.on_gpu:
        specs.append(rnn_jax_spec("lstm", shape, batch, lstm_backend="cudnn"))
    return specs


def variant_specs(shape: dict, batch: dict, options: Options) -> list[Spec]:
    """Unroll, the other input projection and bfloat16 (the course shape's extra rows)."""
    other = "in_step" if projects_before_scan("auto") else "before_scan"
    specs = []
    for cell in varied_cells(options):
        if is_linear(CELLS[cell]):  # No input projection choice, no unroll in parallel mode.
            specs.append(rnn_jax_spec(cell, shape, batch, compute_dtype="bfloat16"))
            continue
        unrolls = QUICK_UNROLLS if options.quick else UNROLLS
        specs += [rnn_jax_spec(cell, shape, batch, unroll=u) for u in unrolls if u != 1]
        specs.append(rnn_jax_spec(cell, shape, batch, input_projection=other))
        specs.append(rnn_jax_spec(cell, shape, batch, compute_dtype="bfloat16"))
    return specs


def peer_specs(shape: dict, batch: dict, options: Options, cells: Sequence[str]) -> list[Spec]:
    """Flax ``nn.RNN``, PyTorch (padded batch; cuDNN on CUDA) and ``jax.experimental.rnn``."""
    specs = []
    for cell in cells:
        flax = functools.partial(benchmark.flax_candidate, cell, shape, batch)
        specs.append((f"flax nn.RNN {cell}", flax))
        if options.torch:
            torch = functools.partial(benchmark.torch_candidate, cell, shape, batch, packed=False)
            specs.append((f"pytorch {cell}", torch))
    # The classifier itself runs on the CPU stand-in in --quick runs, so CI covers it.
    if "lstm" in cells and (options.on_gpu or options.quick):
        build = functools.partial(experimental_lstm_candidate, shape, batch, options.on_gpu)
        specs.append((f"{EXPERIMENTAL_RNN} lstm", build))
    return specs


def shape_specs(index: int, shape: dict, batch: dict, options: Options) -> list[Spec]:
    """The first shape (the course's) times everything; the larger ones defaults and LSTMs."""
    specs = default_specs(shape, batch, options)
    if index == 0:
        specs += variant_specs(shape, batch, options)
        cells = ("lstm",) if options.quick else PEER_CELLS
        return specs + peer_specs(shape, batch, options, cells)
    return specs + peer_specs(shape, batch, options, ("lstm",))


def build_candidates(specs: list[Spec], label: str, options: Options):
    """Compiles every candidate and runs one step of each (compiling its forward pass too).

    Returns:
      ``(candidates, failures)``: a candidate that raises is left out, and its failure (what it
      was, the error) is kept for the report, so one broken path does not cost the whole run.
    """
    candidates, failures = [], []
    for description, build in specs:
        options.log(f"{label}: compiling {description}")
        try:
            candidate = build()
            candidate.train()
            candidate.infer()
        except Exception as error:  # E.g. out of memory, or a kernel this device lacks.
            message = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
            print(f"  FAILED: {message}", flush=True)
            failures.append({"shape": label, "candidate": description, "error": message})
            continue
        candidates.append(candidate)
    return candidates, failures


def reference_row(rows: list[dict]) -> dict | None:
    """PyTorch's LSTM if it ran, else the fastest LSTM peer, else the fastest peer."""
    peers = [r for r in rows if r["framework"] != benchmark.RNN_JAX]
    lstm = [r for r in peers if r["cell"] == cell_label("lstm")]
    torch = [r for r in lstm if r["framework"] == "pytorch"]
    pool = torch or lstm or peers
    return max(pool, key=lambda r: r["train_examples_per_second"]) if pool else None


def speed_rows(candidates: list[benchmark.Candidate], label: str, batch_size: int) -> list[dict]:
    """One row per timed candidate, its training speed over the shape's reference."""
    rows = []
    for c in candidates:
        low, high = np.percentile(c.train_times, [75, 25])  # A slow time is a low speed.
        rows.append(
            {
                "shape": label,
                "implementation": c.implementation,
                "framework": c.framework,
                "cell": cell_label(c.cell),
                "compile_seconds": c.compile_seconds,
                "train_examples_per_second": batch_size / statistics.median(c.train_times),
                "train_spread": f"{batch_size / low:,.0f}–{batch_size / high:,.0f}",
                "infer_examples_per_second": batch_size / statistics.median(c.infer_times),
                "temp_mb": None if c.temp_bytes is None else c.temp_bytes / 2**20,
            }
        )
    reference = reference_row(rows)
    for row in rows:
        row["reference"] = reference and reference["implementation"]
        row["vs_reference"] = (
            row["train_examples_per_second"] / reference["train_examples_per_second"]
            if reference
            else None
        )
    return rows


def speed_section(options: Options) -> tuple[list[dict], list[dict]]:
    """Every shape's candidates, timed in interleaved rounds; one shape in memory at a time."""
    shapes = QUICK_SHAPES if options.quick else SHAPES
    rows, failures = [], []
    for index, (label, shape) in enumerate(shapes.items()):
        batch = benchmark.make_batch(shape)
        candidates, failed = build_candidates(
            shape_specs(index, shape, batch, options), label, options
        )
        options.log(f"{label}: timing {len(candidates)} candidates, {options.repeats} rounds")
        benchmark.time_rounds(candidates, options.repeats)
        rows += speed_rows(candidates, label, shape["batch"])
        failures += failed
    return rows, failures


# ----------------------------------------------------------------------------------------------
# The command.


def skipped_lines(options: Options) -> list[str]:
    """What this backend cannot run, one line each (printed and in the report)."""
    backend = jax.default_backend()
    if options.on_gpu:
        return []
    lines = [f"rnn_jax lstm_backend=cudnn: skipped on {backend} (cuDNN needs a GPU)"]
    if options.quick:
        lines.append(
            f"{EXPERIMENTAL_RNN}.lstm: cuDNN needs a GPU; its classifier runs on "
            "lstm_ref_with_flat_weights (the CPU stand-in) in this --quick run"
        )
    else:
        lines.append(f"{EXPERIMENTAL_RNN}.lstm: skipped on {backend} (cuDNN needs a GPU)")
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = common.make_parser("accelerator", __doc__.splitlines()[0], data=False, training=False)
    parser.add_argument("--repeats", type=int, help=f"timed rounds per shape (default {REPEATS})")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--no-speed", action="store_true", help="run the correctness checks only")
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=0,
        help="CPU devices for the pmap check on a CPU-only machine (default 0: one per core)",
    )
    parser.set_defaults(no_keras=True)  # benchmark.peers_available reads it; Keras needs TF.
    return common.parse(parser, argv)  # Also makes the --cpu-devices CPU devices.


def write_report(
    report: reporting.Report,
    options: Options,
    env: dict,
    correctness: list[dict],
    speed: list[dict] | None,
    failures: list[dict],
) -> None:
    """``report.md``, ``correctness.md``, ``table.md`` (speed), ``results.json``, ``meta.json``.

    ``speed`` is None with ``--no-speed``.
    """
    report.extra_meta["environment"] = env
    report.text(environment_text(env))
    for line in skipped_lines(options):
        report.text(f"Skipped: {line}.")
    report.text(
        "Correctness: each error is the largest absolute difference over the reference's "
        "largest absolute value (worst parameter for the gradients). Tolerances: default "
        f"matmul precision {DEFAULT_RTOL:.0e} (TF32 on GPUs, bfloat16 on TPUs), highest "
        f"{HIGHEST_RTOL:.0e}."
    )
    report.table("correctness", correctness, CORRECTNESS_COLUMNS, "Correctness")
    if speed is not None:
        report.text(
            f"Speed: median of {options.repeats} interleaved rounds per shape after "
            f"{benchmark.WARMUP} warm-up steps; compile: trace + lower + compile of the train "
            "step (PyTorch: its first step); XLA temp MB: the compiled train step's temporary "
            "buffers (JAX only)."
        )
        report.table("table", speed, COLUMNS, "Training and inference speed")
    if failures:
        report.text(
            "Candidates that raised (left out of the table):\n\n"
            + "\n".join(f"- {f['shape']}: {f['candidate']}: {f['error']}" for f in failures)
        )
    report.json(
        "results",
        {
            "environment": env,
            "tolerances": TOLERANCES,
            "check_shape": CHECK_SHAPE,
            "shapes": QUICK_SHAPES if options.quick else SHAPES,
            "repeats": options.repeats,
            "skipped": skipped_lines(options),
            "correctness": correctness,
            "speed": speed,
            "failures": failures,
        },
    )
    report.finish()


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the checks and the timings, writes the report; exits 1 if a check failed."""
    args = parse_args(argv)
    on_gpu = jax.default_backend() == "gpu"
    torch = benchmark.peers_available(args)["pytorch"]
    repeats = args.repeats or (QUICK_REPEATS if args.quick else REPEATS)
    options = Options(quick=args.quick, on_gpu=on_gpu, torch=torch, repeats=repeats)
    report = reporting.Report(args, "Accelerator: correctness against the host CPU, and speed")
    env = environment(options)
    print(environment_text(env), flush=True)
    for line in skipped_lines(options):
        print(line, flush=True)
    correctness = correctness_rows(options)
    speed, failures = (None, []) if args.no_speed else speed_section(options)
    write_report(report, options, env, correctness, speed, failures)
    failing = [
        f"{r['check']}: {r['cell']} {r['path']} ({r.get('precision', 'raised')})"
        for r in correctness
        if not r["passed"]
    ]
    if failing:
        print(f"FAILED {len(failing)} correctness row(s): {'; '.join(failing)}", flush=True)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
