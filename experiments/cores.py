"""How rnn_jax's training step uses a CPU's cores: XLA's threads, pmap, and the chip's own limit.

    python -m experiments.cores [--cells rnn lstm gru] [--rounds N] [--quick] [--out DIR]

Trains rnn_jax's ``SentimentClassifier`` at the benchmark's course shape (``timing.COURSE_SHAPE``:
batch 64, 200 steps, embedding and hidden 128, unroll 1) on the CPU, one cell after another,
in five settings, each a fresh process (XLA reads its flags once, at start-up):

1. ``one device``: what rnn_jax runs by default; XLA may spread an op over the cores itself.
2. ``one device, XLA threads off``: the same with ``--xla_cpu_multi_thread_eigen=false``. Equal
   speed means XLA's own threading does not use the second core at this shape.
3. ``one core, half batch``: one process pinned to one core, batch 32.
4. ``two processes, one core each, half batch each``: two copies of 3, one pinned to each core
   (``taskset``), timed at the same moment (they wait for each other after compiling): their
   examples over the wall-clock span from the first one's start to the last one's end. Nothing
   is shared but the chip (caches, memory bandwidth, clock): this is what two cores give to two
   independent half batches, the natural ceiling of data parallelism here.
5. ``pmap over 2 devices``: rnn_jax's ``cpu_devices=2`` (``pmap``, each device a half batch,
   gradients averaged every step), batch 64.

The ratios say how much the second core adds (5 / 1), how much the chip allows (4 / 3), and how
much of that pmap gets (5 / 4). Settings 3 and 4 need Linux's ``taskset`` and two cores; they are
skipped with a line saying so elsewhere. Every process compiles first; then each round times a
few training steps of every setting in turn (a setting's processes at the same moment), so load
from elsewhere on a shared machine spreads over all settings. The median round counts. Run it
alone: it uses both cores.
"""

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from experiments.lib import candidates, flags, reporting, timing
from experiments.lib.reporting import Column, cell_label
from rnn_jax.cells import CELLS
from rnn_jax.training import parallel

THREADS_OFF = "--xla_cpu_multi_thread_eigen=false"
# pmap as rnn_jax's cpu_devices=2 sets it up (parallel.use_cpu_devices): two CPU devices, and
# an all-reduce that waits for a late device (every process compiles at once here).
TWO_DEVICES = (
    "--xla_force_host_platform_device_count=2 --xla_cpu_collective_call_terminate_timeout_"
    f"seconds={parallel.COLLECTIVE_TIMEOUT_SECONDS}"
)
ROUNDS, QUICK_ROUNDS = 10, 2
STEPS_PER_ROUND = 3


def worker(cells: Sequence[str], shape: dict, pmap: bool) -> None:
    """The body of a setting's process, driven through stdin and stdout.

    Per cell it compiles and warms up, then prints its cores and devices as JSON; each ``go``
    line then runs ``STEPS_PER_ROUND`` training steps and prints their start and end (wall
    clock, comparable across processes); ``next`` moves on to the next cell.
    """
    import jax

    batch = timing.make_batch(shape)
    for cell in cells:
        candidate = candidates.rnn_jax_candidate(
            cell, shape, batch, parallelism="pmap" if pmap else None
        )
        for _ in range(timing.WARMUP):
            candidate.train()
        # What the process runs on, for the driver to check against the setting.
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        print(json.dumps({"cores": cores, "devices": jax.local_device_count()}), flush=True)
        while sys.stdin.readline().strip() == "go":
            started = time.time()
            for _ in range(STEPS_PER_ROUND):
                candidate.train()
            print(json.dumps([started, time.time()]), flush=True)


@dataclasses.dataclass
class Setting:
    """One way of running the training step: one process, or one per core in ``pin_to``."""

    name: str
    batch: int
    xla_flags: str = ""
    pmap: bool = False
    pin_to: tuple[int | None, ...] = (None,)  # None: not pinned.
    processes: list[subprocess.Popen] = dataclasses.field(default_factory=list)

    def start(self, args) -> None:
        """Starts the processes (``python -m experiments.cores --worker ...``)."""
        command = [sys.executable, "-m", "experiments.cores", "--worker"]
        command += ["--batch", str(self.batch), "--cells", *args.cells]
        command += ["--pmap"] * self.pmap + ["--quick"] * args.quick
        env = os.environ | {"XLA_FLAGS": self.xla_flags, "JAX_PLATFORMS": "cpu"}
        for core in self.pin_to:
            # taskset pins the process before it starts, so XLA sizes its threads for one core.
            pin = [] if core is None else ["taskset", "--cpu-list", str(core)]
            self.processes.append(
                subprocess.Popen(
                    pin + command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
                )
            )

    def send(self, line: str) -> None:
        for process in self.processes:
            process.stdin.write(f"{line}\n")
            process.stdin.flush()

    def read(self) -> list[str]:
        """One line from each process; raises if one has exited."""
        lines = [process.stdout.readline() for process in self.processes]
        if not all(lines):
            codes = [process.poll() for process in self.processes]
            raise RuntimeError(f"{self.name}: a worker exited (codes {codes}); see its stderr")
        return lines

    def check_ready(self, usable_cores: list[int]) -> None:
        """Waits for every process to be compiled; checks it runs as the setting says."""
        for core, line in zip(self.pin_to, self.read(), strict=True):
            ready = json.loads(line)
            expected = {
                "cores": usable_cores if core is None else [core],
                "devices": 2 if self.pmap else 1,
            }
            if ready != expected:
                raise RuntimeError(f"{self.name}: a worker runs on {ready}, not {expected}")

    def time_round(self) -> float:
        """Examples/s of one round: all its processes' examples over the span they ran in."""
        self.send("go")
        spans = [json.loads(line) for line in self.read()]
        seconds = max(end for _, end in spans) - min(start for start, _ in spans)
        return len(spans) * self.batch * STEPS_PER_ROUND / seconds

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


def measure(settings: list[Setting], args, usable_cores: list[int]) -> dict[str, dict]:
    """Median examples/s per setting and cell; the settings' rounds interleaved.

    Every process compiles first (untimed), then each round times every setting in turn, so load
    from elsewhere on a shared machine spreads over all of them instead of hitting one. Every
    process is stopped at the end, also on an error.
    """
    speeds = {setting.name: {} for setting in settings}
    try:
        for setting in settings:
            setting.start(args)
        for cell in args.cells:
            for setting in settings:
                setting.check_ready(usable_cores)
            rounds = {setting.name: [] for setting in settings}
            for _ in range(args.rounds):
                for setting in settings:
                    rounds[setting.name].append(setting.time_round())
            for setting in settings:
                speeds[setting.name][cell] = statistics.median(rounds[setting.name])
                setting.send("next")
    finally:
        for setting in settings:
            setting.stop()
    return speeds


def main(argv: Sequence[str] | None = None) -> None:
    parser = flags.make_parser("cores", __doc__.splitlines()[0], data=False, training=False)
    parser.add_argument(
        "--cells",
        nargs="+",
        choices=list(CELLS),
        default=list(candidates.PEER_CELLS),
        help=f"cells to time (default: {' '.join(candidates.PEER_CELLS)}, the benchmark's)",
    )
    parser.add_argument("--rounds", type=int, help="timed rounds per cell and setting")
    # Flags of the script's own worker processes, hidden from --help.
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pmap", action="store_true", help=argparse.SUPPRESS)
    args = flags.parse(parser, argv)
    args.rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
    shape = timing.QUICK_SHAPE if args.quick else timing.COURSE_SHAPE
    if args.worker:
        worker(args.cells, shape | {"batch": args.batch}, args.pmap)
        return

    report = reporting.Report(args, "How the training step uses the CPU's cores")
    full, half = shape["batch"], shape["batch"] // 2
    settings = [
        Setting("one device", full),
        Setting("one device, XLA threads off", full, THREADS_OFF),
    ]
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) >= 2 and shutil.which("taskset"):
        settings += [
            Setting("one core, half batch", half, THREADS_OFF, pin_to=tuple(cores[:1])),
            Setting(
                "two processes, one core each, half batch each",
                half,
                THREADS_OFF,
                pin_to=tuple(cores[:2]),
            ),
        ]
    else:
        print("skipping the pinned settings: they need Linux's taskset and 2 cores")
    settings.append(Setting("pmap over 2 devices", full, TWO_DEVICES, pmap=True))
    speeds = measure(settings, args, cores)

    rows = [{"setting": name, **per_cell} for name, per_cell in speeds.items()]
    columns = [Column("setting", "setting")]
    columns += [Column(c, f"{cell_label(c)} train ex/s", "{:,.0f}") for c in args.cells]
    report.text(
        f"rnn_jax's training step at batch {full}, {shape['time']} steps, embedding "
        f"{shape['embed']}, hidden {shape['hidden']}, unroll 1, on {len(cores) or '?'} CPU "
        f"cores; per cell and setting the median of {args.rounds} rounds of {STEPS_PER_ROUND} "
        "steps (a round's examples/s: all its processes' examples over the wall-clock span they "
        f"ran in), the settings' rounds interleaved. Half batch: {half} reviews per process or "
        "device."
    )
    report.table("table", rows, columns, "Training examples/s per setting")
    ratios = [
        ("pmap over 2 devices", "one device", "the second core, as rnn_jax uses it (pmap)"),
        ("one device, XLA threads off", "one device", "XLA's own threading, removed"),
        (
            "two processes, one core each, half batch each",
            "one core, half batch",
            "two cores on independent halves (the chip's scaling)",
        ),
        (
            "pmap over 2 devices",
            "two processes, one core each, half batch each",
            "pmap against independent halves",
        ),
    ]
    ratio_rows = [
        {"ratio": f"{what}: {top} / {bottom}"}
        | {cell: speeds[top][cell] / speeds[bottom][cell] for cell in args.cells}
        for top, bottom, what in ratios
        if top in speeds and bottom in speeds
    ]
    ratio_columns = [Column("ratio", "ratio")]
    ratio_columns += [Column(cell, cell_label(cell), "{:.2f}") for cell in args.cells]
    report.table("ratios", ratio_rows, ratio_columns, "Ratios")
    report.finish()


if __name__ == "__main__":
    main()
