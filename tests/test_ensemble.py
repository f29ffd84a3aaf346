"""The ensemble's arithmetic: probabilities averaged per review, scored without overflow.

Running runs end to end is tested in test_experiments (experiments.best) and test_reliability
(the evaluate command line).
"""

from types import SimpleNamespace

import numpy as np
import optax
import pytest

from rnn_jax.inference import ensemble


def test_one_member_scores_as_training_does():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(0, 3, (1, 200)).astype(np.float32), rng.integers(0, 2, 200)
    scores = ensemble.metrics(logits, labels)
    expected_loss = np.mean(optax.sigmoid_binary_cross_entropy(logits[0], labels))
    assert scores["loss"] == pytest.approx(float(expected_loss), rel=1e-5)
    assert scores["accuracy"] == np.mean((logits[0] > 0) == (labels == 1))
    assert scores["count"] == 200


def test_members_probabilities_are_averaged():
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(0, 3, (3, 500)), rng.integers(0, 2, 500)
    mean = np.mean(1 / (1 + np.exp(-logits)), axis=0)
    scores = ensemble.metrics(logits, labels)
    assert scores["accuracy"] == np.mean((mean > 0.5) == (labels == 1))
    expected_loss = -np.mean(np.where(labels == 1, np.log(mean), np.log(1 - mean)))
    assert scores["loss"] == pytest.approx(expected_loss, rel=1e-9)
    # Averaging logits instead would call this positive review negative (mean logit -1/3).
    assert ensemble.metrics(np.array([[1.0], [1.0], [-3.0]]), np.array([1]))["accuracy"] == 1.0


def test_confidently_wrong_members_give_a_finite_loss():
    # float32 probabilities round to exactly 0 here, and their log to -inf.
    logits = np.array([[-120.0, 120.0], [-110.0, 130.0]], np.float32)
    scores = ensemble.metrics(logits, np.array([1, 0]))
    expected = -np.log(np.mean(np.exp([-120.0, -110.0]))) - np.log(np.mean(np.exp([-120, -130])))
    assert scores["loss"] == pytest.approx(expected / 2, rel=1e-9)
    assert scores["accuracy"] == 0.0


def test_members_are_matched_by_review_not_by_row(monkeypatch):
    # Two members whose splits hold the same four reviews in different row orders (as members
    # with other data settings could): each review's logits must be averaged with its own.
    positions = {"a": np.array([0, 1, 2, 3]), "b": np.array([2, 0, 3, 1])}
    labels = np.array([1, 0, 1, 0])  # By position in the tfds split.
    logits = {"a": np.array([2.0, -1.0, 0.5, -3.0]), "b": np.array([-4.0, 1.0, -2.0, 3.5])}

    def load_run(workdir):
        return SimpleNamespace(config=SimpleNamespace(name=workdir), step=7)

    def load_data(config):
        rows = positions[config.name]
        return SimpleNamespace(source_index={"test": rows}, split=lambda _: {"label": labels[rows]})

    def predict_split(run, data):
        return logits[run.config.name][positions[run.config.name]]  # In the member's row order.

    monkeypatch.setattr(ensemble.inference, "load_run", load_run)
    monkeypatch.setattr(ensemble.input_pipeline, "load_imdb_for", load_data)
    monkeypatch.setattr(ensemble.inference, "predict_split", predict_split)
    expected = ensemble.metrics(np.stack([logits["a"], logits["b"]]), labels)
    by_row = ensemble.metrics(np.stack([logits["a"], logits["b"][positions["b"]]]), labels)
    assert by_row["loss"] != pytest.approx(expected["loss"])  # The test can tell them apart.
    assert ensemble.evaluate(["a", "b"], "test") == expected | {"steps": [7, 7]}
    # Members holding other reviews are refused.
    positions["b"] = np.array([0, 1, 2, 4])
    with pytest.raises(ensemble.EvaluationError, match="holds other test reviews"):
        ensemble.evaluate(["a", "b"], "test")
