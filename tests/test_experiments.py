"""Smoke tests of the experiment scripts: the cheapest ones, --quick, into tmp_path.

They run in-process (one JAX start-up for all) and check that every promised file is written
and the tables have the expected rows; the numbers of a quick run mean nothing.
"""

import ast
import csv
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import experiments
from experiments import (
    accelerator,
    benchmark,
    best,
    bucketing,
    cores,
    data,
    keras_twin,
    precision,
    schedule,
    shootout,
    step_anatomy,
    studies,
    timeseries,
)
from experiments.lib import candidates, flags, length_sweep, reporting, timing, training_runs
from rnn_jax.cells import CELLS, LINEAR_CELLS
from rnn_jax.training import parallel

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "tensorflow_datasets"
# The scripts' --quick runs train and time real models: not the edit loop's.
pytestmark = pytest.mark.slow


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_report(out: Path, files: list[str]) -> dict:
    """Every file exists; report.md has the header; meta.json says what ran where."""
    for name in ["report.md", "meta.json", *files]:
        assert (out / name).is_file(), f"{name} missing in {out}"
    assert "- command: `python -m experiments." in (out / "report.md").read_text()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["quick"] is True and meta["run_seconds"] >= 0
    assert meta["machine"]["cpu_count"] >= 1 and meta["machine"]["jax_backend"]
    return meta


@pytest.fixture(scope="module")
def data_args(tmp_path_factory):
    assert (DATA_DIR / "imdb_reviews").is_dir(), f"IMDB data missing: expected it in {DATA_DIR}"
    cache = tmp_path_factory.mktemp("cache")
    return ["--data-dir", str(DATA_DIR), "--cache-dir", str(cache)]


def test_tables_keep_their_markdown_and_csv_format(tmp_path):
    columns = (
        reporting.Column("name", "name"),
        reporting.Column("x", "x value", "{:.2f}"),
        reporting.Column("n", "count", "{:,}"),
    )
    rows = [{"name": "a", "x": 0.5, "n": 12345}, {"name": "b", "x": math.nan, "n": None}]
    assert reporting.markdown_table(rows, columns) == (
        "| name | x value | count |\n| --- | --- | --- |\n| a | 0.50 | 12,345 |\n| b | – | – |"
    )
    reporting.write_csv(tmp_path / "t.csv", rows, columns)
    assert (tmp_path / "t.csv").read_bytes() == b"name,x,n\r\na,0.5,12345\r\nb,nan,\r\n"


def experiments_imports(path: Path) -> set[str]:
    """The ``experiments`` modules a module imports, at top level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("experiments"):
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("experiments")}
    return found


def test_scripts_import_the_library_and_no_other_script(tmp_path):
    experiments_dir = Path(experiments.__file__).parent
    scripts = {p.stem for p in experiments_dir.glob("*.py")} - {"__init__"}
    for path in [*experiments_dir.glob("*.py"), *experiments_dir.glob("lib/*.py")]:
        imported = {name.split(".")[1] for name in experiments_imports(path) if "." in name}
        assert imported <= {"lib"}, f"{path}: imports {imported - {'lib'}}, not only lib"
    assert "benchmark" in scripts and "accelerator" in scripts
    # The check sees a script imported inside a function, as a deferred import hides it.
    (tmp_path / "x.py").write_text("def f():\n    from experiments import benchmark, lib\n")
    assert experiments_imports(tmp_path / "x.py") == {"experiments.benchmark", "experiments.lib"}


def test_every_registered_cell_has_a_label_of_its_own():
    labels = [reporting.cell_label(name) for name in CELLS]
    assert len(set(labels)) == len(CELLS) and "cell" not in labels  # Not the base class's.


def test_timeseries_quick_every_cell_beats_the_naive_forecast(tmp_path):
    timeseries.main(["--quick", "--out", str(tmp_path)])
    check_report(tmp_path, ["table.md", "table.csv", "predictions.png", "training.png"])
    rows = read_csv(tmp_path / "table.csv")
    cells = [cell.label for cell in CELLS.values()]  # Every registered cell.
    assert [r["model"].split()[0] for r in rows] == ["naive", *cells]
    naive = float(rows[0]["test_mse"])
    for row in rows[1:]:  # Each learned more than "tomorrow is like today" (0.55-0.61 here).
        assert float(row["test_mse"]) < 0.8 * naive, row
        assert float(row["vs_naive"]) == pytest.approx(float(row["test_mse"]) / naive, rel=1e-3)


def test_data_quick_on_real_imdb(tmp_path, data_args):
    data.main(["--quick", "--out", str(tmp_path), *data_args])
    check_report(
        tmp_path,
        [
            "lengths.png",
            "coverage.md",
            "coverage.csv",
            "top_words.md",
            "top_words.csv",
            "example.md",
        ],
    )
    coverage = read_csv(tmp_path / "coverage.csv")
    assert [int(r["max_len"]) for r in coverage] == list(data.MAX_LENS)
    kept = [float(r["kept_whole"]) for r in coverage]
    assert kept == sorted(kept) and 0 <= kept[0] <= kept[-1] <= 1
    words = read_csv(tmp_path / "top_words.csv")
    assert len(words) == data.TOP_WORDS and words[0]["id"] == "4"
    assert "**Original text**" in (tmp_path / "example.md").read_text()


def test_studies_quick_optimizer(tmp_path, data_args, capsys):
    out, workdirs = tmp_path / "results", tmp_path / "runs"
    argv = ["--quick", "--study", "optimizer", "--out", str(out), "--workdirs", str(workdirs)]
    studies.main([*argv, *data_args])
    check_report(out / "optimizer", ["table.md", "table.csv", "plot.png"])
    rows = read_csv(out / "optimizer" / "table.csv")
    assert [(r["optimizer"], float(r["learning_rate"])) for r in rows] == [
        ("rmsprop", 1e-4),
        ("adam", 1e-3),
    ]
    assert all(0 <= float(r["test_accuracy"]) <= 1 for r in rows)
    # Workdirs are named by the change to the assignment config, so studies share runs.
    assert sorted(p.name for p in workdirs.iterdir()) == [
        "assignment",
        "learning_rate_0.001-optimizer_adam",
    ]
    # A rerun reuses both finished runs instead of training again.
    capsys.readouterr()
    studies.main([*argv, *data_args])
    assert capsys.readouterr().out.count("reusing the finished run") == 2
    meta = check_report(out / "optimizer", ["table.md"])
    assert meta["reused_runs"] == ["rmsprop_1e-4", "adam_1e-3"]
    assert "(reused finished training runs: " in (out / "optimizer" / "report.md").read_text()


def test_best_quick_selects_on_validation_tests_only_refits_and_averages_them(tmp_path, data_args):
    from rnn_jax.data import input_pipeline
    from rnn_jax.inference import ensemble
    from rnn_jax.inference import runs as inference

    out, workdirs = tmp_path / "results", tmp_path / "runs"
    argv = ["--quick", "--members", "gru", "lstm", "--out", str(out), "--workdirs", str(workdirs)]
    best.main([*argv, *data_args])
    check_report(out, ["table.md", "table.csv", "ensemble.md", "ensemble.csv", "curves.png"])
    rows = {r["run"]: r for r in read_csv(out / "table.csv")}
    for member in ("gru", "lstm"):
        selection, refit = rows[f"selection {member}"], rows[f"refit {member}"]
        assert selection["test_accuracy"] == "" and 0 <= float(selection["best_val_accuracy"]) <= 1
        assert refit["best_val_accuracy"] == "" and 0 <= float(refit["test_accuracy"]) <= 1
        refit_config = json.loads((workdirs / "refit" / member / "config.json").read_text())
        assert refit_config["validation_fraction"] == 0.0 and refit_config["cell"] == member
        selection_dir = workdirs / "selection" / member
        selection_config = json.loads((selection_dir / "config.json").read_text())
        assert selection_config["validation_fraction"] == best.SELECTION_VALIDATION_FRACTION
        # The refit saw every training review (quick: the first 256 of each split).
        steps = [int(p.name) for p in (workdirs / "refit" / member / "checkpoints").iterdir()]
        assert max(steps) == 256 // flags.QUICK_FIELDS["batch_size"]
    # The ensemble's test row is the mean probability of the two refits, per review.
    refits = [str(workdirs / "refit" / member) for member in ("gru", "lstm")]
    probabilities, labels = [], None
    for member, workdir in zip(("gru", "lstm"), refits, strict=True):
        run = inference.load_run(workdir)
        test = input_pipeline.load_imdb_for(run.config).test
        labels = test["label"]
        probabilities.append(1 / (1 + np.exp(-inference.predict_split(run, test))))
        alone = ensemble.evaluate([workdir], "test")  # As training evaluated it.
        assert alone["accuracy"] == pytest.approx(
            float(rows[f"refit {member}"]["test_accuracy"]), abs=1e-4
        )
    mean = np.mean(probabilities, axis=0)
    ensemble_rows = {r["split"]: r for r in read_csv(out / "ensemble.csv")}
    expected = np.mean((mean > 0.5) == (labels == 1))
    assert float(ensemble_rows["test"]["accuracy"]) == pytest.approx(expected, abs=1e-4)
    expected_loss = -np.mean(np.where(labels == 1, np.log(mean), np.log(1 - mean)))
    assert float(ensemble_rows["test"]["loss"]) == pytest.approx(expected_loss, abs=1e-4)
    assert 0 <= float(ensemble_rows["validation"]["accuracy"]) <= 1
    # A refit has no validation split, and it trained on more reviews than its selection run.
    selection_gru = str(workdirs / "selection" / "gru")
    with pytest.raises(ensemble.EvaluationError, match="has no validation split"):
        ensemble.evaluate([selection_gru, refits[0]], "validation")
    with pytest.raises(ensemble.EvaluationError, match="holds other train reviews"):
        ensemble.evaluate([selection_gru, refits[0]], "train")


def test_schedule_quick_trains_both_schedules_of_a_seed(tmp_path, data_args):
    out, workdirs = tmp_path / "out", tmp_path / "runs"
    args = ["--quick", "--cells", "rnn", "--seeds", "3"]
    schedule.main([*args, "--out", str(out), "--workdirs", str(workdirs), *data_args])
    check_report(out, ["table.md", "table.csv", "runs.md", "runs.csv"])
    runs = read_csv(out / "runs.csv")
    assert [(r["schedule"], r["seed"]) for r in runs] == [(s, "3") for s in schedule.SCHEDULES]
    for row in runs:
        workdir = workdirs / "rnn" / row["schedule"] / "seed_3"
        config = json.loads((workdir / "config.json").read_text())
        assert (config["schedule"], config["seed"]) == (row["schedule"], 3)
        summary = json.loads((workdir / "summary.json").read_text())
        assert float(row["best_val_accuracy"]) == pytest.approx(summary["best_val_accuracy"])
        (rate,) = [e["learning_rate"] for e in json.loads((workdir / "history.json").read_text())]
        if row["schedule"] == "constant":
            assert rate == config["learning_rate"]
        else:  # Decayed over the run; its last step's rate is still above 0.
            assert config["learning_rate"] > rate > 0
    (means,) = read_csv(out / "table.csv")
    assert means["cell"] == "SimpleRNN" and means["seeds"] == "3"


def test_schedule_summary_takes_means_over_seeds_and_counts_cosine_wins_on_validation():
    def row(name, seed, val, test):
        return {"cell": "LSTM", "schedule": name, "seed": seed, "best_val_accuracy": val,
                "test_accuracy": test}  # fmt: skip

    rows = [
        row("constant", 0, 0.80, 0.70), row("warmup_cosine", 0, 0.82, 0.60),
        row("constant", 1, 0.90, 0.80), row("warmup_cosine", 1, 0.86, 0.90),
        row("constant", 2, 0.70, 0.75), row("warmup_cosine", 2, 0.72, 0.75),
    ]  # fmt: skip
    summary = schedule.summary_row("lstm", rows)
    assert summary["seeds"] == "0 1 2" and summary["cosine_wins"] == "2 of 3"
    assert summary["constant_val"] == pytest.approx(0.80)
    assert summary["cosine_val"] == pytest.approx(0.80)
    assert summary["constant_test"] == pytest.approx(0.75)
    assert summary["cosine_test"] == pytest.approx(0.75)


def test_precision_quick_trains_the_lstm_in_both_compute_dtypes(tmp_path, data_args):
    out, workdirs = tmp_path / "results", tmp_path / "runs"
    precision.main(["--quick", "--out", str(out), "--workdirs", str(workdirs), *data_args])
    check_report(out, ["table.md", "table.csv", "curves.png"])
    rows = read_csv(out / "table.csv")
    assert [r["compute_dtype"] for r in rows] == ["float32", "bfloat16"]
    assert all(0 <= float(r["test_accuracy"]) <= 1 for r in rows)
    for dtype in precision.DTYPES:
        config = json.loads((workdirs / dtype / "config.json").read_text())
        assert (config["cell"], config["compute_dtype"]) == ("lstm", dtype)


OWN_CELL = """
from rnn_jax import SimpleRNNCell


class LeakyCell(SimpleRNNCell):
    def step(self, h, xw):
        h = 0.5 * h + 0.5 * self.activation(xw + h @ self.recurrent_kernel)
        return h, h
"""


def test_shootout_compares_a_cell_from_the_researchers_own_module(tmp_path, data_args, monkeypatch):
    (tmp_path / "own_cells.py").write_text(OWN_CELL)
    monkeypatch.syspath_prepend(str(tmp_path))
    out, workdirs = tmp_path / "results", tmp_path / "runs"
    args = ["--quick", "--out", str(out), "--workdirs", str(workdirs), *data_args]
    shootout.main([*args, "--cells", "own_cells:LeakyCell"])
    check_report(out, ["table.md", "table.csv", "curves.png", "accuracy_vs_time.png"])
    assert [r["cell"] for r in read_csv(out / "table.csv")] == ["LSTM", "LeakyCell"]
    config = json.loads((workdirs / "own_cells.LeakyCell" / "config.json").read_text())
    lstm = json.loads((workdirs / "lstm" / "config.json").read_text())
    assert config == lstm | {"cell": "own_cells:LeakyCell"}  # The course's settings.
    with pytest.raises(SystemExit):
        shootout.main([*args, "--cells", "own_cells:Nope"])


def test_an_experiment_tests_a_tuning_run_before_reusing_it(tmp_path):
    from tests.test_train import tiny_config

    config = tiny_config(evaluate_test=False)
    training_runs.run("tuning", config, tmp_path)
    assert training_runs.read_json(tmp_path / "summary.json")["test_accuracy"] is None
    config.evaluate_test = True
    assert not training_runs.is_finished(config, tmp_path)
    reused_before = len(training_runs.REUSED_RUNS)
    result = training_runs.run("tuning", config, tmp_path)  # Tests it; trains nothing more.
    assert 0.0 <= result.summary["test_accuracy"] <= 1.0
    assert training_runs.REUSED_RUNS[reused_before:] == ["tuning"]  # The report's header says so.
    assert training_runs.is_finished(config, tmp_path)


def test_keras_twin_quick_evaluates_every_epoch_of_every_run(tmp_path, data_args):
    out, workdirs = tmp_path / "results", tmp_path / "runs"
    argv = ["--quick", "--seeds", "3", "--epochs", "2", "--out", str(out)]
    keras_twin.main([*argv, "--workdirs", str(workdirs), *data_args])
    check_report(out, ["table.md", "table.csv", "seeds.csv", "epochs.json", "accuracy_vs_time.png"])
    frameworks = ["rnn_jax", "rnn_jax, fast", keras_twin.KERAS]
    rows = {r["framework"]: r for r in read_csv(out / "table.csv")}
    assert list(rows) == frameworks
    assert float(rows[keras_twin.KERAS]["epoch_time_vs_keras"]) == 1.0
    runs = json.loads((out / "epochs.json").read_text())
    for name in frameworks:
        assert list(runs[name]) == ["3"]  # Seeds, as JSON keys.
        epochs = runs[name]["3"]
        assert len(epochs) == 2
        assert all(0 <= e["test_accuracy"] <= 1 and e["seconds"] > 0 for e in epochs)
    for name, folder in [("rnn_jax", "rnn_jax"), ("rnn_jax, fast", "rnn_jax_fast")]:
        workdir = workdirs / "lstm" / folder / "seed_3"
        summary = json.loads((workdir / "summary.json").read_text())
        # The per-epoch evaluation restores the right checkpoint: at the epoch best on
        # validation it gives the test accuracy train_and_evaluate reported.
        best = runs[name]["3"][summary["best_epoch"] - 1]["test_accuracy"]
        assert best == pytest.approx(summary["test_accuracy"], abs=1e-6)
        # Each run trained in its own process, on the devices its config asks for.
        assert int(rows[name]["devices"]) == summary["devices"]
        config = json.loads((workdir / "config.json").read_text())
        assert config["seed"] == 3
        assert {k: config[k] for k in keras_twin.FAST} == (
            keras_twin.FAST if name == "rnn_jax, fast" else {"cpu_devices": 1, "bucket_width": 0}
        )
    assert int(rows["rnn_jax"]["devices"]) == 1
    assert (int(rows["rnn_jax, fast"]["devices"]) > 1) == (parallel.usable_cores() > 1)


def test_keras_twin_summary_takes_medians_over_seeds_and_counts_misses():
    def seed_rows(seconds_to_target: list[float | None], seconds_per_epoch: float) -> list[dict]:
        return [
            {
                "seconds_per_epoch": seconds_per_epoch,
                "best_test_accuracy": 0.87,
                "seconds_to_target": s,
            }
            for s in seconds_to_target
        ]

    runs = {0: [{"examples_per_second": 100.0}], 1: [{"examples_per_second": 300.0}]}
    a = keras_twin.framework_row("a", seed_rows([30.0, None, 10.0], 5.0), runs)
    b = keras_twin.framework_row("b", seed_rows([None, None, 5.0], 5.0), runs)
    keras = keras_twin.framework_row(keras_twin.KERAS, seed_rows([20.0], 10.0), runs)
    # A seed that never reached the target counts as infinitely slow: median of [10, 30, inf].
    assert a["seeds_at_target"] == "2 of 3" and a["seconds_to_target"] == 30.0
    assert b["seeds_at_target"] == "1 of 3" and b["seconds_to_target"] is None
    assert a["examples_per_second"] == 200.0
    keras_twin.compare_to_keras([a, b, keras])
    assert a["time_to_target_vs_keras"] == 1.5 and b["time_to_target_vs_keras"] is None
    assert a["epoch_time_vs_keras"] == 0.5 and keras["epoch_time_vs_keras"] == 1.0


def test_bucketing_quick_scans_fewer_steps_with_buckets(tmp_path, data_args):
    out, workdirs = tmp_path / "results", tmp_path / "runs"
    argv = ["--quick", "--max-len", "400", "--out", str(out), "--workdirs", str(workdirs)]
    bucketing.main([*argv, *data_args])
    check_report(out, ["table.md", "table.csv"])
    rows = read_csv(out / "table.csv")
    assert [int(r["bucket_width"]) for r in rows] == [0, 50]
    plain, bucketed = (float(r["steps_per_review"]) for r in rows)
    assert plain == 400 and 50 <= bucketed < 400
    assert all(0 <= float(r["test_accuracy"]) <= 1 for r in rows)


def test_step_anatomy_quick_times_every_piece(tmp_path):
    step_anatomy.main(["--quick", "--out", str(tmp_path)])
    check_report(tmp_path, ["table.md", "table.csv"])
    rows = {r["piece"]: r for r in read_csv(tmp_path / "table.csv")}
    assert len(rows) == 6 and all(float(r["milliseconds"]) > 0 for r in rows.values())
    assert float(rows["gradient, fused gates"]["vs_gradient"]) == 1.0


def test_step_anatomy_variants_compute_the_same_lstm():
    # The timed variants must differ only in layout: same outputs, same gradients (except the
    # recurrent kernel's, which one variant switches off).
    import jax
    import jax.numpy as jnp
    import numpy as np

    keys = jax.random.split(jax.random.key(1), 3)
    params = (
        jax.random.normal(keys[0], (5, 12)) * 0.5,
        jax.random.normal(keys[1], (3, 12)) * 0.5,
        jnp.linspace(-1, 1, 12),
    )
    xs = jax.random.normal(keys[2], (7, 2, 5))

    def grads(**variant):
        return jax.grad(lambda p: jnp.sum(step_anatomy.lstm_scan(p, xs, **variant) ** 2))(params)

    fused, per_gate, frozen = grads(), grads(per_gate=True), grads(stop_recurrent_grad=True)
    np.testing.assert_allclose(
        step_anatomy.lstm_scan(params, xs, per_gate=True),
        step_anatomy.lstm_scan(params, xs),
        rtol=1e-5,
        atol=1e-6,
    )
    for a, b in zip(fused, per_gate, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert np.abs(fused[1]).max() > 0 and not np.any(frozen[1])
    np.testing.assert_allclose(frozen[0], fused[0], rtol=1e-5, atol=1e-6)


def test_time_to_target_counts_training_seconds_until_the_first_epoch_at_target():
    epochs = [
        {"seconds": 10.0, "test_accuracy": 0.80},
        {"seconds": 12.0, "test_accuracy": 0.87},
        {"seconds": 11.0, "test_accuracy": 0.86},
    ]
    assert keras_twin.time_to_target(epochs, 0.8643) == (2, 22.0)
    assert keras_twin.time_to_target(epochs, 0.9) == (None, None)


def test_benchmark_quick_times_every_cell_and_peer(tmp_path):
    benchmark.main(["--quick", "--no-torch", "--out", str(tmp_path)])
    check_report(
        tmp_path,
        [
            "table.md",
            "table.csv",
            "gru_vs_lstm.md",
            "speed.png",
            "sweeps.csv",
            "linear.md",
            "linear.png",
        ],
    )
    results = json.loads((tmp_path / "results.json").read_text())
    rows = results["rows"]
    linear = {"minGRU", "minLSTM", "RG-LRU"}
    # --quick: every cell beside Flax's; the variants and Keras on the LSTM only.
    assert {(r["framework"], r["cell"]) for r in rows} == {
        (framework, cell)
        for framework in ("rnn_jax", "flax nn.RNN")
        for cell in ("SimpleRNN", "LSTM", "GRU")
    } | {("keras", "LSTM")} | {("rnn_jax", cell) for cell in linear}
    bfloat16 = {r["cell"] for r in rows if r["implementation"].endswith("bfloat16")}
    assert bfloat16 == {"LSTM"}
    # Each cell linear in h scanned sequentially; the minGRU in parallel too.
    evaluations = {(r["cell"], r["implementation"]) for r in rows if r["cell"] in linear}
    assert evaluations == {(c, "rnn_jax sequential") for c in linear} | {
        ("minGRU", "rnn_jax parallel")
    }
    for row in rows:
        assert row["train_examples_per_second"] > 0 and row["infer_examples_per_second"] > 0
        assert 0 < row["peak_fraction"] < 1 and row["vs_lstm"] > 0
        if row["cell"] in linear:  # No peer has them.
            assert row["vs_fastest_peer"] is None
            continue
        # The ratio is to the fastest peer of the same cell, so for peers it is at most 1.
        assert row["vs_fastest_peer"] > 0
        if row["framework"] != "rnn_jax":
            assert row["vs_fastest_peer"] <= 1
    assert any(r["vs_fastest_peer"] == 1 for r in rows if r["framework"] != "rnn_jax")
    # XLA's memory analysis of each jitted step (a pmap row, when there are devices, has none).
    jitted = [r for r in rows if r["framework"] == "rnn_jax" and "pmap" not in r["implementation"]]
    assert all(r["temp_mb"] is not None for r in jitted)
    assert [r["vs_lstm"] for r in rows if r["implementation"] == "rnn_jax unroll=1"][1] == 1
    assert [r["value"] for r in results["sweeps"]] == list(benchmark.QUICK_SWEEPS["time"])
    # The length sweep (--quick: one cell of each kind), both evaluations, beside Flax's.
    swept = results["length_sweep"]
    assert {r["time"] for r in swept} == set(length_sweep.QUICK_LENGTHS)
    assert {(r["cell"], r["implementation"]) for r in swept if r["cell"] in linear} == {
        ("minGRU", "rnn_jax sequential"),
        ("minGRU", "rnn_jax parallel"),
    }
    assert {(r["framework"], r["cell"]) for r in swept if r["cell"] not in linear} == {
        ("rnn_jax", "LSTM"),
        ("flax nn.RNN", "LSTM"),
    }
    assert [r["vs_lstm"] for r in swept if r["implementation"] == "rnn_jax unroll=1"][0] == 1
    assert max(r["vs_fastest_peer"] for r in swept if r["framework"] != "rnn_jax") == 1


def test_flops_per_training_example_at_the_course_shape():
    # The issue's own count at this shape: SimpleRNN 39 M, LSTM 157 M, GRU 118 M.
    millions = {
        cell: round(timing.train_flops_per_example(cell, timing.COURSE_SHAPE) / 1e6)
        for cell in ("rnn", "lstm", "gru")
    }
    assert millions == {"rnn": 39, "lstm": 157, "gru": 118}


def test_accelerator_quick_checks_and_times_every_cell(tmp_path):
    accelerator.main(
        ["--quick", "--no-torch", "--out", str(tmp_path)]
    )  # Raises SystemExit if a check fails.
    check_report(tmp_path, ["table.md", "table.csv", "correctness.md", "correctness.csv"])
    results = json.loads((tmp_path / "results.json").read_text())
    env = results["environment"]
    assert (
        env["device_kind"] == jax.devices()[0].device_kind and env["jax_version"] == jax.__version__
    )
    assert env["local_device_count"] == jax.local_device_count() and env["nvidia_driver"]
    rows = results["correctness"]
    assert all(r["passed"] for r in rows), [r for r in rows if not r["passed"]]
    # Every registered cell: linear ones in both time modes, the LSTM by scan and by the
    # cuDNN path's CPU stand-in; each compared at both precisions, and padded both ways.
    paths = {(c, "defaults") for c in CELLS if c not in LINEAR_CELLS}
    paths -= {("lstm", "defaults")}
    paths |= {("lstm", "lstm_backend=scan"), ("lstm", "cuDNN stand-in (lstm_ref) vs scan")}
    paths |= {(c, f"time_parallel={m}") for c in LINEAR_CELLS for m in ("sequential", "parallel")}
    compared = [
        (r["cell_name"], r["path"], r["precision"]) for r in rows if r["check"] == "device vs host"
    ]
    # --quick: the default precision on the LSTM only.
    precisions = {cell: ("highest",) for cell in CELLS} | {"lstm": ("default", "highest")}
    assert sorted(compared) == sorted((*p, q) for p in paths for q in precisions[p[0]])
    padded = {(r["cell_name"], r["path"]) for r in rows if r["check"] == "pre vs post padding"}
    assert padded == paths
    (pmap,) = [r for r in rows if r["check"] == "pmap vs jit"]
    assert f"pmap over {jax.local_device_count()} device(s)" in pmap["path"]
    assert "FAIL" not in (tmp_path / "correctness.md").read_text()
    # Speed: every cell at both shapes (linear ones in both modes), beside the LSTM peers.
    assert not results["failures"]
    speed = results["speed"]
    for shape in accelerator.QUICK_SHAPES:
        at = [r for r in speed if r["shape"] == shape]
        ours = {(r["cell"], r["implementation"]) for r in at if r["framework"] == "rnn_jax"}
        assert {cell for cell, _ in ours} == {reporting.cell_label(c) for c in CELLS}
        for cell in LINEAR_CELLS:  # --quick: in parallel, the minGRU only.
            for mode in ("sequential", "parallel") if cell == "mingru" else ("sequential",):
                assert (reporting.cell_label(cell), f"rnn_jax {mode}") in ours
        peers = {r["framework"] for r in at if r["framework"] != "rnn_jax"}
        assert {"flax nn.RNN", candidates.EXPERIMENTAL_RNN} <= peers
        for row in at:
            assert row["train_examples_per_second"] > 0 and row["infer_examples_per_second"] > 0
            assert row["compile_seconds"] >= 0 and row["vs_reference"] > 0
    course = {r["implementation"] for r in speed if r["shape"] == list(accelerator.QUICK_SHAPES)[0]}
    for variant in ("unroll=4", "input_projection=", "bfloat16", "lstm_ref (CPU stand-in"):
        assert any(variant in implementation for implementation in course), variant


def test_cores_quick_times_every_setting_as_it_says(tmp_path):
    # Each worker reports its cores and devices; the script stops if a setting is not what it
    # says (a pinned process on other cores, an unpinned one on fewer, pmap on one device).
    # Needs 2 cores and taskset, as the machine this suite is for has.
    cores.main(["--quick", "--cells", "lstm", "--rounds", "1", "--out", str(tmp_path)])
    check_report(tmp_path, ["table.md", "table.csv", "ratios.md"])
    speeds = {r["setting"]: float(r["lstm"]) for r in read_csv(tmp_path / "table.csv")}
    assert list(speeds) == [
        "one device",
        "one device, XLA threads off",
        "one core, half batch",
        "two processes, one core each, half batch each",
        "pmap over 2 devices",
    ]
    assert all(speed > 0 for speed in speeds.values())
    ratios = [float(r["lstm"]) for r in read_csv(tmp_path / "ratios.csv")]
    pairs = [
        (setting, "one device")
        for setting in ("pmap over 2 devices", "one device, XLA threads off")
    ]
    pairs += [
        ("two processes, one core each, half batch each", "one core, half batch"),
        ("pmap over 2 devices", "two processes, one core each, half batch each"),
    ]
    assert ratios == pytest.approx([speeds[top] / speeds[bottom] for top, bottom in pairs])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_the_keras_twin_has_our_parameter_count(cell):
    from configs import default
    from rnn_jax import models
    from rnn_jax.models import count_params

    config = default.get_config()
    config.update(cell=cell, vocab_size=300, max_len=12, embed_dim=6, hidden_size=5)
    ours = models.create_model(config).init(jax.random.key(0), jnp.ones((1, 12), jnp.int32))
    twin = keras_twin.keras_model(config, steps_per_epoch=10)
    assert twin.count_params() == count_params(ours["params"])


@pytest.mark.slow  # Two CPU devices: a process of its own.
def test_parallelism_quick_finds_plain_jits_all_reduce_inside_the_backward_loop(tmp_path):
    """The three paths train on 2 devices; the LSTM under plain jit holds an all-reduce inside a
    loop (run once per time step), pmap and shard_map one all-reduce after the backward pass."""
    import subprocess
    import sys

    from tests.test_train import REPO

    out = tmp_path / "parallelism"
    run = subprocess.run(
        [sys.executable, "-m", "experiments.parallelism", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    check_report(out, ["table.md", "table.csv", "results.json"])
    rows = {r["path"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    assert list(rows) == ["one device", "pmap", "shard_map", "jit"]
    assert all(r["train_examples_per_second"] > 0 for r in rows.values())
    assert (rows["one device"]["all_reduces"], rows["one device"]["all_reduces_in_loops"]) == (0, 0)
    for path in ("pmap", "shard_map"):
        assert (rows[path]["all_reduces"], rows[path]["all_reduces_in_loops"]) == (1, 0), path
    assert rows["jit"]["all_reduces_in_loops"] >= 1
    time_steps = json.loads((out / "results.json").read_text())["shape"]["time"]
    assert rows["jit"]["all_reduces_per_step"] >= time_steps
