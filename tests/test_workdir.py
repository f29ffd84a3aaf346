"""The workdir contract across code versions: a run written by an earlier rnn_jax still predicts,
evaluates and resumes. ``tests/data/workdir_145ef02`` was written by commit 145ef02 (before
``train.py`` and ``input_pipeline.py`` were split by job), with:

    python -m rnn_jax.main --config=configs/lstm.py --config.max_examples=200 \
      --config.vocab_size=60 --config.embed_dim=4 --config.hidden_size=3 --config.num_epochs=2 \
      --config.max_len=24 --config.batch_size=16 --config.eval_batch_size=50 \
      --config.schedule=constant --config.progress_bar=False

(its TensorBoard events left out); ``expected_predictions.json`` holds what that code's
``inference.predict_texts`` returned for three texts.
"""

import json
import shutil
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from rnn_jax.inference import ensemble
from rnn_jax.inference import runs as inference
from rnn_jax.training import train
from rnn_jax.training import workdir as workdirs
from tests.test_input_pipeline import SHARED_TFDS_DIR

OLD_RUN = Path(__file__).resolve().parent / "data" / "workdir_145ef02"


@pytest.fixture
def old_run(tmp_path, monkeypatch):
    """A copy of the old workdir (tests never write into the repo), IMDB from ../shared."""
    monkeypatch.setenv("TFDS_DATA_DIR", str(SHARED_TFDS_DIR))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    shutil.copytree(OLD_RUN, tmp_path / "run")
    return tmp_path / "run"


def test_an_old_run_predicts_what_it_predicted(old_run):
    expected = json.loads((old_run / "expected_predictions.json").read_text())
    run = inference.load_run(str(old_run))
    assert run.step == expected["step"] == 10  # The best on validation, not the latest (20).
    probabilities = inference.predict_texts(run, expected["texts"])
    np.testing.assert_allclose(probabilities, expected["probabilities"], rtol=1e-6)


def test_an_old_run_evaluates_to_its_own_test_metrics(old_run):
    summary = json.loads((old_run / "summary.json").read_text())
    metrics = ensemble.evaluate([str(old_run)], "test")
    assert metrics["count"] == summary["test_examples"] == 200
    assert metrics["accuracy"] == summary["test_accuracy"]
    np.testing.assert_allclose(metrics["loss"], summary["test_loss"], rtol=1e-6)


def test_an_old_run_resumes_where_it_stopped(old_run, caplog):
    history = json.loads((old_run / "history.json").read_text())
    config = ml_collections.ConfigDict(workdirs.read_config(str(old_run)))
    config.num_epochs = 3  # A constant schedule may train longer on resume.
    with caplog.at_level("INFO"):
        summary = train.train_and_evaluate(config, str(old_run))
    assert "Resumed from checkpoint step 20" in caplog.text
    resumed = json.loads((old_run / "history.json").read_text())
    assert resumed[:2] == history  # Epochs 1 and 2 were not trained again.
    assert [h["step"] for h in resumed] == [10, 20, 30]
    assert summary["epochs"] == 3
