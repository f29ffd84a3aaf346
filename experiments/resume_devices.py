"""A run stopped on one device count and path, resumed on another, against the seeds' spread.

    python -m experiments.resume_devices [--seeds N] [--epochs N] [--quick] [--out DIR]
        [--workdirs DIR]

``configs/lstm.py`` (``--epochs``, 2 by default, with its cosine schedule over them) trained
uninterrupted on 2 CPU devices under ``pmap`` for seeds 0 .. N-1: their test accuracies are the
seed noise. Then seed 0 twice more, each stopped by SIGTERM in the middle of its last epoch and
resumed by rerunning the command with another device count and the other path: 2 devices
(``pmap``) -> 1 device (``shard_map``), and 1 device (``shard_map``) -> 2 devices (``pmap``).
Seed 0 also runs uninterrupted under ``shard_map`` on the same 2 devices: the two paths compute
the same numbers up to float rounding (``experiments/parallel_rounding.py``). Every run is a
real ``python -m rnn_jax.main`` process, as a user runs it; a finished workdir is reused, an
interrupted one resumes.

The table gives each run's test accuracy and loss, and how far each resumed run lies from the
uninterrupted seed 0 in units of the seeds' standard deviation.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from experiments.lib import flags, reporting
from experiments.lib.reporting import Column

REPO = Path(__file__).resolve().parents[1]
COLUMNS = (
    Column("run", "run"),
    Column("path", "devices (path)"),
    Column("stopped_at_step", "stopped at step"),
    Column("test_accuracy", "test accuracy", "{:.4f}"),
    Column("test_loss", "test loss", "{:.4f}"),
    Column("from_seed_0_in_sd", "|acc - seed 0| / seeds' sd", "{:.2f}"),
    Column("loss_minus_seed_0", "test loss - seed 0's (pmap)", "{:.3g}"),
)
QUICK = ["--config.max_examples=512", "--config.max_len=32", "--config.hidden_size=16"]


def command(workdir: Path, seed: int, devices: int, parallelism: str, args) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rnn_jax.main",
        "--config=configs/lstm.py",
        f"--workdir={workdir}",
        f"--config.seed={seed}",
        f"--config.num_epochs={args.epochs}",
        f"--config.cpu_devices={devices}",
        f"--config.parallelism={parallelism}",
        "--config.progress_bar=False",
        *(QUICK if args.quick else []),
    ]


def train(workdir: Path, seed: int, devices: int, parallelism: str, args, stop: bool) -> int | None:
    """Runs (or resumes) one training process; ``stop``: SIGTERM it within its last epoch.

    Returns:
      The step the stopped run saved (None when it ran to the end or had finished before).
    """
    if (workdir / "summary.json").exists():
        return None
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        command(workdir, seed, devices, parallelism, args), cwd=REPO, env=env
    )
    if stop:
        history = workdir / "history.json"
        # Wait until every epoch but the last is on disk, then a little into the last one.
        while process.poll() is None:
            if history.exists() and len(json.loads(history.read_text())) == args.epochs - 1:
                time.sleep(args.stop_after_seconds)
                process.send_signal(signal.SIGTERM)
                break
            time.sleep(0.5)
    code = process.wait()
    if code == 128 + signal.SIGTERM:
        steps = [int(s) for s in os.listdir(workdir / "checkpoints") if s.isdigit()]
        return max(steps)
    if code != 0:
        raise RuntimeError(f"training {workdir} exited with {code}")
    return None


def summary(workdir: Path) -> dict:
    return json.loads((workdir / "summary.json").read_text())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = flags.make_parser("resume_devices", __doc__.splitlines()[0], data=False)
    parser.add_argument("--seeds", type=int, default=3, help="uninterrupted seeds (default 3)")
    parser.add_argument(
        "--stop-after-seconds",
        type=float,
        default=20.0,
        help="how long into the last epoch the stopped runs receive SIGTERM (default 20)",
    )
    args = flags.parse(parser, argv)
    args.epochs = args.epochs or 2
    if args.quick:
        args.stop_after_seconds = min(args.stop_after_seconds, 0.1)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    report = reporting.Report(args, "Resuming on another device count and path")
    rows = []
    for seed in range(args.seeds):
        workdir = args.workdirs / f"seed{seed}_2devices_pmap"
        train(workdir, seed, 2, "pmap", args, stop=False)
        rows.append(summary(workdir) | {"run": f"seed {seed}, uninterrupted", "path": "2 (pmap)"})
    # The same run under shard_map: the paths agree to float rounding, which grows over a run.
    workdir = args.workdirs / "seed0_2devices_shard_map"
    train(workdir, 0, 2, "shard_map", args, stop=False)
    rows.append(summary(workdir) | {"run": "seed 0, uninterrupted", "path": "2 (shard_map)"})
    for first, second in [((2, "pmap"), (1, "shard_map")), ((1, "shard_map"), (2, "pmap"))]:
        workdir = args.workdirs / f"seed0_{first[0]}to{second[0]}_devices"
        stopped = train(workdir, 0, *first, args, stop=True)
        train(workdir, 0, *second, args, stop=False)
        devices = f"{first[0]} ({first[1]}) -> {second[0]} ({second[1]})"
        rows.append(
            summary(workdir)
            | {"run": "seed 0, stopped and resumed", "path": devices, "stopped_at_step": stopped}
        )
    accuracies = [r["test_accuracy"] for r in rows[: args.seeds]]
    spread = statistics.stdev(accuracies) if len(accuracies) > 1 else float("nan")
    for r in rows:
        r["from_seed_0_in_sd"] = abs(r["test_accuracy"] - accuracies[0]) / spread
        r["loss_minus_seed_0"] = r["test_loss"] - rows[0]["test_loss"]
    report.text(
        f"configs/lstm.py for {args.epochs} epoch(s) (cosine schedule over them), test accuracy "
        f"of the checkpoint best on validation. Seed noise: the {args.seeds} uninterrupted seeds "
        f"on 2 CPU devices under pmap, mean {statistics.mean(accuracies):.4f}, sd {spread:.4f}. "
        "Each resumed run was stopped by SIGTERM during its last epoch (the step it saved is "
        "given) and resumed by the same command with the other device count and path; a "
        "stopped-at step left empty means the run was found finished. The last column is "
        "each run's test loss minus seed 0's under pmap, in full precision."
    )
    report.table("table", rows, COLUMNS, "Resumed runs against the seeds' spread")
    report.json("results", {"rows": rows, "seed_sd": spread})
    report.finish()


if __name__ == "__main__":
    main()
