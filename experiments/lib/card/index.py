"""The index of cards: every card under a folder on one page, the cells ranked measure by measure.

For each measure, the cells in order (the best first: lower bits per character, higher accuracy,
faster, longer horizons), each with its value and its card's verdict against the card's
baseline; the page names the baselines the cards were made against.
"""

import json
from pathlib import Path

from experiments.lib import reporting
from experiments.lib.lab.report import DIAL_NAMES, horizon_text, walked
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


def rankings(cards: list[dict]) -> dict[str, list[dict]]:
    """Per measure, one row per card, ranked (the baseline's own value listed with them)."""
    if not cards:
        return {}
    measures = {
        "LM test bits per character": (
            lambda c: _mean(c["lm"]["cell"]),
            "{:.4f}",
            False,
            "LM test bits",
        ),
        "IMDB test accuracy": (lambda c: _mean(c["imdb"]["cell"]), "{:.4f}", True, "IMDB"),
        "training speed, language model (x the baseline)": (
            lambda c: c["speed"]["language_model"]["ratio"],
            "x {:.2f}",
            True,
            "training speed, language model",
        ),
        "training speed, IMDB (x the baseline)": (
            lambda c: c["speed"]["imdb"]["ratio"],
            "x {:.2f}",
            True,
            "training speed, IMDB",
        ),
    }
    tables = {}
    for title, (value, fmt, higher, measure) in measures.items():
        ordered = sorted(cards, key=value, reverse=higher)
        tables[title] = [
            {
                "rank": rank,
                "cell": card["label"],
                "value": fmt.format(value(card)),
                "verdict": _verdict(card, measure),
            }
            for rank, card in enumerate(ordered, start=1)
        ]
    for task in DIAL_NAMES:
        dials = walked(task, cards[0]["lab"]["max_dials"])

        def passed(card, task=task, dials=dials):
            horizon = card["lab"]["horizons"][task]["cell"]
            return -1 if horizon is None else dials.index(horizon)

        ordered = sorted(cards, key=passed, reverse=True)
        tables[f"lab: {task.replace('_', ' ')} ({DIAL_NAMES[task]})"] = [
            {
                "rank": rank,
                "cell": card["label"],
                "value": horizon_text(
                    task, card["lab"]["horizons"][task]["cell"], card["lab"]["max_dials"]
                )
                or "–",
                "verdict": _verdict(card, f"lab: {task.replace('_', ' ')}"),
            }
            for rank, card in enumerate(ordered, start=1)
        ]
    return tables


def write(args) -> None:
    """``index.md`` (and ``index.json``) over the cards under ``args.out``."""
    cards = read_cards(args.out)
    report = reporting.Report(args, "Cell cards: every cell against its baseline", page="index")
    if not cards:
        report.text(f"No card under {args.out}.")
        report.finish()
        return
    against = sorted({c["against"] for c in cards})
    report.text(
        f"{len(cards)} cards under this folder, against {', '.join(against)}; each measure "
        "ranks them best first (lower bits per character, higher accuracy, faster, longer "
        "horizons), with the card's verdict against its baseline (the rules are on every "
        "card). Cards: "
        + ", ".join(f"[{c['label']}]({Path(c['folder']).name}/card.md)" for c in cards)
        + "."
    )
    for title, rows in rankings(cards).items():
        report.text(f"### {title}\n\n{reporting.markdown_table(rows, COLUMNS)}")
    report.json("index", {"cards": [c["folder"] for c in cards]})
    report.finish()
