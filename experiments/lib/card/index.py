"""The index of cards: every card under a folder on one page, the cells ranked measure by measure.

For each measure, the cells in order (the best first: lower bits per character, higher accuracy,
faster, longer horizons), each with its value and its card's verdict against the card's
baseline; the baseline is ranked with them, from its runs the cards share.
"""

import json
from pathlib import Path

from experiments.lib import reporting
from experiments.lib.lab.report import DIAL_NAMES, cell_label, horizon_text, walked
from experiments.lib.reporting import Column

COLUMNS = (
    Column("rank", "rank"),
    Column("cell", "cell"),
    Column("value", "value"),
    Column("verdict", "verdict against the baseline"),
)


def read_cards(folder: Path) -> list[dict]:
    """Every ``card.json`` one level under ``folder``, in name order."""
    return [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*/card.json"))]


def _verdict(card: dict, measure: str) -> str:
    return next((r["verdict"] for r in card["rows"] if r["measure"].startswith(measure)), "–")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def entries(cards: list[dict]) -> list[dict]:
    """What the index ranks: each card's cell, then each baseline once (from its first card).

    An entry is ``{"label", "card", "side"}``; ``side`` is ``"cell"`` or ``"baseline"``, the key
    under which the card stores that cell's runs. A baseline's runs are records every card
    reads back, so any of its cards holds the same values.
    """
    mine = [{"label": c["label"], "card": c, "side": "cell"} for c in cards]
    baselines = {}
    for c in cards:
        baselines.setdefault(c["against"], c)
    theirs = [
        {"label": cell_label(against), "card": c, "side": "baseline"}
        for against, c in baselines.items()
    ]
    return mine + theirs


def _speed(entry: dict, study: str) -> float:
    # A card times its cell against its baseline; the baseline is 1 by definition.
    return entry["card"]["speed"][study]["ratio"] if entry["side"] == "cell" else 1.0


def rankings(cards: list[dict]) -> dict[str, list[dict]]:
    """Per measure, one row per card's cell and one per baseline, ranked best first."""
    if not cards:
        return {}
    # title: (the entry's value, its text, higher is better, the card's row for the verdict)
    measures = {}
    for title, value, fmt, higher, row in (
        (
            "LM test bits per character",
            lambda e: _mean(e["card"]["lm"][e["side"]]),
            "{:.4f}",
            False,
            "LM test bits",
        ),
        (
            "IMDB test accuracy",
            lambda e: _mean(e["card"]["imdb"][e["side"]]),
            "{:.4f}",
            True,
            "IMDB",
        ),
        (
            "training speed, language model (x the baseline)",
            lambda e: _speed(e, "language_model"),
            "x {:.2f}",
            True,
            "training speed, language model",
        ),
        (
            "training speed, IMDB (x the baseline)",
            lambda e: _speed(e, "imdb"),
            "x {:.2f}",
            True,
            "training speed, IMDB",
        ),
    ):

        def text(e, value=value, fmt=fmt):
            return fmt.format(value(e))

        measures[title] = (value, text, higher, row)
    for task in DIAL_NAMES:
        dials = walked(task, cards[0]["lab"]["max_dials"])

        def horizon(e, task=task):
            return e["card"]["lab"]["horizons"][task][e["side"]]

        def passed(e, horizon=horizon, dials=dials):
            return -1 if horizon(e) is None else dials.index(horizon(e))

        measures[f"lab: {task.replace('_', ' ')} ({DIAL_NAMES[task]})"] = (
            passed,
            lambda e, horizon=horizon, task=task: (
                horizon_text(task, horizon(e), e["card"]["lab"]["max_dials"]) or "–"
            ),
            True,
            f"lab: {task.replace('_', ' ')}",
        )
    tables = {}
    for title, (value, text, higher, measure) in measures.items():
        ordered = sorted(entries(cards), key=value, reverse=higher)
        values = [value(e) for e in ordered]
        tables[title] = [
            {
                "rank": values.index(value(e)) + 1,  # Equal values share the best rank.
                "cell": e["label"],
                "value": text(e),
                "verdict": _verdict(e["card"], measure) if e["side"] == "cell" else "baseline",
            }
            for e in ordered
        ]
    return tables


def write(args) -> None:
    """``index.md`` (and ``index.json``) over the cards under ``args.out``."""
    cards = read_cards(args.out)
    against = sorted({c["against"] for c in cards})
    if len(against) > 1:  # Speed ratios and verdicts against different cells do not rank.
        raise SystemExit(
            f"error: the cards under {args.out} are against {', '.join(against)}: an index ranks "
            "cards against one baseline (a card against another goes to cards/against_<cell>/)"
        )
    report = reporting.Report(args, "Cell cards: every cell against its baseline", page="index")
    if not cards:
        report.text(f"No card under {args.out}.")
        report.finish()
        return
    report.text(
        f"{len(cards)} cards under this folder, against {against[0]}; each measure "
        "ranks them best first (lower bits per character, higher accuracy, faster, longer "
        "horizons), with the card's verdict against its baseline (the rules are on every "
        "card). Cards: "
        + ", ".join(f"[{c['label']}]({Path(c['folder']).name}/card.md)" for c in cards)
        + "."
    )
    attention = sorted({c["lab"]["attention_mqar"] for c in cards}, key=lambda h: h or 0)
    report.text(
        "For scale on MQAR: the lab's attention control (not a cell, not ranked) passes "
        + " / ".join(str(h or "no") for h in attention)
        + " pairs at the lab's width."
    )
    for title, rows in rankings(cards).items():
        report.text(f"### {title}\n\n{reporting.markdown_table(rows, COLUMNS)}")
    report.json("index", {"cards": [c["folder"] for c in cards]})
    report.finish()
