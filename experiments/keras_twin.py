"""End to end against Keras: a shootout config and its Keras twin, on the identical data.

    python -m experiments.keras_twin [--cell lstm] [--seeds 0 1 2] [--epochs N] [--quick]
                                     [--out DIR] [--workdirs DIR] [--data-dir DIR]
                                     [--cache-dir DIR]

Trains ``configs/<cell>.py`` with ``rnn_jax`` and the same model in Keras 3 on TensorFlow
(``Embedding(mask_zero=config.mask_padding)`` -> ``Dropout`` -> the Keras cell -> ``Dropout``
-> ``Dense(1)``, Keras's default initializers, which ``rnn_jax`` copies), on the same tokenized
arrays (same vocabulary, validation split, padding), with the same optimizer, learning-rate
schedule, gradient clipping, batch size and epochs, each the way its users run it
(``rnn_jax.main``'s ``train_and_evaluate``; Keras ``model.fit``). ``rnn_jax`` trains twice: the
config as the shootout runs it (one CPU device), and the same config with its speed settings on
(``FAST``: one JAX device per core under ``pmap``, and length bucketing). Each ``rnn_jax`` run
trains in a process of its own, because JAX fixes its CPU device count when it starts.

Per epoch it records the training time (the epoch's steps only, no evaluation) and the test
accuracy of the model after that epoch. Those test numbers measure *time to accuracy*, the
seconds of training until the model first reaches the course's Keras test accuracy; nothing is
selected on them (``rnn_jax``'s own summary still reports the epoch best on validation).
``rnn_jax`` keeps every epoch's checkpoint (``keep_checkpoints = epochs``) and evaluates each on
test afterwards; Keras evaluates in a callback, outside its epoch timer.

Whether a run crosses the target in epoch 2 or epoch 4 is largely training noise (how one run's
test accuracy moves from epoch to epoch: ``experiments/results/keras_twin/seeds.md``), so every
framework trains once per seed (``--seeds``; the seed also draws the validation split, shared by
both frameworks), and the comparison is of medians over seeds.

Differences that remain: Keras's ``fit`` also runs the last partial batch of an epoch (313 steps
to rnn_jax's 312 fixed-shape ones at the defaults), and draws its own shuffles and dropout masks.
"""

import concurrent.futures
import math
import multiprocessing
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import ml_collections
import numpy as np

from experiments.lib import flags, reporting, shootout_runs, training_runs
from experiments.lib.reporting import Column, cell_label

KERAS = "keras (tensorflow)"
# The rnn_jax runs: name -> config fields changed from the shootout's config.
RNN_JAX = {
    "rnn_jax": {},
    "rnn_jax, fast": {"cpu_devices": 0, "bucket_width": 50},
}
FAST = RNN_JAX["rnn_jax, fast"]

SEED_COLUMNS = (
    Column("framework", "framework"),
    Column("seed", "seed"),
    Column("seconds_per_epoch", "s/epoch (median)", "{:.1f}"),
    Column("epoch_seconds", "each epoch s"),
    Column("test_accuracy_per_epoch", "test accuracy after each epoch"),
    Column("best_test_accuracy", "highest test accuracy", "{:.4f}"),
    Column("epochs_to_target", "epochs to target"),
    Column("seconds_to_target", "train s to target", "{:.0f}"),
)
COLUMNS = (
    Column("framework", "framework"),
    Column("devices", "JAX devices"),
    Column("seconds_per_epoch", "s/epoch (median)", "{:.1f}"),
    Column("examples_per_second", "train examples/s", "{:,.0f}"),
    Column("epoch_time_vs_keras", "epoch time / Keras's", "{:.2f}"),
    Column("best_test_accuracy", "highest test accuracy (median)", "{:.4f}"),
    Column("seeds_at_target", "seeds reaching target"),
    Column("seconds_to_target", "train s to target (median)", "{:.0f}"),
    Column("time_to_target_vs_keras", "time to target / Keras's", "{:.2f}"),
)


def train_in_own_process(name: str, config: ml_collections.ConfigDict, workdir: Path):
    """``training_runs.run`` in a fresh process, whose JAX makes ``config.cpu_devices`` devices.

    Returns:
      ``(result, devices)``: the finished run (``training_runs.RunResult``) and the JAX device
      count it trained on.
    """
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as process:
        job = process.submit(_train_worker, name, config.to_dict(), str(workdir))
        reused, devices = job.result()
    if reused:
        training_runs.REUSED_RUNS.append(name)
    return training_runs.read_run(name, config, workdir), devices


def _train_worker(name: str, config: dict, workdir: str) -> tuple[bool, int]:
    """Runs in the child process: makes the devices as ``rnn_jax.main`` does, then trains."""
    import jax

    from rnn_jax.training import parallel

    config = ml_collections.ConfigDict(config)
    parallel.use_cpu_devices(config.cpu_devices, (config.batch_size, config.eval_batch_size))
    training_runs.run(name, config, Path(workdir))
    return bool(training_runs.REUSED_RUNS), jax.device_count()


def rnn_jax_epochs(result, data) -> list[dict]:
    """Per epoch of a finished run (``training_runs.RunResult``): train seconds, test accuracy.

    ``data`` is ``input_pipeline.load_imdb_for(result.config)``, read once for every framework.
    """
    from rnn_jax import models
    from rnn_jax.training import parallel, train_steps
    from rnn_jax.training.checkpointing import Checkpoints

    config = result.config
    template = train_steps.checkpoint_template(config, models.create_model(config))
    checkpoints = Checkpoints(
        str(result.workdir / "checkpoints"), config.keep_checkpoints, read_only=True
    )
    data_parallel = parallel.create(config.parallelism)
    _, eval_step = train_steps.compile_steps(data_parallel)
    epochs = []
    for entry in result.history:
        state = checkpoints.restore(entry["step"], template)["state"]
        test = train_steps.evaluate(
            eval_step,
            data_parallel,
            data_parallel.replicate(state),
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
    keras.backend.clear_session()  # Nothing carried over from the previous seed's model.
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
            print(
                f"[keras seed {config.seed}] epoch {epoch + 1}: {seconds:.1f} s, "
                f"test {accuracy:.4f}",
                flush=True,
            )

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


def seed_row(framework: str, seed: int, epochs: list[dict], target: float) -> dict:
    """One row of the per-seed table from one run's per-epoch records."""
    reached, seconds = time_to_target(epochs, target)
    # Epoch 1 includes compilation (rnn_jax) or tracing (Keras): the median leaves it out.
    return {
        "framework": framework,
        "seed": seed,
        "seconds_per_epoch": statistics.median(e["seconds"] for e in epochs),
        "epoch_seconds": " ".join(f"{e['seconds']:.1f}" for e in epochs),
        "test_accuracy_per_epoch": " ".join(f"{e['test_accuracy']:.4f}" for e in epochs),
        "best_test_accuracy": max(e["test_accuracy"] for e in epochs),
        "epochs_to_target": reached if reached is not None else f"not in {len(epochs)}",
        "seconds_to_target": seconds,
    }


def framework_row(framework: str, seed_rows: list[dict], runs: dict[int, list[dict]]) -> dict:
    """One framework over all seeds: medians, and how many seeds reached the target.

    The median time to target counts a seed that never reached it as infinitely slow, so it is
    None (not reached) unless more than half the seeds got there.
    """
    to_target = [r["seconds_to_target"] for r in seed_rows]
    median_to_target = statistics.median(math.inf if s is None else s for s in to_target)
    epochs = [e for run in runs.values() for e in run]
    return {
        "framework": framework,
        "seconds_per_epoch": statistics.median(r["seconds_per_epoch"] for r in seed_rows),
        "examples_per_second": statistics.median(e["examples_per_second"] for e in epochs),
        "best_test_accuracy": statistics.median(r["best_test_accuracy"] for r in seed_rows),
        "seeds_at_target": f"{sum(s is not None for s in to_target)} of {len(to_target)}",
        "seconds_to_target": None if math.isinf(median_to_target) else median_to_target,
    }


def compare_to_keras(rows: list[dict]) -> None:
    """Adds each row's epoch time and time to target as a ratio to the Keras row's."""
    keras = next(r for r in rows if r["framework"] == KERAS)
    for row in rows:
        row["epoch_time_vs_keras"] = row["seconds_per_epoch"] / keras["seconds_per_epoch"]
        both = row["seconds_to_target"] is not None and keras["seconds_to_target"] is not None
        row["time_to_target_vs_keras"] = (
            row["seconds_to_target"] / keras["seconds_to_target"] if both else None
        )


def accuracy_vs_time_figure(runs: dict[str, dict[int, list[dict]]], target: float):
    """Test accuracy after each epoch against cumulative training seconds, a line per run."""
    fig, (ax,) = reporting.new_figure(width=7.0, height=4.5)
    for number, (framework, seeds) in enumerate(runs.items()):
        color = f"C{number}"
        for index, (seed, epochs) in enumerate(seeds.items()):
            elapsed = np.cumsum([e["seconds"] for e in epochs])
            accuracy = [e["test_accuracy"] for e in epochs]
            label = framework if index == 0 else None
            ax.plot(elapsed, accuracy, "o-", color=color, alpha=0.8, label=label)
            ax.annotate(f"s{seed}", (elapsed[-1], accuracy[-1]), fontsize=7, color=color)
    ax.axhline(target, color="gray", linestyle="--", label=f"course's Keras test ({target:.4f})")
    ax.set_xlabel("cumulative training time (s)")
    ax.set_ylabel("test accuracy after the epoch")
    ax.set_title("Time to accuracy (one line per seed)")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def main(argv: Sequence[str] | None = None) -> None:
    parser = flags.make_parser("keras_twin", __doc__.splitlines()[0])
    parser.add_argument("--cell", choices=shootout_runs.COURSE, default="lstm")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per framework per seed"
    )
    args = flags.parse(parser, argv)
    base = shootout_runs.CONFIGS[args.cell].get_config()
    target = shootout_runs.COURSE_TEST_ACCURACY[args.cell]
    report = reporting.Report(args, f"End to end: rnn_jax vs Keras, {cell_label(args.cell)}")

    from rnn_jax.data import input_pipeline

    runs: dict[str, dict[int, list[dict]]] = {name: {} for name in [*RNN_JAX, KERAS]}
    devices: dict[str, int] = {}
    for seed in args.seeds:
        config = training_runs.make_config(base, args, seed=seed)
        config.keep_checkpoints = config.num_epochs  # Every epoch's model, for its test accuracy.
        data = input_pipeline.load_imdb_for(config)  # What every framework reads at this seed.
        for name, fields in RNN_JAX.items():
            workdir = args.workdirs / args.cell / name.replace(", ", "_") / f"seed_{seed}"
            run_config = ml_collections.ConfigDict({**config.to_dict(), **fields})
            result, devices[name] = train_in_own_process(name, run_config, workdir)
            runs[name][seed] = rnn_jax_epochs(result, data)
        runs[KERAS][seed] = keras_epochs(config, data)
    seed_rows = {
        name: [seed_row(name, seed, epochs, target) for seed, epochs in seeds.items()]
        for name, seeds in runs.items()
    }
    rows = [framework_row(name, seed_rows[name], runs[name]) for name in runs]
    for row in rows:
        row["devices"] = devices.get(row["framework"])
    compare_to_keras(rows)
    report.text(
        f"configs/{args.cell}.py as the shootout runs it ({config.num_epochs} epochs, batch "
        f"{config.batch_size}, {config.optimizer} {config.learning_rate:g} {config.schedule}, "
        f"clip {config.grad_clip_norm}, dropout {config.embed_dropout_rate}/"
        f"{config.dropout_rate}), and its Keras twin on the same arrays; 'rnn_jax, fast' is the "
        f"same config with {', '.join(f'{k}={v}' for k, v in FAST.items())} (a JAX device per "
        f"core, and length bucketing). Seeds {', '.join(map(str, args.seeds))}, one run per "
        f"framework each. Target: the course's Keras test accuracy, {target:.4f}. Per run, s/epoch "
        "is the median over its epochs (epoch 1 includes compilation, which time to target "
        "counts); the summary takes medians over seeds. Test accuracy is measured after every "
        "epoch for this comparison only."
    )
    report.table("table", rows, COLUMNS, "Epoch time and time to accuracy, medians over seeds")
    report.table("seeds", [r for rs in seed_rows.values() for r in rs], SEED_COLUMNS, "Every run")
    report.json("epochs", runs)
    report.figure(
        "accuracy_vs_time",
        accuracy_vs_time_figure(runs, target),
        "Test accuracy after each epoch against cumulative training time",
    )
    report.finish()


if __name__ == "__main__":
    main()
