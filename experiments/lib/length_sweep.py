"""The benchmark's length sweep: when does a recurrence linear in h pay, and which evaluation?

Part of ``python -m experiments.benchmark`` (skipped with ``--no-sweeps``). At each sequence
length T, every cell linear in h (``rnn_jax.cells.LINEAR_CELLS``) in both evaluations
(``time_parallel="sequential"`` and ``"parallel"``) is timed in the same rounds as rnn_jax's LSTM
and GRU and their peers (Flax's ``nn.RNN``; PyTorch's padded ``nn.LSTM``/``nn.GRU`` when
installed; Keras is left out here: its start-up and T = 4,000 steps cost minutes). Each row gives
its training speed over rnn_jax's LSTM and over the fastest peer at the same T.
"""

from experiments.lib import grids, reporting, speed_tables, timing
from experiments.lib.reporting import Column

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


def specs_at(shape: dict, torch: bool, quick: bool) -> list[timing.Spec]:
    """Every implementation timed at one shape (see the module docstring)."""
    from rnn_jax.cells import LINEAR_CELLS

    batch = timing.make_batch(shape)
    specs = []
    for cell in QUICK_CLASSIC if quick else CLASSIC:
        specs.append(grids.rnn_jax_spec(cell, shape, batch))
        specs += grids.peer_specs(cell, shape, batch, torch=(False,) if torch else ())
    for cell in QUICK_LINEAR if quick else LINEAR_CELLS:
        specs += grids.time_mode_specs(cell, shape, batch)
    return specs


def length_rows(shape: dict, lengths: tuple[int, ...], repeats: int, torch: bool, quick: bool):
    """One row per implementation and length, with its ratios to the LSTM and the fastest peer."""
    rows = []
    for time_steps in lengths:
        sized = shape | {"time": time_steps}
        specs = specs_at(sized, torch, quick)
        candidates, _ = timing.build_candidates(specs, f"length sweep T={time_steps}", print)
        timing.time_rounds(candidates, repeats)
        at = [{"time": time_steps} | speed_tables.speed_row(c, sized["batch"]) for c in candidates]
        lstm = speed_tables.rnn_jax_row(at, "lstm")
        speed_tables.divide_speed(at, "vs_lstm", lambda _, lstm=lstm: lstm)
        fastest_peer = speed_tables.fastest(speed_tables.peer_rows(at))
        speed_tables.divide_speed(at, "vs_fastest_peer", lambda _, peer=fastest_peer: peer)
        rows += at
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


def report(
    report_: reporting.Report, shape: dict, quick: bool, torch: bool, quick_repeats: int
) -> list[dict]:
    """Runs the sweep and adds its table, figure and sentence to the benchmark's report.

    Args:
      report_: the benchmark's report.
      shape: the benchmark's shape; the sweep varies its ``time``.
      quick: ``--quick`` (its lengths and cells).
      torch: PyTorch is a peer.
      quick_repeats: the rounds of a ``--quick`` run (the benchmark's own).
    """
    lengths = QUICK_LENGTHS if quick else LENGTHS
    repeats = quick_repeats if quick else REPEATS
    rows = length_rows(shape, lengths, repeats, torch, quick)
    report_.text(
        f"Length sweep: batch {shape['batch']}, embedding {shape['embed']}, hidden "
        f"{shape['hidden']}, T in {', '.join(map(str, lengths))}; median of {repeats} rounds "
        f"after {timing.WARMUP} warm-up steps, all implementations of one T timed in turn. "
        "Peers: Flax nn.RNN" + (" and PyTorch (padded)" if torch else "") + "."
    )
    report_.table("linear", rows, COLUMNS, "Cells linear in h against the LSTM and GRU, by length")
    report_.figure("linear", figure(rows), "Training step time against sequence length")
    return rows
