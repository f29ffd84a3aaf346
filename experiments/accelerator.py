"""On a GPU or TPU: does every cell compute what it computes on the host CPU, and how fast is it?

    python -m experiments.accelerator [--repeats N] [--no-torch] [--no-speed]
                                      [--cpu-devices N] [--quick] [--out DIR]

One command for a researcher with an accelerator (about 5 minutes on one GPU, compilation
included). It needs only the core dependencies and synthetic token batches
(``experiments.lib.timing.make_batch``): nothing on its path imports TensorFlow. PyTorch is an
optional peer, skipped with one line when it cannot be imported.

Correctness (``correctness.md``): ``experiments.lib.device_checks`` (every cell on the device
against the host CPU, at both matmul precisions; pre- against post-padding; pmap against jit).
The command writes its report, then exits non-zero, naming the failing rows, if any fails.

Speed (``table.md``): train and inference examples/s (median, p25-p75), compile seconds and XLA
temp memory (the benchmark's candidates, ``experiments.lib.candidates``, timed in interleaved
rounds per shape, ``experiments.lib.timing``):

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
import dataclasses
import time
from collections.abc import Sequence

import jax

from experiments.lib import (
    device_checks,
    device_info,
    flags,
    grids,
    reporting,
    speed_tables,
    timing,
)
from experiments.lib.candidates import EXPERIMENTAL_RNN, PEER_CELLS, peers_available
from experiments.lib.device_checks import DEFAULT_RTOL, HIGHEST_RTOL, TOLERANCES
from experiments.lib.reporting import Column, cell_label

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

SHAPES = {
    "B 64, T 200": timing.COURSE_SHAPE,
    "B 256, T 1000": timing.COURSE_SHAPE | {"batch": 256, "time": 1000},
    "B 1024, T 1000": timing.COURSE_SHAPE | {"batch": 1024, "time": 1000},
}
# One tiny shape: the larger shapes run the same code (every cell at its defaults).
QUICK_SHAPES = {"B 8, T 12": timing.COURSE_SHAPE | {"batch": 8, "time": 12}}
# GPU steps are milliseconds: 10 rounds give a stable median, and ~65 compilations fit the
# 5-minute budget only if the rounds stay few.
REPEATS, QUICK_REPEATS = 10, 2
UNROLLS, QUICK_UNROLLS = (1, 4, 16), (1, 4)
# --quick times the variants on QUICK_VARIED_CELLS only, and the parallel scan on
# QUICK_PARALLEL_CELLS only: the same code for every cell, and on 2 CPU cores each compilation
# costs seconds.
QUICK_VARIED_CELLS, QUICK_PARALLEL_CELLS = ("lstm",), ("mingru",)

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


# --quick checks the default precision on these cells only: the same code for every cell, and on
# 2 CPU cores each compilation costs seconds.
QUICK_DEFAULT_CELLS = ("lstm",)


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


def check_precisions(case: device_checks.LayerCase, quick: bool) -> tuple[str, ...]:
    """Both matmul precisions; in --quick runs "default" on ``QUICK_DEFAULT_CELLS`` only."""
    if quick and case.cell not in QUICK_DEFAULT_CELLS:
        return ("highest",)
    return tuple(TOLERANCES)


def correctness_rows(options: Options) -> list[dict]:
    """Every row of ``experiments.lib.device_checks``, progress logged per case.

    A check that raises is a failing row, and the other checks still run.
    """
    device, host = jax.devices()[0], device_checks.host_device()
    device_name, host_name = device_names(device, host)
    rows = []
    for case in device_checks.layer_cases(options.on_gpu):
        options.log(f"correctness: {case.cell} {case.path}")
        precisions = check_precisions(case, options.quick)
        try:
            case_result = device_checks.case_rows(case, device, host, precisions)
        except Exception as error:  # Reported as a failing row; the other cases still run.
            case_result = [failed_row("device vs host", case.cell, case.path, error)]
        for row in case_result:
            reference = "same device" if row["check"] == "pre vs post padding" else host_name
            rows.append(row | {"device": device_name, "reference": reference})
    options.log("correctness: pmap train step")
    try:
        rows.append(device_checks.pmap_row() | {"device": device_name})
    except Exception as error:
        rows.append(failed_row("pmap vs jit", "lstm", "train_step", error))
    return rows


def lstm_by_scan(cell: str) -> dict:
    """The options every rnn_jax spec of ``cell`` takes.

    The LSTM's scan is asked for by name: ``auto`` would take cuDNN on a GPU, which has a row of
    its own.
    """
    return {"lstm_backend": "scan"} if cell == "lstm" else {}


def default_specs(shape: dict, batch: dict, options: Options) -> list[timing.Spec]:
    """Every cell at its defaults, each linear one in both time modes; the LSTM by cuDNN too."""
    from rnn_jax.cells import CELLS, LINEAR_CELLS, is_linear

    classic = [cell for cell in CELLS if not is_linear(CELLS[cell])]
    specs = [grids.rnn_jax_spec(cell, shape, batch, lstm_by_scan(cell)) for cell in classic]
    for cell in LINEAR_CELLS:
        both = not options.quick or cell in QUICK_PARALLEL_CELLS
        modes = grids.TIME_MODES if both else grids.TIME_MODES[:1]
        specs += grids.time_mode_specs(cell, shape, batch, modes)
    if options.on_gpu:
        specs.append(grids.rnn_jax_spec("lstm", shape, batch, lstm_backend="cudnn"))
    return specs


def variant_specs(shape: dict, batch: dict, options: Options) -> list[timing.Spec]:
    """Unroll, the other input projection and bfloat16 (the course shape's extra rows)."""
    from rnn_jax.cells import CELLS, is_linear

    specs = []
    for cell in QUICK_VARIED_CELLS if options.quick else tuple(CELLS):
        fixed = lstm_by_scan(cell)
        if not is_linear(CELLS[cell]):  # No unroll in a linear cell's parallel mode.
            unrolls = [u for u in (QUICK_UNROLLS if options.quick else UNROLLS) if u != 1]
            specs += grids.unroll_specs(cell, shape, batch, unrolls, fixed)
        specs += grids.variant_specs(cell, shape, batch, fixed)
    return specs


def peer_specs(shape: dict, batch: dict, options: Options, cells: Sequence[str]):
    """Flax ``nn.RNN``, PyTorch (padded batch; cuDNN on CUDA) and ``jax.experimental.rnn``."""
    specs = []
    for cell in cells:
        specs += grids.peer_specs(cell, shape, batch, torch=(False,) if options.torch else ())
    # The classifier itself runs on the CPU stand-in in --quick runs, so CI covers it.
    if "lstm" in cells and (options.on_gpu or options.quick):
        specs.append(grids.experimental_lstm_spec(shape, batch, options.on_gpu))
    return specs


def shape_specs(index: int, shape: dict, batch: dict, options: Options) -> list[timing.Spec]:
    """The first shape (the course's) times everything; the larger ones defaults and LSTMs."""
    specs = default_specs(shape, batch, options)
    if index == 0:
        specs += variant_specs(shape, batch, options)
        cells = ("lstm",) if options.quick else PEER_CELLS
        return specs + peer_specs(shape, batch, options, cells)
    return specs + peer_specs(shape, batch, options, ("lstm",))


def speed_rows(candidates: list[timing.Candidate], label: str, batch_size: int) -> list[dict]:
    """One row per timed candidate, its training speed over the shape's reference."""
    rows = [{"shape": label} | speed_tables.speed_row(c, batch_size) for c in candidates]
    reference = speed_tables.reference_peer(rows)
    speed_tables.divide_speed(rows, "vs_reference", lambda _: reference)
    for row in rows:
        row["reference"] = reference and reference["implementation"]
    return rows


def speed_section(options: Options) -> tuple[list[dict], list[dict]]:
    """Every shape's candidates, timed in interleaved rounds; one shape in memory at a time."""
    shapes = QUICK_SHAPES if options.quick else SHAPES
    rows, failures = [], []
    for index, (label, shape) in enumerate(shapes.items()):
        specs = shape_specs(index, shape, timing.make_batch(shape), options)
        candidates, failed = timing.build_candidates(specs, label, options.log, keep_going=True)
        options.log(f"{label}: timing {len(candidates)} candidates, {options.repeats} rounds")
        timing.time_rounds(candidates, options.repeats)
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
    parser = flags.make_parser("accelerator", __doc__.splitlines()[0], data=False, training=False)
    parser.add_argument("--repeats", type=int, help=f"timed rounds per shape (default {REPEATS})")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--no-speed", action="store_true", help="run the correctness checks only")
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=0,
        help="CPU devices for the pmap check on a CPU-only machine (default 0: one per core)",
    )
    parser.set_defaults(no_keras=True)  # peers_available reads it; Keras needs TF.
    return flags.parse(parser, argv)  # Also makes the --cpu-devices CPU devices.


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
    report.text(device_info.environment_text(env))
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
            f"{timing.WARMUP} warm-up steps; compile: trace + lower + compile of the train "
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
            "check_shape": device_checks.CHECK_SHAPE,
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
    torch = peers_available(args)["pytorch"]
    repeats = args.repeats or (QUICK_REPEATS if args.quick else REPEATS)
    options = Options(quick=args.quick, on_gpu=on_gpu, torch=torch, repeats=repeats)
    report = reporting.Report(args, "Accelerator: correctness against the host CPU, and speed")
    env = device_info.environment(options.torch, options.on_gpu)
    print(device_info.environment_text(env), flush=True)
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
