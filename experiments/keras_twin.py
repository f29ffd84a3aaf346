"""End to end against Keras: a shootout config and its Keras twin, on the identical data.

    python -m experiments.keras_twin [--cell lstm] [--epochs N] [--quick] [--out DIR]
                                     [--workdirs DIR] [--data-dir DIR] [--cache-dir DIR]

Trains ``configs/<cell>.py`` with ``rnn_jax`` and the same model in Keras 3 on TensorFlow
(``Embedding(mask_zero=config.mask_padding)`` -> ``Dropout`` -> the Keras cell -> ``Dropout``
-> ``Dense(1)``, Keras's default initializers, which ``rnn_jax`` copies), on the same tokenized
arrays (same vocabulary, validation split, padding), with the same optimizer, learning-rate
schedule, gradient clipping, batch size and epochs, each the way its users run it
(``rnn_jax.main``'s ``train_and_evaluate``; Keras ``model.fit``).

Per epoch it records the training time (the epoch's steps only, no evaluation) and the test
accuracy of the model after that epoch. Those test numbers measure *time to accuracy*, the
seconds of training until the model first reaches the course's Keras test accuracy; nothing is
selected on them (``rnn_jax``'s own summary still reports the epoch best on validation).
``rnn_jax`` keeps every epoch's checkpoint (``keep_checkpoints = epochs``) and evaluates each on
test afterwards; Keras evaluates in a callback, outside its epoch timer.

Differences that remain: Keras's ``fit`` also runs the last partial batch of an epoch (313 steps
to rnn_jax's 312 fixed-shape ones at the defaults), and draws its own shuffles and dropout masks.
"""

import os
import statistics
import time
from collections.abc import Sequence

import ml_collections
import numpy as np

from experiments import common, shootout
from experiments.common import CELL_NAMES, Column

COLUMNS = (
    Column("framework", "framework"),
    Column("seconds_per_epoch", "s/epoch (median)", "{:.1f}"),
    Column("epoch_seconds", "each epoch s"),
    Column("examples_per_second", "train examples/s", "{:,.0f}"),
    Column("test_accuracy_per_epoch", "test accuracy after each epoch"),
    Column("best_test_accuracy", "highest test accuracy", "{:.4f}"),
    Column("epochs_to_target", "epochs to target"),
    Column("seconds_to_target", "train s to target", "{:.0f}"),
    Column("time_to_target_vs_keras", "time to target / Keras's", "{:.2f}"),
)


def rnn_jax_epochs(config: ml_collections.ConfigDict, data, args) -> list[dict]:
    """Trains ``config`` with rnn_jax; per epoch: train seconds, examples/s, test accuracy.

    ``data`` is ``train.load_data(config)``, read once for both frameworks.
    """
    from rnn_jax import parallel, train
    from rnn_jax.checkpointing import Checkpoints

    result = common.run("rnn_jax", config, args.workdirs / config.cell)
    model = train.create_model(config)
    template = train.checkpoint_template(config, model)
    checkpoints = Checkpoints(
        str(result.workdir / "checkpoints"), config.keep_checkpoints, read_only=True
    )
    p_eval_step = parallel.pmap_step(train.eval_step, donate_state=False)
    epochs = []
    for entry in result.history:
        state = checkpoints.restore(entry["step"], template)["state"]
        test = train.evaluate(
            p_eval_step,
            parallel.replicate(state),
            data.test,
            config.eval_batch_size,
            config.bucket_width,
            config.padding,
        )
        epochs.append(
            {
                "seconds": entry["epoch_seconds"],
                "examples_per_second": entry["examples_per_second"],
                "test_accuracy": test["accuracy"],
            }
        )
    checkpoints.close()
    return epochs


def keras_model(config: ml_collections.ConfigDict, steps_per_epoch: int):
    """The Keras twin of ``config``'s model and optimizer, compiled."""
    # The twin mirrors the shootout's model: no n-grams, dropout of single features.
    if config.ngram_buckets or config.embed_dropout_tokens:
        raise ValueError("the Keras twin has no ngram_buckets or embed_dropout_tokens")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    layers = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
    keras.utils.set_random_seed(config.seed)
    model = keras.Sequential(
        [
            keras.Input((config.max_len,), dtype="int32"),
            keras.layers.Embedding(
                config.vocab_size, config.embed_dim, mask_zero=config.mask_padding
            ),
            keras.layers.Dropout(config.embed_dropout_rate),
            layers[config.cell](config.hidden_size),
            keras.layers.Dropout(config.dropout_rate),
            keras.layers.Dense(1),
        ]
    )
    learning_rate = config.learning_rate
    if config.schedule == "warmup_cosine":
        warmup = int(config.warmup_epochs * steps_per_epoch)
        learning_rate = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else config.learning_rate,
            decay_steps=config.num_epochs * steps_per_epoch - warmup,
            warmup_target=config.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    optimizers = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}
    model.compile(
        optimizer=optimizers[config.optimizer](
            learning_rate, global_clipnorm=config.grad_clip_norm or None
        ),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(threshold=0.0)],
    )
    return model


def keras_epochs(config: ml_collections.ConfigDict, data) -> list[dict]:
    """Trains the Keras twin with ``fit``; per epoch: train seconds, examples/s, test accuracy."""
    import keras

    train_examples = len(data.train["label"])
    steps_per_epoch = -(-train_examples // config.batch_size)  # fit runs the partial batch.
    model = keras_model(config, steps_per_epoch)
    epochs = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.started
            _, accuracy = model.evaluate(
                data.test["token_ids"],
                data.test["label"],
                batch_size=config.eval_batch_size,
                verbose=0,
            )
            epochs.append(
                {
                    "seconds": seconds,
                    "examples_per_second": train_examples / seconds,
                    "test_accuracy": float(accuracy),
                }
            )
            print(f"[keras] epoch {epoch + 1}: {seconds:.1f} s, test {accuracy:.4f}", flush=True)

    model.fit(
        data.train["token_ids"],
        data.train["label"],
        batch_size=config.batch_size,
        epochs=config.num_epochs,
        shuffle=True,
        callbacks=[EpochTimer()],
        verbose=0,
    )
    return epochs


def time_to_target(epochs: list[dict], target: float) -> tuple[int | None, float | None]:
    """The first epoch (1-based) whose test accuracy reaches ``target``, and training s to it."""
    elapsed = 0.0
    for index, epoch in enumerate(epochs, start=1):
        elapsed += epoch["seconds"]
        if epoch["test_accuracy"] >= target:
            return index, elapsed
    return None, None


def summary_row(framework: str, epochs: list[dict], target: float) -> dict:
    """One table row from per-epoch records."""
    reached, seconds = time_to_target(epochs, target)
    # Epoch 1 includes compilation (rnn_jax) or tracing (Keras): the median leaves it out.
    return {
        "framework": framework,
        "seconds_per_epoch": statistics.median(e["seconds"] for e in epochs),
        "examples_per_second": statistics.median(e["examples_per_second"] for e in epochs),
        "epoch_seconds": " ".join(f"{e['seconds']:.1f}" for e in epochs),
        "test_accuracy_per_epoch": " ".join(f"{e['test_accuracy']:.4f}" for e in epochs),
        "best_test_accuracy": max(e["test_accuracy"] for e in epochs),
        "epochs_to_target": reached if reached is not None else f"not in {len(epochs)}",
        "seconds_to_target": seconds,
    }


def accuracy_vs_time_figure(runs: dict[str, list[dict]], target: float):
    """Test accuracy after each epoch against cumulative training seconds."""
    fig, (ax,) = common.new_figure()
    for name, epochs in runs.items():
        elapsed = np.cumsum([e["seconds"] for e in epochs])
        ax.plot(elapsed, [e["test_accuracy"] for e in epochs], "o-", label=name)
    ax.axhline(target, color="gray", linestyle="--", label=f"course's Keras test ({target:.4f})")
    ax.set_xlabel("cumulative training time (s)")
    ax.set_ylabel("test accuracy after the epoch")
    ax.set_title("Time to accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def main(argv: Sequence[str] | None = None) -> None:
    parser = common.make_parser("keras_twin", __doc__.splitlines()[0])
    parser.add_argument("--cell", choices=sorted(shootout.CONFIGS), default="lstm")
    args = common.parse(parser, argv)
    base = shootout.CONFIGS[args.cell].get_config()
    config = common.make_config(base, args)
    config.keep_checkpoints = config.num_epochs  # Every epoch's model, for its test accuracy.
    target = shootout.COURSE_TEST_ACCURACY[args.cell]
    report = common.Report(args, f"End to end: rnn_jax vs Keras, {CELL_NAMES[args.cell]}")

    from rnn_jax import train

    data = train.load_data(config)
    runs = {
        "rnn_jax": rnn_jax_epochs(config, data, args),
        "keras (tensorflow)": keras_epochs(config, data),
    }
    rows = [summary_row(name, epochs, target) for name, epochs in runs.items()]
    keras_seconds = rows[-1]["seconds_to_target"]
    for row in rows:
        both = row["seconds_to_target"] is not None and keras_seconds is not None
        row["time_to_target_vs_keras"] = row["seconds_to_target"] / keras_seconds if both else None
    report.text(
        f"configs/{args.cell}.py as the shootout runs it ({config.num_epochs} epochs, batch "
        f"{config.batch_size}, {config.optimizer} {config.learning_rate:g} {config.schedule}, "
        f"clip {config.grad_clip_norm}, dropout {config.embed_dropout_rate}/"
        f"{config.dropout_rate}), and its Keras twin on the same arrays. Target: the course's "
        f"Keras test accuracy, {target:.4f}. s/epoch and examples/s are medians over epochs "
        "(epoch 1 includes compilation). Test accuracy is measured after every epoch for this "
        "comparison only."
    )
    report.table("table", rows, COLUMNS, "Epoch time and time to accuracy")
    report.json("epochs", runs)
    report.figure(
        "accuracy_vs_time",
        accuracy_vs_time_figure(runs, target),
        "Test accuracy after each epoch against cumulative training time",
    )
    report.finish()


if __name__ == "__main__":
    main()
