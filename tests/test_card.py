"""The cell card (``experiments.card``): a researcher's cell, written here, gets its card from
the quick budgets of every study; bad input is one line and writes nothing."""

import json

import pytest

from experiments import card
from experiments.lib import noise
from experiments.lib.card import imdb, index, page
from experiments.lib.lab.tasks import TASKS
from tests.test_train import DATA_DIR

# A researcher's cell with a constructor argument (the README's IndRNN, its recurrent weight's
# initial range a field).
MY_CELLS = '''
import flax.linen as nn

from rnn_jax import RecurrentCell


class IndRNNCell(RecurrentCell):
    """h' = act(x W + b + u * h), u <[H]> one recurrent weight per unit."""

    label = "IndRNN"
    recurrent_scale: float = 1.0

    def make_recurrent_params(self):
        init = nn.initializers.uniform(scale=self.recurrent_scale)
        self.param("recurrent_weight", init, (self.features,), self.param_dtype)

    def step(self, h, xw):
        h = self.activation(xw + self.read_param("recurrent_weight") * h)
        return h, h


class ForgetfulCell(IndRNNCell):
    """Claims to recur, but its step cuts the gradient through h: check_cell must refuse it."""

    def step(self, h, xw):
        import jax

        h = self.activation(xw + self.read_param("recurrent_weight") * jax.lax.stop_gradient(h))
        return h, h
'''


@pytest.fixture
def my_cells(tmp_path, monkeypatch):
    (tmp_path / "my_cells.py").write_text(MY_CELLS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def flags_for(tmp_path) -> list[str]:
    return [
        "--quick",
        "--store",
        str(tmp_path / "store"),
        "--workdirs",
        str(tmp_path / "workdirs"),
        "--data-dir",
        str(DATA_DIR),
        "--cache-dir",
        str(tmp_path / "cache"),
    ]


@pytest.mark.slow  # Every study's quick runs, for two cells.
def test_a_researchers_cell_gets_its_card_and_its_runs_are_kept(my_cells):
    out = my_cells / "card"
    kwargs = '{"recurrent_scale": 0.5}'
    card.main(["my_cells:IndRNNCell", "--kwargs", kwargs, "--out", str(out), *flags_for(my_cells)])
    for name in ("card.md", "card.json", "card.png", "measures.md", "measures.csv"):
        assert (out / name).stat().st_size > 0, name
    made = json.loads((out / "card.json").read_text())
    measures = [row["measure"] for row in made["rows"]]
    assert measures[0] == "conformance (check_cell)" and made["rows"][0]["verdict"] == "PASS"
    assert sum(m.startswith("lab: ") for m in measures) == len(TASKS)
    assert measures[-2:] == ["LM test bits per character", "IMDB test accuracy"]
    assert {r["verdict"] for r in made["rows"]} <= {"PASS", "better", "worse", "within noise", "–"}
    assert made["label"] == f"IndRNN {kwargs}" and made["against"] == "lstm"
    assert len(made["lm"]["cell"]) == len(made["imdb"]["baseline"]) == 2  # --quick: 2 seeds.
    # The verdicts follow the printed rule from the values on the card.
    lm = next(r for r in made["rows"] if r["measure"] == "LM test bits per character")
    difference = noise.paired_difference(made["lm"]["cell"], made["lm"]["baseline"])
    assert lm["verdict"] == noise.verdict(difference, lower_is_better=True)
    text = (out / "card.md").read_text()
    assert "IndRNN" in text and "Verdict rules" in text and "attention control passes" in text
    # Every run is a record in the store, which the next card reads back (the baseline's too).
    store = my_cells / "store"
    assert len(list((store / "lm" / "runs").glob("*.json"))) == 4
    assert len(list((store / "cards" / "imdb_runs").glob("*.json"))) == 4
    assert len(list((store / "lab" / "runs").glob("lstm__*.json"))) >= len(TASKS)
    args = card.parse_args(["lstm", *flags_for(my_cells)])
    baseline = imdb.RunKey("lstm", 0)
    path = store / "cards" / "imdb_runs" / f"{baseline.name()}.json"
    assert imdb.read_back(path, imdb.config_of(baseline, args)) is not None
    # The index ranks the cards measure by measure.
    index.write(card.parse_args(["--index", "--quick", "--out", str(my_cells)]))
    ranked = (my_cells / "index.md").read_text()
    assert "IndRNN" in ranked and "LM test bits per character" in ranked


@pytest.mark.parametrize(
    "argv, message",
    [
        (["my_cells:NoSuchCell"], "has no 'NoSuchCell'"),
        (["no_such_module:Cell"], "cannot import module 'no_such_module'"),
        (["my_cells:IndRNNCell", "--kwargs", "[1, 2]"], "is not a JSON object"),
        (["my_cells:IndRNNCell", "--kwargs", "{bad"], "is not JSON"),
    ],
)
def test_a_cell_that_cannot_be_built_is_one_line_and_writes_nothing(
    my_cells, capsys, argv, message
):
    out = my_cells / "card"
    with pytest.raises(SystemExit) as exit_info:
        card.main([*argv, "--out", str(out), *flags_for(my_cells)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in error, error
    assert not out.exists() and not (my_cells / "store").exists()


def test_a_cell_that_fails_check_cell_gets_no_card(my_cells, capsys):
    out = my_cells / "card"
    with pytest.raises(SystemExit) as exit_info:
        card.main(["my_cells:ForgetfulCell", "--out", str(out), *flags_for(my_cells)])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: no card: check_cell(ForgetfulCell): float64 gradients")
    assert not out.exists() and not (my_cells / "store").exists()


def test_a_lab_horizon_verdict_compares_difficulties_and_none_is_below_all():
    assert page.lab_verdict(64, 32) == "better"
    assert page.lab_verdict(None, 16) == "worse"
    assert page.lab_verdict(None, None) == page.lab_verdict(32, 32) == "within noise"


def _card_json(cell, label, bpc, accuracy, speed, adding, adding_verdict) -> dict:
    """What ``experiments.card`` writes to card.json, as much of it as the index reads."""
    horizons = {task: {"cell": None, "baseline": None} for task in TASKS}
    horizons["adding"] = {"cell": adding, "baseline": 64}
    return {
        "cell": cell,
        "label": label,
        "folder": cell,
        "against": "lstm",
        "lm": {"cell": [bpc, bpc], "baseline": [2.5, 2.6]},
        "imdb": {"cell": [accuracy, accuracy], "baseline": [0.86, 0.87]},
        "speed": {"imdb": {"ratio": speed}, "language_model": {"ratio": speed}},
        "lab": {"horizons": horizons, "max_dials": None, "attention_mqar": 8},
        "rows": [
            {"measure": "LM test bits per character", "verdict": "better"},
            {"measure": "lab: adding (length T, up to 256)", "verdict": adding_verdict},
        ],
    }


def test_the_index_ranks_the_baseline_among_the_cells_once(tmp_path):
    cards = [
        _card_json("gru", "GRU", 2.3, 0.88, 1.2, adding=64, adding_verdict="within noise"),
        _card_json("rnn", "SimpleRNN", 2.7, 0.80, 2.0, adding=None, adding_verdict="worse"),
    ]
    tables = index.rankings(cards)
    bpc = tables["LM test bits per character"]
    assert [(r["cell"], r["value"]) for r in bpc] == [
        ("GRU", "2.3000"),
        ("LSTM", "2.5500"),
        ("SimpleRNN", "2.7000"),
    ]
    assert [r["verdict"] for r in bpc] == ["better", "baseline", "better"]
    accuracy = [r["cell"] for r in tables["IMDB test accuracy"]]
    assert accuracy == ["GRU", "LSTM", "SimpleRNN"]
    speed = tables["training speed, IMDB (x the baseline)"]
    assert [(r["cell"], r["value"]) for r in speed][-1] == ("LSTM", "x 1.00")
    adding = tables["lab: adding (length T)"]
    assert [(r["rank"], r["cell"], r["value"], r["verdict"]) for r in adding] == [
        (1, "GRU", "64", "within noise"),
        (1, "LSTM", "64", "baseline"),
        (3, "SimpleRNN", "–", "worse"),
    ]
    # The page: every card linked, the attention control's MQAR horizon for scale.
    for one in cards:
        (tmp_path / one["folder"]).mkdir()
        (tmp_path / one["folder"] / "card.json").write_text(json.dumps(one))
    index.write(card.parse_args(["--index", "--out", str(tmp_path)]))
    page_text = (tmp_path / "index.md").read_text()
    assert "[GRU](gru/card.md), [SimpleRNN](rnn/card.md)" in page_text
    assert "attention control (not a cell, not ranked) passes 8 pairs" in page_text


def test_the_headline_names_each_verdicts_measures_in_one_sentence():
    from types import SimpleNamespace

    from experiments.lib.lab import runs as lab_runs
    from experiments.lib.lm import runs as lm_runs

    rows = [
        {"measure": "conformance", "short": "conformance", "verdict": "PASS"},
        {"measure": "training speed, IMDB", "short": "training speed on IMDB", "verdict": "better"},
        {"measure": "lab: parity", "short": "the parity horizon", "verdict": "within noise"},
        {"measure": "lab: adding", "short": "the adding horizon", "verdict": "worse"},
        {"measure": "lab: mqar", "short": "the mqar horizon", "verdict": "worse"},
        {"measure": "IMDB test accuracy", "short": "IMDB accuracy", "verdict": "worse"},
    ]
    path = "sequential (lax.scan)"
    gathered = {
        "lab": {"attention_mqar": 8, "horizons": {"mqar": {"cell": None}}},
        "paths": {"classifier": path, "language_model": path},
        "conformance": [{}] * 11,
    }
    args = SimpleNamespace(quick=False, seeds=3)
    text = page.summary("GRU", "LSTM", rows, gathered, lab_runs.FULL, lm_runs.FULL, args)
    assert text.startswith(
        "**GRU against LSTM: better on training speed on IMDB; worse on the adding horizon, "
        "the mqar horizon and IMDB accuracy; within noise on the rest.**"
    )
    assert f"the language model alike, {path}." in text
    assert "attention control passes 8 pairs; this cell fails the first, 2, at width 64" in text


def test_a_card_against_another_baseline_has_its_own_folder_and_index(tmp_path, capsys):
    from experiments.lib.flags import RESULTS_DIR

    assert card.parse_args(["gru"]).out == RESULTS_DIR / "cards" / "gru"
    against = card.parse_args(["gru", "--against", "mingru"]).out
    assert against == RESULTS_DIR / "cards" / "against_mingru" / "gru"
    # An index never ranks cards made against different baselines together.
    for name, baseline in (("gru", "lstm"), ("rnn", "mingru")):
        one = _card_json(name, name, 2.3, 0.88, 1.2, adding=64, adding_verdict="within noise")
        (tmp_path / name).mkdir()
        (tmp_path / name / "card.json").write_text(json.dumps(one | {"against": baseline}))
    with pytest.raises(SystemExit) as exit_info:
        index.write(card.parse_args(["--index", "--out", str(tmp_path)]))
    assert "are against lstm, mingru: an index ranks cards against one baseline" in str(
        exit_info.value
    )
    assert not (tmp_path / "index.md").exists()
