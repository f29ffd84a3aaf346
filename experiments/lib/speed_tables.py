"""Speed-table rows: one row per timed candidate, and the ratios the speed tables divide by.

Every speed table (the benchmark's, its length sweep's, the accelerator's) starts from
``speed_row`` and adds its own ratios with ``divide_speed``: to the fastest peer of a cell, to
rnn_jax's LSTM, or to a chosen reference (``reference_peer``).
"""

import statistics
from collections.abc import Callable

import numpy as np

from experiments.lib.candidates import RNN_JAX
from experiments.lib.reporting import cell_label
from experiments.lib.timing import Candidate

SPEED = "train_examples_per_second"


def speed_row(candidate: Candidate, batch_size: int) -> dict:
    """Compile time, median step, examples/s (median, p25–p75) and XLA temp memory."""
    c = candidate
    step = statistics.median(c.train_times)
    low, high = np.percentile(c.train_times, [75, 25])  # A slow time is a low speed.
    return {
        "implementation": c.implementation,
        "framework": c.framework,
        "cell": cell_label(c.cell),
        "compile_seconds": c.compile_seconds,
        "step_ms": 1000 * step,
        SPEED: batch_size / step,
        "train_spread": f"{batch_size / low:,.0f}–{batch_size / high:,.0f}",
        "infer_examples_per_second": batch_size / statistics.median(c.infer_times),
        "temp_mb": None if c.temp_bytes is None else c.temp_bytes / 2**20,
    }


def peer_rows(rows: list[dict]) -> list[dict]:
    """The rows of other implementations than rnn_jax's."""
    return [r for r in rows if r["framework"] != RNN_JAX]


def fastest(rows: list[dict]) -> dict | None:
    """The row with the highest training speed (None for no rows)."""
    return max(rows, key=lambda r: r[SPEED]) if rows else None


def fastest_peer_of_cell(rows: list[dict]) -> Callable[[dict], dict | None]:
    """``row -> the fastest peer row of the same cell`` (None where no peer has the cell)."""
    return lambda row: fastest([r for r in peer_rows(rows) if r["cell"] == row["cell"]])


def reference_peer(rows: list[dict]) -> dict | None:
    """PyTorch's LSTM if it ran, else the fastest LSTM peer, else the fastest peer."""
    peers = peer_rows(rows)
    lstm = [r for r in peers if r["cell"] == cell_label("lstm")]
    torch = [r for r in lstm if r["framework"] == "pytorch"]
    return fastest(torch or lstm or peers)


def rnn_jax_row(rows: list[dict], cell: str, implementation: str | None = None) -> dict:
    """rnn_jax's row of ``cell`` (its only one, or the one of ``implementation``)."""
    (row,) = [
        r
        for r in rows
        if r["framework"] == RNN_JAX
        and r["cell"] == cell_label(cell)
        and implementation in (None, r["implementation"])
    ]
    return row


def divide_speed(rows: list[dict], key: str, reference: Callable[[dict], dict | None]) -> None:
    """Sets ``row[key]``: the row's training speed over that of ``reference(row)`` (or None)."""
    for row in rows:
        other = reference(row)
        row[key] = row[SPEED] / other[SPEED] if other else None
