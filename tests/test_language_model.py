"""The language model: resets make every review independent of the stream it sits in, evaluation
scores every review once from its own beginning, a run resumes exactly (stream positions and
carries), and generation is deterministic with one-line errors."""

import argparse
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import lm_lstm
from rnn_jax.cells import CELLS
from rnn_jax.data import text
from rnn_jax.data.text import BOUNDARY, VOCAB_SIZE, Documents
from rnn_jax.inference import generation
from rnn_jax.inference.runs import RunNotFoundError
from rnn_jax.models import LanguageModel
from rnn_jax.training import language_modelling, lm_steps, parallel, train, train_steps
from tests.test_train import DATA_DIR, REPO, interrupt_at


def tiny_lm_config(**overrides):
    """configs/lm_lstm.py shrunk to seconds: 200 reviews a split, 8 streams of 32 steps."""
    config = lm_lstm.get_config()
    config.update(
        dict(
            max_examples=200,
            validation_fraction=0.1,
            embed_dim=8,
            hidden_size=16,
            batch_size=8,
            eval_batch_size=16,
            chunk_length=32,
            steps_per_epoch=12,
            num_epochs=2,
            progress_bar=False,
            data_dir=str(DATA_DIR),
            dropout_rate=0.1,
            embed_dropout_rate=0.1,
        )
    )
    config.update(overrides)
    return config


@functools.partial(jax.jit, static_argnums=0)
def review_log_likelihoods(model, params, tokens, carries):
    """<float32>[batch, time]: log p(tokens[:, t + 1] | what the model read up to t)."""
    logits, _ = model.apply({"params": params}, tokens[:, :-1], carries)
    return -optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:])


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_a_review_scores_the_same_alone_and_in_the_middle_of_a_stream(cell):
    """Without the reset at each review's boundary, what came before would change its score."""
    model = LanguageModel(VOCAB_SIZE, BOUNDARY, cell, embed_dim=8, hidden_size=12, num_layers=2)
    rng = np.random.default_rng(0)
    before, review, after = (rng.integers(0, 256, n) for n in (9, 14, 5))
    alone = np.concatenate([[BOUNDARY], review, [BOUNDARY]])[None]
    stream = np.concatenate([[BOUNDARY], before, alone[0], after])[None]
    params = jax.jit(model.init)(jax.random.key(1), jnp.asarray(alone))["params"]
    # Random carries as a previous chunk would leave them.
    carries = jax.tree.map(
        lambda c: jnp.asarray(rng.standard_normal(c.shape), c.dtype), model.initial_carries(1)
    )
    scored_alone = review_log_likelihoods(model, params, jnp.asarray(alone), None)
    in_stream = review_log_likelihoods(model, params, jnp.asarray(stream), carries)
    start = 1 + len(before)  # The review's boundary in the stream.
    np.testing.assert_allclose(
        in_stream[0, start : start + len(review) + 1], scored_alone[0], rtol=1e-5, atol=1e-5
    )


def test_a_training_step_hands_each_streams_carries_on_to_its_next_chunk():
    config = tiny_lm_config(dropout_rate=0.0, embed_dropout_rate=0.0)
    model = language_modelling.create_language_model(config)
    rng = np.random.default_rng(4)
    tokens = rng.integers(0, 256, (4, 17)).astype(np.int32)
    tokens[1, 5] = BOUNDARY  # A review starts inside the chunk.
    state = train_steps.create_train_state(config, model, 10, jnp.asarray(tokens[:1, :-1]))
    carries = jax.tree.map(
        lambda c: jnp.asarray(rng.standard_normal(c.shape), c.dtype), model.initial_carries(4)
    )
    _, sums, handed_on = jax.jit(lm_steps.train_step)(
        state, train_steps.zero_metrics(), carries, {"tokens": jnp.asarray(tokens)}
    )
    _, expected = model.apply({"params": state.params}, jnp.asarray(tokens[:, :-1]), carries)
    for got, want in zip(jax.tree.leaves(handed_on), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert float(sums["count"]) == 4 * 16  # Every position of the chunk is trained on.


def fake_text(monkeypatch, reviews: list[np.ndarray]) -> None:
    """The task reads ``reviews`` as every split (no tfds)."""
    documents = Documents.from_bytes(reviews)
    fake = text.ReviewText(train=documents, validation=documents, test=documents)
    monkeypatch.setattr(text, "load_review_text", lambda **kwargs: fake)


def test_evaluation_scores_every_review_once_from_its_own_beginning(monkeypatch):
    rng = np.random.default_rng(3)
    reviews = [rng.integers(0, 256, n).astype(np.uint8) for n in rng.integers(1, 40, 23)]
    fake_text(monkeypatch, reviews)
    config = tiny_lm_config(batch_size=2, eval_batch_size=4, chunk_length=8, hidden_size=8)
    task = language_modelling.LanguageModellingTask(config)
    state = task.create_state()
    data_parallel = parallel.create("pmap")
    _, eval_step = task.compile(data_parallel)
    metrics = task.evaluate(eval_step, data_parallel, data_parallel.replicate(state), "test")
    total = sum(len(r) + 1 for r in reviews)
    assert metrics["count"] == total
    # Each review alone in a row of its own: the boundary, its bytes, its end (then filler the
    # model reads after the review's last prediction, which cannot change it).
    width = 2 + max(len(r) for r in reviews)
    rows = np.full((len(reviews), width), BOUNDARY, np.int32)
    for row, review in zip(rows, reviews, strict=True):
        row[1 : 1 + len(review)] = review
    scores = review_log_likelihoods(task.model, state.params, jnp.asarray(rows), None)
    nll = -sum(float(scores[i, : len(r) + 1].sum()) for i, r in enumerate(reviews))
    assert metrics["loss"] == pytest.approx(nll / total, rel=1e-5)
    assert metrics["bpc"] == pytest.approx(nll / total / np.log(2), rel=1e-5)


# ------------------------------------------------------------------------------ whole runs


def readme_commands() -> list[list[str]]:
    """The README's language-model commands, each as its argv (``./launch.sh`` left out)."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    (block,) = [b for b in blocks if "rnn_jax.generate" in b]
    lines = [line.split("#")[0].removeprefix("./launch.sh").strip() for line in block.splitlines()]
    return [shlex.split(line) for line in lines if line]


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """One tiny run trained for two epochs on the real text (shared)."""
    base = tmp_path_factory.mktemp("lm")
    config = tiny_lm_config(cache_dir=str(base / "cache"))
    summary = train.train_and_evaluate(config, str(base / "full"))
    return base, config, summary


@pytest.mark.slow  # Whole runs.
@pytest.mark.xdist_group("language_model_run")  # One worker trains the shared run.
def test_a_language_model_run_resumes_exactly_from_mid_epoch(lm_run, monkeypatch):
    """SIGTERM in the middle of epoch 2: the rerun restores the step, the stream positions and
    the carries, and ends exactly like the uninterrupted run."""
    base, config, full = lm_run
    assert full["epochs"] == 2 and 0 < full["test_bpc"] < 8  # Below uniform (log2 257).
    read = text.load_review_text(
        validation_fraction=0.1, cache_dir=config.cache_dir, max_examples=200
    )
    assert full["test_characters"] == read.test.predicted_tokens  # Every test review, once.
    with monkeypatch.context() as patch:
        interrupt_at(patch, 17)
        with pytest.raises(train.Interrupted, match="SIGTERM at step 17 "):
            train.train_and_evaluate(config, str(base / "split"))
    resumed = train.train_and_evaluate(config, str(base / "split"))
    histories = [json.loads((base / d / "history.json").read_text()) for d in ("full", "split")]
    keys = ("step", "train_bpc", "train_loss", "val_bpc", "val_loss", "val_accuracy")
    assert [{k: h[k] for k in keys} for h in histories[0]] == [
        {k: h[k] for k in keys} for h in histories[1]
    ]
    for key in ("test_bpc", "test_loss", "test_accuracy", "best_val_bpc", "best_epoch"):
        assert resumed[key] == full[key], key


@pytest.mark.slow
@pytest.mark.xdist_group("language_model_run")
def test_generation_is_deterministic_and_refuses_bad_input_in_one_line(lm_run, tmp_path):
    base, _, _ = lm_run
    run = generation.load_language_model(str(base / "full"))
    texts = [
        generation.sample(run, "This movie", length=60, temperature=0.8, seed=seed)
        for seed in (0, 0, 1)
    ]
    assert texts[0] == texts[1] and texts[0] != texts[2]
    for bad in ({"length": 0, "temperature": 1.0}, {"length": 5, "temperature": 0.0}):
        with pytest.raises(ValueError, match="is not allowed"):
            generation.sample(run, "x", seed=0, **bad)
    # The README's command line, on this run: the prompt and its continuation on stdout.
    (line,) = [c for c in readme_commands() if c[:3] == ["python", "-m", "rnn_jax.generate"]]
    argv = [f"--workdir={base / 'full'}" if a.startswith("--workdir=") else a for a in line[3:]]
    readme = argparse.ArgumentParser()
    readme.add_argument("prompt")
    readme.add_argument("--workdir")
    readme.add_argument("--length", type=int)
    readme.add_argument("--temperature", type=float)
    readme.add_argument("--seed", type=int)
    flags = readme.parse_args(argv)
    out = subprocess.run(
        [sys.executable, "-m", "rnn_jax.generate", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    expected = generation.sample(
        run, flags.prompt, length=flags.length, temperature=flags.temperature, seed=flags.seed
    )
    assert out.stdout == flags.prompt + expected + "\n"
    classifier = tmp_path / "classifier"
    classifier.mkdir()
    (classifier / "config.json").write_text(json.dumps({"task": "sentiment"}))
    with pytest.raises(RunNotFoundError, match="holds a sentiment run, not a language model"):
        generation.load_language_model(str(classifier))
    # A damaged checkpoint: one line, and nothing in the workdir moved or rewritten.
    damaged = tmp_path / "damaged"
    shutil.copytree(base / "full", damaged)
    for root, _, names in os.walk(damaged / "checkpoints"):
        for name in names:
            if "ocdbt" in root or name.endswith(".ocdbt"):
                (damaged / root / name).write_bytes(b"")
    listing = sorted(str(p.relative_to(damaged)) for p in damaged.rglob("*"))
    bad = subprocess.run(
        [sys.executable, "-m", "rnn_jax.generate", f"--workdir={damaged}", "x"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 1
    last = bad.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no checkpoint in ") and "could be restored" in last, last
    assert sorted(str(p.relative_to(damaged)) for p in damaged.rglob("*")) == listing
