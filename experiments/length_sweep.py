"""The benchmark's length sweep: when does a recurrence linear in h pay, and which evaluation?

Part of ``python -m experiments.benchmark`` (skipped with ``--no-sweeps``). At each sequence
length T, every cell linear in h (``rnn_jax.cells.LINEAR_CELLS``) in both evaluations
(``time_parallel="sequential"`` and ``"parallel"``) is timed in the same rounds as rnn_jax's LSTM
and GRU and their peers (Flax's ``nn.RNN``; PyTorch's padded ``nn.LSTM``/``nn.GRU`` when
installed; Keras is left out here: its start-up and T = 4,000 steps cost minutes). Each row gives
its training speed over rnn_jax's LSTM and over the fastest peer at the same T.
"""

import statistics

from experiments import benchmark, reporting
from experiments.reporting import Column, cell_label

# The course's T = 200 is the main table's shape (experiments/results/benchmark/table.md).
LENGTHS, QUICK_LENGTHS = (500, 1000, 4000), (20,)
REPEATS = 3
CLASSIC = ("lstm", "gru")
# --quick: the same code on one cell of each kind (each candidate costs seconds of compilation).
QUICK_CLASSIC, QUICK_LINEAR = ("lstm",), ("mingru",)

COLUMNS = (
    Column("time", "T"),
    Column("implementation", "implementation"),
    Column("cell", "cell"),
    Column("compile_seconds", "compile s", "{:.2f}"),
    Column("train_examples_per_second", "train ex/s (median)", "{:,.1f}"),
    Column("infer_examples_per_second", "inference ex/s (median)", "{:,.1f}"),
    Column("vs_lstm", "train speed / rnn_jax LSTM", "{:.2f}"),
    Column("vs_fastest_peer", "train speed / fastest peer", "{:.2f}"),
    Column("temp_mb", "XLA temp MB", "{:.0f}"),
)


def candidates_at(shape: dict, torch: bool, quick: bool) -> list[benchmark.Candidate]:
    """Every implementation timed at one shape (see the module docstring)."""
    from rnn_jax.cells.classic import LINEAR_CELLS

    batch = benchmark.make_batch(shape)
    candidates = []
    for cell in QUICK_CLASSIC if quick else CLASSIC:
        candidates.append(benchmark.rnn_jax_candidate(cell, shape, batch))
        candidates.append(benchmark.flax_candidate(cell, shape, batch))
        if torch:
            candidates.append(benchmark.torch_candidate(cell, shape, batch, packed=False))
    for cell in QUICK_LINEAR if quick else LINEAR_CELLS:
        for mode in ("sequential", "parallel"):
            candidates.append(benchmark.rnn_jax_candidate(cell, shape, batch, time_parallel=mode))
    return candidates


def sweep_rows(
    shape: dict, lengths: tuple[int, ...], repeats: int, torch: bool, quick: bool = False
) -> list[dict]:
    """One row per implementation and length, with its ratios to the LSTM and the fastest peer."""
    rows = []
    for time_steps in lengths:
        sized = shape | {"time": time_steps}
        print(f"length sweep: compiling T={time_steps} ...", flush=True)
        candidates = candidates_at(sized, torch, quick)
        benchmark.time_rounds(candidates, repeats)
        speed = {id(c): sized["batch"] / statistics.median(c.train_times) for c in candidates}
        (lstm,) = [c for c in candidates if c.framework == benchmark.RNN_JAX and c.cell == "lstm"]
        fastest_peer = max(speed[id(c)] for c in candidates if c.framework != benchmark.RNN_JAX)
        for c in candidates:
            rows.append(
                {
                    "time": time_steps,
                    "implementation": c.implementation,
                    "framework": c.framework,
                    "cell": cell_label(c.cell),
                    "compile_seconds": c.compile_seconds,
                    "step_ms": 1000 * statistics.median(c.train_times),
                    "train_examples_per_second": speed[id(c)],
                    "infer_examples_per_second": sized["batch"] / statistics.median(c.infer_times),
                    "vs_lstm": speed[id(c)] / speed[id(lstm)],
                    "vs_fastest_peer": speed[id(c)] / fastest_peer,
                    "temp_mb": None if c.temp_bytes is None else c.temp_bytes / 2**20,
                }
            )
        print(f"length sweep T={time_steps}: done", flush=True)
    return rows


def figure(rows: list[dict]):
    """Training step time against T for every implementation (log-log)."""
    fig, (ax,) = reporting.new_figure(width=8, height=5)
    for name in dict.fromkeys(f"{r['implementation']} {r['cell']}" for r in rows):
        points = [
            (r["time"], r["step_ms"]) for r in rows if f"{r['implementation']} {r['cell']}" == name
        ]
        ax.loglog(*zip(*points, strict=True), "o-", label=name)
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("train step (ms, median)")
    ax.set_title("Training step time against sequence length")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="x-small")
    return fig


def report(report_: reporting.Report, shape: dict, quick: bool, torch: bool) -> list[dict]:
    """Runs the sweep and adds its table, figure and sentence to the benchmark's report."""
    lengths = QUICK_LENGTHS if quick else LENGTHS
    repeats = benchmark.QUICK_REPEATS if quick else REPEATS
    rows = sweep_rows(shape, lengths, repeats, torch, quick)
    report_.text(
        f"Length sweep: batch {shape['batch']}, embedding {shape['embed']}, hidden "
        f"{shape['hidden']}, T in {', '.join(map(str, lengths))}; median of {repeats} rounds "
        f"after {benchmark.WARMUP} warm-up steps, all implementations of one T timed in turn. "
        "Peers: Flax nn.RNN" + (" and PyTorch (padded)" if torch else "") + "."
    )
    report_.table("linear", rows, COLUMNS, "Cells linear in h against the LSTM and GRU, by length")
    report_.figure("linear", figure(rows), "Training step time against sequence length")
    return rows
