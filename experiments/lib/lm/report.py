"""The language-modelling study's tables, curves and samples, from its run records."""

import math
from collections import defaultdict

import numpy as np

from experiments.lib import noise, reporting
from experiments.lib.lab.control import CONTROL
from experiments.lib.reporting import Column, cell_label


def label(cell: str, cell_kwargs: str = "") -> str:
    """How the study names a cell: its label (and arguments); the memoryless control."""
    name = "control (no recurrence)" if cell == CONTROL else cell_label(cell)
    return f"{name} {cell_kwargs}" if cell_kwargs else name


def cell_key(record: dict) -> str:
    """A run's cell as results are keyed: its name, and its arguments when it has some."""
    kwargs = record.get("cell_kwargs", "")
    return f"{record['cell']} {kwargs}" if kwargs else record["cell"]


def by_cell(records: list[dict]) -> dict[str, list[dict]]:
    """The records of each cell (with its arguments), by seed."""
    cells = defaultdict(list)
    for record in records:
        cells[cell_key(record)].append(record)
    return {cell: sorted(rs, key=lambda r: r["seed"]) for cell, rs in cells.items()}


def bpc_results(records: list[dict], baseline: str) -> dict[str, dict]:
    """``bpc[cell] = {mean, sd, runs, seeds, difference}``: test bits per character over seeds.

    ``difference`` is the paired difference to ``baseline`` (None for the baseline itself, or
    when the seeds differ).
    """
    cells = by_cell(records)
    base = [r["test_bpc"] for r in cells.get(baseline, [])]
    results = {}
    for cell, runs in cells.items():
        values = [r["test_bpc"] for r in runs]
        mean, sd = noise.mean_sd(values)
        difference = None
        if cell != baseline and len(base) == len(values):
            difference = noise.paired_difference(values, base)
        results[cell] = {
            "mean": mean,
            "sd": sd,
            "runs": values,
            "seeds": [r["seed"] for r in runs],
            "difference": difference,
        }
    return results


CELL_COLUMNS = (
    Column("cell", "cell"),
    Column("width", "width"),
    Column("parameters", "parameters", "{:,}"),
    Column("bpc", "test bpc, mean ± sd"),
    Column("difference", "minus the baseline, mean ± 95% (paired)"),
    Column("verdict", "verdict"),
    Column("characters_per_second", "characters/s", "{:,.0f}"),
)


def cell_rows(records: list[dict], results: dict[str, dict]) -> list[dict]:
    rows = []
    for cell, runs in by_cell(records).items():
        r = results[cell]
        d = r["difference"]
        rows.append(
            {
                "cell": label(runs[0]["cell"], runs[0].get("cell_kwargs", "")),
                "width": runs[0]["width"],
                "parameters": runs[0]["parameters"],
                "bpc": f"{r['mean']:.4f} ± {r['sd']:.4f} ({len(runs)} seeds)",
                "difference": "–" if d is None else f"{d['mean']:+.4f} ± {d['half_width']:.4f}",
                "verdict": "baseline" if d is None else noise.verdict(d, lower_is_better=True),
                "characters_per_second": float(np.mean([x["characters_per_second"] for x in runs])),
                "test_bpc_mean": r["mean"],
                "test_bpc_sd": r["sd"],
            }
        )
    return rows


BASELINE_COLUMNS = (
    Column("model", "count-based model"),
    Column("counted_on", "counted on (training characters)", "{:,}"),
    Column("validation_bpc", "validation bpc", "{:.4f}"),
    Column("test_bpc", "test bpc", "{:.4f}"),
)


def curves_figure(records: list[dict]):
    """Validation bits per character against characters seen, each cell's mean over seeds.

    The band spans its seeds' lowest to highest.
    """
    fig, (ax,) = reporting.new_figure(width=7.5, height=4.5)
    for runs in by_cell(records).values():
        characters = [p["characters"] for p in runs[0]["curve"]]
        values = np.array([[p["val_bpc"] for p in r["curve"]] for r in runs])
        name = label(runs[0]["cell"], runs[0].get("cell_kwargs", ""))
        (line,) = ax.plot(characters, values.mean(0), marker="o", ms=3, label=name)
        ax.fill_between(characters, values.min(0), values.max(0), alpha=0.2, color=line.get_color())
    ax.set_xlabel("characters trained")
    ax.set_ylabel("validation bits per character")
    ax.set_title("Validation bpc per cell (mean over seeds; band: min to max)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def samples_text(records: list[dict]) -> str:
    """Each cell's samples (its first seed's), as Markdown."""
    parts = []
    for runs in by_cell(records).values():
        name = label(runs[0]["cell"], runs[0].get("cell_kwargs", ""))
        parts.append(f"**{name}** (seed {runs[0]['seed']}):")
        for sample in runs[0]["samples"]:
            shown = sample.replace("```", "'''")
            parts.append(f"```text\n{shown}\n```")
    return "\n\n".join(parts)


def smallest_resolved(results: dict[str, dict]) -> float | None:
    """The smallest 95% half-width among the paired differences: what the seeds resolve."""
    widths = [
        r["difference"]["half_width"]
        for r in results.values()
        if r["difference"] is not None and not math.isnan(r["difference"]["half_width"])
    ]
    return min(widths) if widths else None
