"""What every experiment script shares: flags, training runs, tables, figures, run metadata.

A script builds a parser with ``make_parser``, gets configs from ``make_config``, trains them with
``run`` (a finished workdir is reused, so a rerun only fills gaps) and writes its results through
a ``Report``: one Markdown + CSV file per table, one PNG per figure, ``report.md`` gathering them
under a header, and ``meta.json`` (command, date, machine, run time).
"""

import argparse
import csv
import dataclasses
import datetime
import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # Scripts run headless (CI, ssh); must precede the pyplot import.

import matplotlib.pyplot as plt  # noqa: E402
import ml_collections  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

EXPERIMENTS_DIR = Path(__file__).resolve().parent
# Quick runs go elsewhere so they can never overwrite (or be mistaken for) the full results.
RESULTS_DIR = EXPERIMENTS_DIR / "results"
QUICK_RESULTS_DIR = EXPERIMENTS_DIR / "results_quick"
WORKDIRS = Path("runs") / "experiments"
QUICK_WORKDIRS = Path("runs") / "experiments_quick"

CELL_NAMES = {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}

# --quick: a smoke run of the real pipeline, seconds per model on 2 cores.
QUICK_LIMITS = {
    "max_len": 32,
    "hidden_size": 16,
    "embed_dim": 16,
    "vocab_size": 1000,
    "ngram_buckets": 4096,
}
QUICK_FIELDS = {
    "max_examples": 256,
    "num_epochs": 1,
    "batch_size": 32,
    "eval_batch_size": 128,
    "log_every_steps": 10,
}


# ----------------------------------------------------------------------------------------------
# Flags.


def make_parser(
    name: str,
    description: str,
    *,
    data: bool = True,
    training: bool = True,
    workdirs_of: str | None = None,
):
    """The flags every script has (``--quick``, ``--out``), plus data and training flags.

    Args:
      name: the script's name; results go to ``experiments/results/<name>``.
      description: the script's one-line purpose, shown by ``--help``.
      data: add ``--data-dir`` and ``--cache-dir`` (the script reads IMDB).
      training: add ``--workdirs`` and ``--epochs`` (the script trains models).
      workdirs_of: the script whose training runs this one reads (default: its own).
    """
    workdirs_of = workdirs_of or name
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{name}", description=description)
    parser.set_defaults(name=name, workdirs_of=workdirs_of)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny smoke run (256 reviews, short sequences, 1 epoch); results go to "
        "experiments/results_quick/ unless --out is given",
    )
    parser.add_argument("--out", type=Path, help=f"results folder (default results/{name})")
    if data:
        parser.add_argument(
            "--data-dir", default="", help="tfds data folder (default: $TFDS_DATA_DIR)"
        )
        parser.add_argument(
            "--cache-dir", default="", help="IMDB array cache (default: ~/.cache/rnn_jax)"
        )
    if training:
        parser.add_argument(
            "--workdirs",
            type=Path,
            help=f"training runs folder (default {WORKDIRS}/{workdirs_of}); finished runs are "
            "reused",
        )
        parser.add_argument("--epochs", type=int, help="training epochs (overrides the default)")
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parses ``argv`` (default ``sys.argv[1:]``) and fills in the default folders."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if args.out is None:
        args.out = (QUICK_RESULTS_DIR if args.quick else RESULTS_DIR) / args.name
    if getattr(args, "workdirs", "absent") is None:
        args.workdirs = default_workdirs(args.workdirs_of, args.quick)
    use_cpu_devices(args.quick, getattr(args, "cpu_devices", None))
    return args


def use_cpu_devices(quick: bool, requested: int | None = None) -> None:
    """Makes the CPU devices ``rnn_jax.main`` makes for the default config (``cpu_devices``).

    Args:
      quick: ``--quick`` (its batch sizes, else the default config's, which every experiment
        keeps).
      requested: a device count other than the default config's (0: one per core).

    A script called after JAX has started (from a test) keeps the devices it has.
    """
    from configs import default
    from rnn_jax import parallel

    config = default.get_config()
    sizes = QUICK_FIELDS if quick else config
    count = config.cpu_devices if requested is None else requested
    parallel.use_cpu_devices(count, (sizes["batch_size"], sizes["eval_batch_size"]))


def default_workdirs(name: str, quick: bool) -> Path:
    """Where script ``name`` keeps its training runs (quick runs apart from full ones)."""
    return (QUICK_WORKDIRS if quick else WORKDIRS) / name


# ----------------------------------------------------------------------------------------------
# Training runs.


@dataclasses.dataclass
class RunResult:
    """A finished training run: its config and what it left in its workdir."""

    name: str
    config: ml_collections.ConfigDict
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    workdir: Path


def make_config(
    base: ml_collections.ConfigDict, args: argparse.Namespace, **overrides
) -> ml_collections.ConfigDict:
    """A copy of ``base`` set up for this invocation.

    Order matters: ``--quick`` shrinking, then an explicit ``--epochs``, then ``overrides`` (what
    an experiment varies, which must survive ``--quick``).
    """
    config = ml_collections.ConfigDict(base.to_dict())
    config.data_dir = args.data_dir
    config.cache_dir = args.cache_dir
    config.progress_bar = not args.quick and sys.stderr.isatty()
    if args.quick:
        for field, limit in QUICK_LIMITS.items():
            config[field] = min(config[field], limit)
        config.update(QUICK_FIELDS)
    if getattr(args, "epochs", None):
        config.num_epochs = args.epochs
    config.update(overrides)
    return config


# Names of the runs this process reused instead of training; a report's run time says so.
REUSED_RUNS: list[str] = []


def run(name: str, config: ml_collections.ConfigDict, workdir: Path) -> RunResult:
    """Trains ``config`` in ``workdir``, or reuses the finished run already there.

    A workdir whose ``summary.json`` exists and whose config matches is read, not retrained. An
    unfinished one is resumed by ``train_and_evaluate``, which also refuses a workdir holding
    another config (rerun with another ``--workdirs`` then).
    """
    from rnn_jax import train  # Imports TensorFlow (tensorboard); only scripts that train pay.

    if is_finished(config, workdir):
        print(f"[{name}] reusing the finished run in {workdir}", flush=True)
        REUSED_RUNS.append(name)
    elif trained_epochs(workdir) >= config.num_epochs:  # Only test evaluated (or skipped).
        print(f"[{name}] reusing the trained run in {workdir}; evaluating it", flush=True)
        train.train_and_evaluate(config, str(workdir))
        REUSED_RUNS.append(name)
    else:
        print(f"[{name}] training in {workdir} ({config.num_epochs} epochs)", flush=True)
        train.train_and_evaluate(config, str(workdir))
    return read_run(name, config, workdir)


def read_run(name: str, config: ml_collections.ConfigDict, workdir: Path) -> RunResult:
    """The finished run of ``config`` in ``workdir``, as ``run`` returns it."""
    return RunResult(
        name=name,
        config=config,
        summary=read_json(workdir / "summary.json"),
        history=read_json(workdir / "history.json"),
        workdir=workdir,
    )


def trained_epochs(workdir: Path) -> int:
    """Epochs the run in ``workdir`` has finished (0 without one)."""
    path = workdir / "history.json"
    return len(read_json(path)) if path.exists() else 0


def is_finished(config: ml_collections.ConfigDict, workdir: Path) -> bool:
    """Whether ``workdir`` holds a finished run of ``config`` (same numbers, same epochs).

    Raises:
      RuntimeError: the finished run there has more epochs than asked for; resuming cannot
        shorten it, and silently reporting the longer run would mislabel the results.
    """
    from rnn_jax import train

    if not (workdir / "summary.json").exists():
        return False
    stored = train.read_config(str(workdir))
    new = config.to_dict()
    # A run tuned with evaluate_test=False has no test result to report: it is not finished for
    # a config that asks for one (train_and_evaluate then tests it without training again).
    ignored = train.RESUMABLE_FIELDS - {"num_epochs", "evaluate_test"}
    changed = {
        k for k in set(stored) | set(new) if k not in ignored and stored.get(k) != new.get(k)
    }
    if changed == {"num_epochs"} and stored["num_epochs"] > new["num_epochs"]:
        raise RuntimeError(
            f"{workdir} holds a finished run of {stored['num_epochs']} epochs, "
            f"{new['num_epochs']} asked for: pass another --workdirs or --epochs"
        )
    # Fewer epochs stored: train_and_evaluate resumes it; another difference: it refuses.
    return not changed


def run_row(result: RunResult) -> dict[str, Any]:
    """The columns of ``RUN_COLUMNS`` for one run."""
    s = result.summary
    return {
        "run": result.name,
        "test_accuracy": s["test_accuracy"],
        "test_loss": s["test_loss"],
        "best_val_accuracy": s["best_val_accuracy"],
        "best_epoch": s["best_epoch"],
        "epochs": s["epochs"],
        "num_params": s["num_params"],
        "seconds_per_epoch": s["seconds_per_epoch"],
        "train_seconds": s["train_seconds"],
        "examples_per_second": s["examples_per_second"],
    }


# ----------------------------------------------------------------------------------------------
# Tables.


@dataclasses.dataclass(frozen=True)
class Column:
    """One table column: the row key, its Markdown header, and how to format its cells."""

    key: str
    header: str
    fmt: str | Callable[[Any], str] = "{}"

    def format(self, value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        return self.fmt(value) if callable(self.fmt) else self.fmt.format(value)


RUN_COLUMNS = (
    Column("test_accuracy", "test accuracy", "{:.4f}"),
    Column("test_loss", "test loss", "{:.4f}"),
    Column("best_val_accuracy", "best val accuracy", "{:.4f}"),
    Column("best_epoch", "best epoch"),
    Column("epochs", "epochs"),
    Column("num_params", "parameters", "{:,}"),
    Column("seconds_per_epoch", "s/epoch (median)", "{:.1f}"),
    Column("train_seconds", "train s (total)", "{:.1f}"),
    Column("examples_per_second", "train examples/s", "{:,.0f}"),
)


def markdown_table(rows: Sequence[dict], columns: Sequence[Column]) -> str:
    """Rows as a Markdown table, one line per row."""
    lines = [
        "| " + " | ".join(c.header for c in columns) + " |",
        "|" + "|".join(" --- " for _ in columns) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(c.format(row.get(c.key)) for c in columns) + " |")
    return "\n".join(lines)


def write_csv(path: Path, rows: Sequence[dict], columns: Sequence[Column]) -> None:
    """Raw values (full precision) under the column keys, for other tools to read."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([c.key for c in columns])
        for row in rows:
            writer.writerow(["" if row.get(c.key) is None else row.get(c.key) for c in columns])


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


def read_config(workdir: Path) -> ml_collections.ConfigDict:
    """The config a training run in ``workdir`` was started with."""
    from rnn_jax import train

    return ml_collections.ConfigDict(train.read_config(str(workdir)))


# ----------------------------------------------------------------------------------------------
# Machine and metadata.


def cpu_model() -> str:
    """The CPU's marketing name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import jax

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax_version": jax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_device_count": jax.device_count(),
    }


class Report:
    """Collects one script's tables, figures and notes; ``finish`` writes report.md and meta.json.

    Every file lands in ``args.out`` under a fixed name (``<stem>.md``, ``<stem>.csv``,
    ``<stem>.png``), so README links stay valid from run to run.
    """

    def __init__(self, args: argparse.Namespace, title: str):
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.title = title
        self.command = shlex.join(["python", "-m", f"experiments.{args.name}", *args.argv])
        self.started = time.perf_counter()
        self.date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        self.quick = args.quick
        self.sections: list[str] = []
        self.extra_meta: dict[str, Any] = {}
        self.first_reused = len(REUSED_RUNS)  # Runs reused from here on belong to this report.

    def text(self, markdown: str) -> None:
        """Adds a paragraph (Markdown) to report.md."""
        self.sections.append(markdown.strip())

    def table(
        self, stem: str, rows: Sequence[dict], columns: Sequence[Column], title: str = ""
    ) -> str:
        """Writes ``<stem>.md`` and ``<stem>.csv``, adds the table to report.md, returns it."""
        table = markdown_table(rows, columns)
        (self.out / f"{stem}.md").write_text(f"{self._header(title)}\n\n{table}\n")
        write_csv(self.out / f"{stem}.csv", rows, columns)
        self.sections.append(f"### {title}\n\n{table}" if title else table)
        print(f"\n{title}\n{table}" if title else f"\n{table}", flush=True)
        return table

    def json(self, stem: str, obj: Any) -> None:
        """Writes ``<stem>.json``: raw results for other tools (not shown in report.md)."""
        (self.out / f"{stem}.json").write_text(json.dumps(obj, indent=2) + "\n")

    def figure(self, stem: str, fig, caption: str) -> None:
        """Saves ``fig`` as ``<stem>.png`` and links it from report.md."""
        fig.tight_layout()
        fig.savefig(self.out / f"{stem}.png", dpi=120)
        plt.close(fig)
        self.sections.append(f"![{caption}]({stem}.png)\n\n*{caption}*")

    def finish(self) -> Path:
        """Writes report.md and meta.json; returns the results folder."""
        meta = {
            "title": self.title,
            "command": self.command,
            "date_utc": self.date,
            "quick": self.quick,
            "run_seconds": round(time.perf_counter() - self.started, 1),
            "machine": machine(),
            "reused_runs": REUSED_RUNS[self.first_reused :],
            **self.extra_meta,
        }
        (self.out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        body = "\n\n".join(self.sections)
        header = self._header(self.title, meta)
        (self.out / "report.md").write_text(f"{header}\n\n{body}\n")
        print(f"\nresults in {self.out} ({meta['run_seconds']} s)", flush=True)
        return self.out

    def _header(self, title: str, meta: dict | None = None) -> str:
        m = meta["machine"] if meta else machine()
        lines = [
            f"# {title or self.title}",
            "",
            f"- command: `{self.command}`"
            + (" (QUICK smoke run, not a result)" if self.quick else ""),
            f"- date: {self.date}",
            f"- machine: {m['platform']}, {m['cpu_count']} CPUs ({m['cpu_model']}), "
            f"JAX {m['jax_version']} ({m['jax_backend']}, {m['jax_device_count']} device(s))",
        ]
        if meta:
            reused = meta.get("reused_runs")
            lines.append(
                f"- run time: {meta['run_seconds']:.0f} s"
                + (f" (reused finished training runs: {', '.join(reused)})" if reused else "")
            )
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Figures.


def new_figure(rows: int = 1, cols: int = 1, width: float = 6.0, height: float = 4.0, **kwargs):
    """``plt.subplots`` sized per panel; ``axes`` is always a flat list."""
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), **kwargs)
    return fig, list(getattr(axes, "flat", [axes]))


def curves_figure(histories: dict[str, list[dict]]):
    """Train/validation accuracy and loss per epoch (2x2 panels), one line per run."""
    fig, axes = new_figure(2, 2, width=5.5, height=3.8)
    panels = [
        ("train_accuracy", "train accuracy"),
        ("val_accuracy", "validation accuracy"),
        ("train_loss", "train loss (BCE)"),
        ("val_loss", "validation loss (BCE)"),
    ]
    for ax, (key, label) in zip(axes, panels, strict=True):
        for name, history in histories.items():
            values = [math.nan if h[key] is None else h[key] for h in history]  # No validation.
            ax.plot([h["epoch"] for h in history], values, "o-", label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend()
    return fig
