"""How an experiment reports: tables (Markdown + CSV), figures, and the machine it ran on.

A script's ``Report`` writes every table as ``<stem>.md`` and ``<stem>.csv``, every figure as
``<stem>.png``, ``report.md`` gathering them under a header (command, date, machine, run time),
and ``meta.json`` with the same facts for other tools. ``RUN_COLUMNS`` and ``run_row`` tabulate
training runs (``experiments.lib.training_runs.RunResult``) the same way in every report.
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
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # Scripts run headless (CI, ssh); must precede the pyplot import.

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from experiments.lib import training_runs  # noqa: E402


def cell_label(name: str) -> str:
    """How tables, figures and run names call cell ``name``: its class's own ``label``, or name.

    ``name`` is a registered name or ``module:Class``. ``rnn_jax.cells`` imports JAX and Flax,
    so it is imported here, when a label is asked for.
    """
    from rnn_jax.cells import get_cell_class

    cls = get_cell_class(name)
    # A subclass that sets no label of its own is not the cell it derives from.
    return cls.__dict__.get("label", cls.__name__)


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


def run_row(result: training_runs.RunResult) -> dict[str, Any]:
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
    """Collects one script's tables, figures and notes; ``finish`` writes the page and meta.json.

    The page is report.md, or the name a script gives it (the cell card's card.md).

    Every file lands in ``args.out`` under a fixed name (``<stem>.md``, ``<stem>.csv``,
    ``<stem>.png``), so README links stay valid from run to run.
    """

    def __init__(
        self,
        args: argparse.Namespace,
        title: str,
        page: str = "report",
        started: float | None = None,
    ):
        """Starts the report of one script run.

        Args:
          args: the script's flags (``out``, ``name``, ``argv``, ``quick``).
          title: the page's heading.
          page: the page's file name, without ``.md``.
          started: when the script's work began (``time.perf_counter()``), for the run time
            the page states; default now.
        """
        self.page = page
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.title = title
        self.command = shlex.join(["python", "-m", f"experiments.{args.name}", *args.argv])
        self.started = time.perf_counter() if started is None else started
        self.date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        self.quick = args.quick
        self.sections: list[str] = []
        self.extra_meta: dict[str, Any] = {}
        # Runs reused from here on belong to this report.
        self.first_reused = len(training_runs.REUSED_RUNS)

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
            "reused_runs": training_runs.REUSED_RUNS[self.first_reused :],
            **self.extra_meta,
        }
        (self.out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        body = "\n\n".join(self.sections)
        header = self._header(self.title, meta)
        (self.out / f"{self.page}.md").write_text(f"{header}\n\n{body}\n")
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
