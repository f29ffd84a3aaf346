"""Data parallelism side by side: pmap, shard_map and plain jit with shardings, per cell.

    python -m experiments.parallelism [--cells rnn,lstm,...] [--cpu-devices N] [--repeats N]
        [--quick] [--out DIR]

Every row trains the benchmark's classifier (``experiments.lib.candidates``: embedding -> one
recurrent layer -> logit, Adam) at the course's shape on all devices at once (on a CPU,
``--cpu-devices`` of them, 2 by default), in the ways a JAX user can write data parallelism:

* ``pmap`` and ``shard_map``: ``rnn_jax.training.parallel``, the two values of
  ``config.parallelism`` (the step's own ``lax.pmean`` averages the gradients);
* ``jit``: plain ``jax.jit`` with the state replicated and the batch's rows split over a mesh
  (``NamedSharding``), no collective written by hand: XLA's partitioner inserts the
  all-reduce, and for a recurrence it may put it inside the backward scan's loop (JAX's
  sharding-AD notes: XLA "can't pattern-match collectives through a loop"), so it runs once per
  time step. rnn_jax does not offer it; this is the measurement behind that choice;
* ``one device``: ``jit`` on the first device alone (the others idle), for scale.

The table gives training examples/s (timed in interleaved rounds, so load from other
processes spreads over every row: compare ratios), the speed relative to ``pmap``, and the
all-reduce instructions of each compiled step (``experiments.lib.collectives``): in the
whole step, and inside a loop (each of those runs once per time step).
"""

import argparse
import statistics
from collections.abc import Sequence

from experiments.lib import candidates, collectives, flags, reporting, timing
from experiments.lib.reporting import Column, cell_label

CELLS = ("rnn", "lstm", "gru", "mingru")
QUICK_CELLS = ("lstm",)
PATHS = ("one device", "pmap", "shard_map", "jit")
REPEATS, QUICK_REPEATS = 20, 3
SPEED = "train_examples_per_second"

COLUMNS = (
    Column("cell", "cell"),
    Column("path", "data parallelism"),
    Column(SPEED, "train examples/s", "{:,.0f}"),
    Column("speed_vs_pmap", "speed / pmap", "{:.2f}"),
    Column("all_reduces", "all-reduces in the step"),
    Column("all_reduces_in_loops", "of which inside a loop (run once per time step)"),
    Column("all_reduces_per_step", "all-reduces run per step", "{:,}"),
    Column("compile_seconds", "compile s", "{:.1f}"),
)


def candidate(cell: str, path: str, shape: dict, batch: dict) -> timing.Candidate:
    """The classifier of ``cell`` trained the way ``path`` says (one of ``PATHS``)."""
    parallelism = None if path == "one device" else path
    return candidates.rnn_jax_candidate(cell, shape, batch, parallelism=parallelism)


def row(c: timing.Candidate, path: str, shape: dict) -> dict:
    counts = collectives.count_all_reduces(c.hlo)
    return {
        "cell": cell_label(c.cell),
        "cell_name": c.cell,
        "path": path,
        SPEED: shape["batch"] / statistics.median(c.train_times),
        "all_reduces": counts.total,
        "all_reduces_in_loops": counts.in_loops,
        # A loop's all-reduce runs once per time step: the scan's loops run T iterations.
        "all_reduces_per_step": counts.total + counts.in_loops * (shape["time"] - 1),
        "compile_seconds": c.compile_seconds,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = flags.make_parser("parallelism", __doc__.splitlines()[0], data=False, training=False)
    parser.add_argument("--cells", help=f"comma-separated (default {','.join(CELLS)})")
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=2,
        help="CPU devices to split the host into (default 2; accelerators use theirs)",
    )
    parser.add_argument("--repeats", type=int, help=f"timed rounds (default {REPEATS})")
    args = flags.parse(parser, argv)
    args.cells = (args.cells or ",".join(QUICK_CELLS if args.quick else CELLS)).split(",")
    args.repeats = args.repeats or (QUICK_REPEATS if args.quick else REPEATS)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    import jax

    shape = timing.QUICK_SHAPE if args.quick else timing.COURSE_SHAPE
    batch = timing.make_batch(shape)
    report = reporting.Report(args, "Data parallelism: pmap, shard_map and jit side by side")
    rows = []
    for cell in args.cells:
        built = []
        for path in PATHS:
            print(f"{cell}: compiling {path}", flush=True)
            built.append((path, candidate(cell, path, shape, batch)))
        timing.time_rounds([c for _, c in built], args.repeats)
        cell_rows = [row(c, path, shape) for path, c in built]
        (pmap,) = [r for r in cell_rows if r["path"] == "pmap"]
        for r in cell_rows:
            r["speed_vs_pmap"] = r[SPEED] / pmap[SPEED]
        rows += cell_rows
    devices = f"{jax.device_count()} {jax.default_backend()} devices"
    report.text(
        f"Each row trains the benchmark's classifier (embedding {shape['embed']}, hidden "
        f"{shape['hidden']}, batch {shape['batch']}, T = {shape['time']}, Adam) on {devices} "
        f"({args.repeats} interleaved rounds; the speed is the median step's). pmap and "
        "shard_map are rnn_jax's two paths (config.parallelism); jit is plain jax.jit with "
        "the batch split over a mesh and the all-reduce left to XLA; one device is jit on the "
        "first device alone. An all-reduce inside a loop runs once per time step of the "
        "scan: the last column counts what one training step executes."
    )
    report.table("table", rows, COLUMNS, "Speed and all-reduces per path")
    report.json("results", {"shape": shape, "devices": jax.device_count(), "rows": rows})
    report.finish()


if __name__ == "__main__":
    main()
