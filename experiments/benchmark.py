"""Training and inference speed of rnn_jax's cells against Keras, PyTorch and Flax's nn.RNN.

    python -m experiments.benchmark [--repeats N] [--no-keras] [--no-torch] [--no-sweeps]
                                    [--cpu-devices N] [--quick] [--out DIR]

Every implementation trains the same model (embedding -> one recurrent layer reading each review's
last real state -> Dense(1) logit, Adam, binary cross-entropy) on the same batch of post-padded
reviews with random lengths in [T/2, T], each run the way its users run it:

* rnn_jax's ``SentimentClassifier`` at ``lax.scan`` unroll 1, 4 and 16 on one device (input
  projection ``"auto"``), at unroll 1 with the input projection ``"auto"`` does not pick, at
  unroll 1 computing in bfloat16 (``config.compute_dtype``), and at unroll 1 under ``pmap`` over
  all local devices when there are several (on CPU, one per core unless ``--cpu-devices`` says
  otherwise: ``config.cpu_devices``);
* the cells linear in h (minGRU, minLSTM, RG-LRU: ``rnn_jax.linear_cells``), each with its
  recurrence evaluated sequentially and in parallel (``time_parallel``); no peer has them, so
  their rows compare with rnn_jax's LSTM (``train speed / rnn_jax LSTM``), and the length sweep
  (``experiments.lib.length_sweep``) times them against the LSTM, the GRU and their peers up to
  T = 4,000;
* Flax's ``nn.RNN`` with ``nn.SimpleCell`` / ``nn.OptimizedLSTMCell`` / ``nn.GRUCell`` and
  ``seq_lengths``;
* Keras 3 on TensorFlow, ``Embedding(mask_zero=True)``, timed through ``train_on_batch`` and
  ``predict_on_batch`` (what ``fit`` and ``predict`` call per batch);
* PyTorch (CPU, all cores), ``nn.Embedding`` -> ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` on
  ``pack_padded_sequence`` or on the padded batch (the output at each review's last real step
  gathered), ``nn.Linear``; an optional extra (``pip install -e ".[bench]"``), skipped with a
  line saying so when it is not installed.

The implementations are ``experiments.lib.candidates``', the grid ``experiments.lib.grids``',
the rows ``experiments.lib.speed_tables``'; the length sweep is ``experiments.lib.length_sweep``.

The timed rounds visit every implementation in turn (one training step, then one inference
step), so load from other processes on a shared machine spreads over all of them instead of
hitting one: compare the ratios, not the absolute numbers. A peer that is missing is skipped; no
backend is hard-coded, so the same command runs on a GPU or TPU.

FLOPs per training example are counted, not guessed: the recurrent layer's matmuls are
``2 (E + H) G H`` multiply-adds per time step forward (input projection and recurrent matmul,
G gates), and a training step costs three times its forward matmuls (forward, and the two
backward matmuls of each), so ``6 (E + H) G H T`` per example. The fraction of peak divides the
achieved FLOP/s by a large float32 matmul's rate measured in the same run.
"""

from collections.abc import Sequence

import numpy as np

from experiments.lib import flags, grids, length_sweep, reporting, speed_tables, timing
from experiments.lib.candidates import PEER_CELLS, peers_available
from experiments.lib.reporting import Column, cell_label

UNROLLS, QUICK_UNROLLS = (1, 4, 16), (1,)
REPEATS, QUICK_REPEATS = 30, 5

# rnn_jax's LSTM at unroll 1, one shape field varied at a time (the others: the course shape).
SWEEPS = {
    "time": (50, 100, 200, 500, 1000),
    "batch": (16, 64, 256, 512),
    "hidden": (32, 64, 128, 256, 512),
}
QUICK_SWEEPS = {"time": (10,)}
# --quick: every cell once beside Flax's; the variants, Keras and the parallel scan on one cell
# of each kind (the same code for every cell, and each candidate costs seconds of compilation).
QUICK_VARIED_CELLS, QUICK_PARALLEL_CELLS = ("lstm",), ("mingru",)
SWEEP_CELL, SWEEP_REPEATS = "lstm", 5

COLUMNS = (
    Column("implementation", "implementation"),
    Column("cell", "cell"),
    Column("compile_seconds", "compile s", "{:.2f}"),
    Column("train_examples_per_second", "train ex/s (median)", "{:,.0f}"),
    Column("train_spread", "train ex/s (p25–p75)"),
    Column("infer_examples_per_second", "inference ex/s (median)", "{:,.0f}"),
    Column("vs_fastest_peer", "train speed / fastest peer", "{:.2f}"),
    Column("vs_lstm", "train speed / rnn_jax LSTM", "{:.2f}"),
    Column("peak_fraction", "share of matmul peak", "{:.0%}"),
    Column("temp_mb", "XLA temp MB", "{:.0f}"),
)
RATIO_COLUMNS = (
    Column("implementation", "implementation"),
    Column("gru_vs_lstm", "GRU step time / LSTM step time", "{:.2f}"),
)
SWEEP_COLUMNS = (
    Column("sweep", "varied"),
    Column("value", "value"),
    Column("compile_seconds", "compile s", "{:.2f}"),
    Column("step_ms", "train ms/step (median)", "{:.1f}"),
    Column("us_per_time_step", "µs per time step", "{:.0f}"),
    Column("train_examples_per_second", "train ex/s", "{:,.0f}"),
    Column("peak_fraction", "share of matmul peak", "{:.0%}"),
    Column("temp_mb", "XLA temp MB", "{:.0f}"),
)


def course_specs(shape: dict, batch: dict, quick: bool, peers: dict[str, bool]) -> list:
    """The main table's grid: per peer cell rnn_jax's variants and the peers; linear cells."""
    import jax

    from rnn_jax.cells import LINEAR_CELLS

    specs = []
    for cell in PEER_CELLS:
        varied = not quick or cell in QUICK_VARIED_CELLS
        specs += grids.unroll_specs(cell, shape, batch, QUICK_UNROLLS if quick else UNROLLS)
        if varied:  # The other place for x W than 'auto' picks on this backend; bfloat16.
            specs += grids.variant_specs(cell, shape, batch)
        if varied and jax.local_device_count() > 1:  # --cpu-devices on CPU; or accelerators.
            specs.append(grids.rnn_jax_spec(cell, shape, batch, parallelism="pmap"))
        keras, torch = varied and peers["keras"], varied and peers["pytorch"]
        specs += grids.peer_specs(
            cell, shape, batch, keras=keras, torch=(True, False) if torch else ()
        )
    for cell in LINEAR_CELLS:  # No peer has them: compared with the LSTM (vs_lstm).
        both = not quick or cell in QUICK_PARALLEL_CELLS
        modes = grids.TIME_MODES if both else grids.TIME_MODES[:1]
        specs += grids.time_mode_specs(cell, shape, batch, modes)
    return specs


def result_rows(candidates: list[timing.Candidate], shape: dict, peak: float) -> list[dict]:
    """One row per candidate; its training speed relative to the fastest peer of its cell."""
    rows = []
    for c in candidates:
        row = speed_tables.speed_row(c, shape["batch"])
        flops = row["train_examples_per_second"] * timing.train_flops_per_example(c.cell, shape)
        rows.append(row | {"peak_fraction": flops / peak})
    speed_tables.divide_speed(rows, "vs_fastest_peer", speed_tables.fastest_peer_of_cell(rows))
    lstm = speed_tables.rnn_jax_row(rows, "lstm", "rnn_jax unroll=1")
    speed_tables.divide_speed(rows, "vs_lstm", lambda _: lstm)
    return rows


def gru_lstm_rows(rows: list[dict]) -> list[dict]:
    """Per implementation: its GRU training step time over its LSTM's."""
    by_key = {(r["implementation"], r["cell"]): r["step_ms"] for r in rows}
    implementations = dict.fromkeys(r["implementation"] for r in rows)
    gru, lstm = cell_label("gru"), cell_label("lstm")
    return [
        {"implementation": i, "gru_vs_lstm": by_key[(i, gru)] / by_key[(i, lstm)]}
        for i in implementations
        if (i, gru) in by_key and (i, lstm) in by_key  # Not the cells linear in h.
    ]


def shape_sweep_rows(sweeps: dict, shape: dict, peak: float) -> list[dict]:
    """rnn_jax's ``SWEEP_CELL`` with one shape field varied at a time, timed alone."""
    rows = []
    for field, values in sweeps.items():
        for value in values:
            sized = shape | {field: value}
            spec = grids.rnn_jax_spec(SWEEP_CELL, sized, timing.make_batch(sized))
            (candidate,), _ = timing.build_candidates([spec], f"sweep {field}={value}", print)
            timing.time_rounds([candidate], SWEEP_REPEATS)
            row = speed_tables.speed_row(candidate, sized["batch"])
            speed = row["train_examples_per_second"]
            flops = speed * timing.train_flops_per_example(SWEEP_CELL, sized)
            rows.append(
                {
                    "sweep": field,
                    "value": value,
                    "compile_seconds": row["compile_seconds"],
                    "step_ms": row["step_ms"],
                    "us_per_time_step": 1000 * row["step_ms"] / sized["time"],
                    "train_examples_per_second": speed,
                    "peak_fraction": flops / peak,
                    "temp_mb": row["temp_mb"] or None,
                }
            )
            print(f"sweep {field}={value}: {row['step_ms']:.1f} ms/step", flush=True)
    return rows


def speed_figure(rows: list[dict]):
    """Grouped bars: training examples/s for each cell and implementation."""
    fig, (ax,) = reporting.new_figure(width=10, height=4.5)
    speed = {(r["implementation"], r["cell"]): r["train_examples_per_second"] for r in rows}
    implementations = list(dict.fromkeys(r["implementation"] for r in rows))
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    width = 0.8 / len(implementations)
    for index, implementation in enumerate(implementations):
        x = np.arange(len(cells)) + (index - (len(implementations) - 1) / 2) * width
        # NaN (no bar) where an implementation lacks the cell.
        heights = [speed.get((implementation, cell), np.nan) for cell in cells]
        ax.bar(x, heights, width, label=implementation)
    ax.set_xticks(np.arange(len(cells)), cells)
    ax.set_ylabel("training examples/s (median; higher is faster)")
    ax.set_title("Training speed (forward, backward, Adam)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize="small")
    return fig


def sweep_figure(rows: list[dict]):
    """One panel per sweep: training step time against the varied field (log-log)."""
    fields = list(dict.fromkeys(r["sweep"] for r in rows))
    fig, axes = reporting.new_figure(1, len(fields), width=4.2, height=3.6)
    for ax, field in zip(axes, fields, strict=True):
        points = [(r["value"], r["step_ms"]) for r in rows if r["sweep"] == field]
        ax.loglog(*zip(*points, strict=True), "o-")
        ax.set_xlabel(field)
        ax.set_ylabel("train step (ms, median)")
        ax.set_title(f"rnn_jax {cell_label(SWEEP_CELL)}: step time vs {field}")
        ax.grid(alpha=0.3, which="both")
    return fig


def parse_args(argv: Sequence[str] | None):
    parser = flags.make_parser("benchmark", __doc__.splitlines()[0], data=False, training=False)
    parser.add_argument(
        "--repeats", type=int, help=f"timed rounds per candidate (default {REPEATS})"
    )
    parser.add_argument("--no-keras", action="store_true", help="skip Keras (saves its start-up)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--no-sweeps", action="store_true", help="skip the shape sweeps")
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=0,
        help="CPU devices for the pmap row (default 0: one per core; 1: no pmap row)",
    )
    return flags.parse(parser, argv)  # Also makes the --cpu-devices CPU devices.


def shape_text(shape: dict, repeats: int, peak: float) -> str:
    """The main table's sentence: shape, rounds, FLOPs per example, peak, what compile means."""
    from rnn_jax.cells import LINEAR_CELLS

    flops = ", ".join(
        f"{cell_label(c)} {timing.train_flops_per_example(c, shape) / 1e6:.0f} M"
        for c in (*PEER_CELLS, *LINEAR_CELLS)
    )
    return (
        f"Batch {shape['batch']}, {shape['time']} steps (lengths uniform in "
        f"[{shape['time'] // 2}, {shape['time']}], post-padded and masked), embedding "
        f"{shape['embed']}, hidden {shape['hidden']}, vocabulary {shape['vocab']:,}; median of "
        f"{repeats} rounds after {timing.WARMUP} warm-up steps, every implementation timed in "
        f"turn in each round. Matmul FLOPs per training example: {flops}. Measured float32 "
        f"matmul peak (2048³, JAX): {peak / 1e9:.0f} GFLOP/s (the bfloat16 rows' share is of "
        "this float32 peak too). Compile: JAX trace + lower + compile of the "
        "train step (pmap: its first step); Keras its first train_on_batch; PyTorch (eager) its "
        "first step. XLA temp MB: the compiled train step's temporary buffers (JAX only)."
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    shape = timing.QUICK_SHAPE if args.quick else timing.COURSE_SHAPE
    repeats = args.repeats or (QUICK_REPEATS if args.quick else REPEATS)
    report = reporting.Report(args, "Benchmark: training and inference speed against peers")
    peers = peers_available(args)
    peak = timing.matmul_peak_flops()
    print(f"float32 matmul peak (2048^3, JAX): {peak / 1e9:.0f} GFLOP/s", flush=True)
    specs = course_specs(shape, timing.make_batch(shape), args.quick, peers)
    candidates, _ = timing.build_candidates(specs, "benchmark", print)
    timing.time_rounds(candidates, repeats)
    rows = result_rows(candidates, shape, peak)
    report.text(shape_text(shape, repeats, peak))
    report.table("table", rows, COLUMNS, "Training and inference speed")
    report.table("gru_vs_lstm", gru_lstm_rows(rows), RATIO_COLUMNS, "GRU vs LSTM step time")
    report.figure("speed", speed_figure(rows), "Training examples/s per cell and implementation")
    results = {"shape": shape, "matmul_peak_flops": peak, "rows": rows}
    if not args.no_sweeps:
        sweeps = shape_sweep_rows(QUICK_SWEEPS if args.quick else SWEEPS, shape, peak)
        report.text(
            f"Sweeps: rnn_jax {cell_label(SWEEP_CELL)}, unroll 1, one field of the shape above "
            f"varied at a time, median of {SWEEP_REPEATS} steps each, timed alone."
        )
        report.table("sweeps", sweeps, SWEEP_COLUMNS, "Shape sweeps")
        report.figure("sweeps", sweep_figure(sweeps), "Training step time against each field")
        results["sweeps"] = sweeps
        results["length_sweep"] = length_sweep.report(
            report, shape, args.quick, peers["pytorch"], QUICK_REPEATS
        )
    report.json("results", results)
    report.finish()


if __name__ == "__main__":
    main()
