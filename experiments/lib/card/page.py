"""The card's page: one row per measure, the cell beside the baseline, a verdict each.

``measures`` turns what the card gathered into rows; ``figure`` draws the language-model curves,
the IMDB accuracies per seed and the lab's horizons side by side. Every verdict follows one of
the rules in ``RULES``, printed on the card.
"""

import math
from typing import Any

import numpy as np

from experiments.lib import noise, reporting
from experiments.lib.lab.report import DIAL_NAMES, horizon_text, walked
from experiments.lib.reporting import Column

RULES = {
    "seeds": f"LM bits per character and IMDB accuracy, over seeds: {noise.RULE}",
    "rounds": "training speed, over timing rounds: the same rule, the rounds paired (each times "
    "one step of every candidate in turn)",
    "lab": "lab horizons: a larger horizon is better, a smaller one worse; an equal one is "
    "within noise (a horizon already needs 2 of 3 seeds at some rate, and its resolution is "
    "one doubling of the difficulty)",
}

COLUMNS = (
    Column("measure", "measure"),
    Column("cell", "this cell"),
    Column("baseline", "baseline"),
    Column("difference", "difference"),
    Column("verdict", "verdict"),
)


def mean_sd_text(values: list[float], digits: int = 4) -> str:
    mean, sd = noise.mean_sd(values)
    spread = "" if math.isnan(sd) else f" ± {sd:.{digits}f}"
    return f"{mean:.{digits}f}{spread} ({len(values)} seeds)"


def difference_text(difference: dict[str, float] | None, digits: int = 4) -> str:
    if difference is None:
        return "–"
    half = difference["half_width"]
    return f"{difference['mean']:+.{digits}f}" + (
        "" if math.isnan(half) else f" ± {half:.{digits}f}"
    )


def seed_row(
    measure: str, short: str, cell: list[float], baseline: list[float], lower_is_better: bool
) -> dict[str, Any]:
    """A measure over seeds: mean ± sd each, the paired difference and its verdict.

    ``short``: the measure's name in the card's headline sentence.
    """
    difference = noise.paired_difference(cell, baseline)
    return {
        "measure": measure,
        "short": short,
        "cell": mean_sd_text(cell),
        "baseline": mean_sd_text(baseline),
        "difference": difference_text(difference),
        "verdict": noise.verdict(difference, lower_is_better),
        "values": {"cell": cell, "baseline": baseline, "difference": difference},
    }


def lab_verdict(mine: int | None, theirs: int | None) -> str:
    """``RULES['lab']``: a horizon of None is below every difficulty."""
    low = -1
    mine, theirs = (low if h is None else h for h in (mine, theirs))
    return "better" if mine > theirs else "worse" if mine < theirs else "within noise"


def measures(gathered: dict[str, Any]) -> list[dict[str, Any]]:
    """The card's rows from what ``experiments.card`` gathered (see ``card.json``)."""
    rows = [
        {
            "measure": "conformance (check_cell)",
            "cell": f"PASS: all {len(gathered['conformance'])} properties",
            "baseline": "–",
            "difference": "–",
            "verdict": "PASS",
        }
    ]
    parameters = gathered["parameters"]
    for study, name in (("imdb", "IMDB"), ("lab", "lab (MQAR)"), ("lm", "language model")):
        mine, theirs = parameters["cell"][study], parameters["baseline"][study]
        rows.append(
            {
                "measure": f"parameters, {name}",
                "short": f"parameters in the {name} model",
                "cell": f"{mine:,}",
                "baseline": f"{theirs:,}",
                "difference": f"x {mine / theirs:.2f}",
                "verdict": "–",
            }
        )
    for study, unit in (("imdb", "examples/s"), ("language_model", "characters/s")):
        speed = gathered["speed"][study]
        rows.append(
            {
                "measure": f"training speed, {'IMDB' if study == 'imdb' else 'language model'}",
                "short": f"training speed on {'IMDB' if study == 'imdb' else 'the LM'}",
                "cell": f"{speed['cell']:,.0f} {unit}",
                "baseline": f"{speed['baseline']:,.0f} {unit}",
                "difference": f"x {speed['ratio']:.2f} (step time "
                f"{difference_text(speed['difference'], 5)} s)",
                "verdict": speed["verdict"],
            }
        )
    lab = gathered["lab"]
    for task, horizons in lab["horizons"].items():
        dials = walked(task, lab["max_dials"])
        mine, theirs = horizons["cell"], horizons["baseline"]
        rows.append(
            {
                "measure": f"lab: {task.replace('_', ' ')} ({DIAL_NAMES[task]}, up to {dials[-1]})",
                "short": f"the {task.replace('_', ' ')} horizon",
                "cell": horizon_text(task, mine, lab["max_dials"]) or "–",
                "baseline": horizon_text(task, theirs, lab["max_dials"]) or "–",
                "difference": _doublings(mine, theirs, dials),
                "verdict": lab_verdict(mine, theirs),
            }
        )
    lm = gathered["lm"]
    rows.append(
        seed_row(
            "LM test bits per character", "LM bits per character", lm["cell"], lm["baseline"], True
        )
    )
    imdb = gathered["imdb"]
    rows.append(
        seed_row("IMDB test accuracy", "IMDB accuracy", imdb["cell"], imdb["baseline"], False)
    )
    return rows


def _doublings(mine: int | None, theirs: int | None, dials: tuple[int, ...]) -> str:
    if mine == theirs:
        return "same"
    index = {None: -1} | {d: i for i, d in enumerate(dials)}
    steps = index[mine] - index[theirs]
    return f"{steps:+d} difficult{'y' if abs(steps) == 1 else 'ies'}"


def figure(gathered: dict[str, Any], cell_name: str, baseline_name: str):
    """Three panels: LM validation curves, IMDB accuracy per seed, lab horizons per task."""
    fig, axes = reporting.new_figure(1, 3, width=5.0, height=3.8)
    curves = gathered["lm"]["curves"]
    for who, colour, name in (("cell", "C0", cell_name), ("baseline", "C1", baseline_name)):
        for index, curve in enumerate(curves[who]):
            axes[0].plot(
                [p["characters"] for p in curve],
                [p["val_bpc"] for p in curve],
                color=colour,
                alpha=0.8,
                label=name if index == 0 else None,
            )
    axes[0].set_xlabel("characters trained")
    axes[0].set_ylabel("validation bpc")
    axes[0].set_title("Language model")
    axes[0].legend(fontsize=7)
    imdb = gathered["imdb"]
    for x, (who, name) in enumerate((("cell", cell_name), ("baseline", baseline_name))):
        values = imdb[who]
        axes[1].scatter([x] * len(values), values, color=f"C{x}", label=name)
        axes[1].hlines(np.mean(values), x - 0.2, x + 0.2, color=f"C{x}")
    axes[1].set_xticks([0, 1], [cell_name, baseline_name], fontsize=7)
    axes[1].set_ylabel("test accuracy")
    axes[1].set_title("IMDB, per seed")
    lab = gathered["lab"]
    tasks = list(lab["horizons"])
    width = 0.38
    for offset, (who, name) in enumerate((("cell", cell_name), ("baseline", baseline_name))):
        passed = []
        for task in tasks:
            horizon, dials = lab["horizons"][task][who], walked(task, lab["max_dials"])
            passed.append(0 if horizon is None else dials.index(horizon) + 1)
        axes[2].bar(np.arange(len(tasks)) + (offset - 0.5) * width, passed, width, label=name)
    axes[2].set_xticks(range(len(tasks)), [t.replace("_", "\n") for t in tasks], fontsize=7)
    axes[2].set_ylabel("difficulties passed")
    axes[2].set_title("Lab horizons")
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig


def summary(name, against, rows, gathered, lab_budget, lm_budget, args) -> str:
    """The card's opening paragraph: the verdicts in one sentence, then what was measured."""
    verdicts = {}
    for row in rows[1:]:
        verdicts.setdefault(row["verdict"], []).append(row["short"])
    said = [
        f"{verdict} on {_listed(measures)}"
        for verdict, measures in verdicts.items()
        if verdict in ("better", "worse")
    ]
    headline = (
        f"**{name} against {against}: "
        + ("; ".join(said) or "within noise on every measure")
        + ("; within noise on the rest" if said and "within noise" in verdicts else "")
        + ".**"
    )
    attention = gathered["lab"]["attention_mqar"]
    mine = gathered["lab"]["horizons"]["mqar"]["cell"]
    recall = (
        f"On MQAR the attention control passes {attention or 'no'} pairs"
        + (
            f" and this cell {mine}"
            if mine
            else f"; this cell fails the first, {walked('mqar', lab_budget.max_dials)[0]}"
        )
        + f", at width {lab_budget.width}."
    )
    paths = gathered["paths"]
    evaluation = (
        f"in the classifier and the language model alike, {paths['classifier']}"
        if paths["classifier"] == paths["language_model"]
        else f"{paths['classifier']}; in the language model, {paths['language_model']}"
    )
    return "\n\n".join(
        [
            headline,
            f"The cell passed all {len(gathered['conformance'])} properties of check_cell. "
            f"Evaluation on this backend: {evaluation}. {recall}",
            f"Budgets: the lab's ({lab_budget.steps} steps of {lab_budget.batch} examples, width "
            f"{lab_budget.width}, 2 of 3 seeds at some rate); the language model's "
            f"({lm_budget.characters / 1e6:.2f} M characters, width {lm_budget.width}, test on "
            + (
                "every test review"
                if not lm_budget.max_examples
                else f"the first {lm_budget.max_examples} test reviews"
            )
            + f"); IMDB at the course's settings (configs/lstm.py with the cell swapped in and "
            f"its own activation{', shrunk by --quick' if args.quick else ''}); seeds "
            f"0-{args.seeds - 1}, the same for both cells. Training speed: the study's own "
            "training step, both cells compiled in this process and timed in interleaved rounds.",
        ]
    )


def _listed(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join(items) if len(items) < 3 else f"{', '.join(items[:-1])} and {items[-1]}"


def rules_text(gathered) -> str:
    """The verdict rules, as the card prints them."""
    del gathered
    return "Verdict rules:\n\n" + "\n".join(f"- {rule}" for rule in RULES.values())
