"""The course's time-series example: an RNN reads 3 steps of 2 features, predicts the next value.

    python -m experiments.timeseries [--seed S] [--steps N] [--quick] [--out DIR]

The series is generated (no download): feature 0 is ``sin(t)``, feature 1 ``cos(t / 2)``, both
plus Gaussian noise, ``t = 0.1 * step``. The target is the next value of feature 0. The first 80%
of the series trains, the last 20% tests (a split in time, so the test windows come after every
training window). Each registered cell is trained full-batch with Adam on the MSE; a naive
forecast that repeats the last value is the baseline. Everything follows from ``--seed``.
"""

import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.lib import flags, reporting
from experiments.lib.reporting import Column

WINDOW = 3
HIDDEN = 8
DT = 0.1
NOISE = 0.1
LENGTH, QUICK_LENGTH = 2000, 400
STEPS, QUICK_STEPS = 3000, 200
LEARNING_RATE = 1e-2
TEST_FRACTION = 0.2
PLOT_POINTS = 150

COLUMNS = (
    Column("model", "model"),
    Column("test_mse", "test MSE", "{:.5f}"),
    Column("vs_naive", "test MSE / naive", "{:.2f}"),
    Column("train_mse", "train MSE", "{:.5f}"),
    Column("num_params", "parameters", "{:,}"),
    Column("seconds", "train s (incl. compile)", "{:.1f}"),
)


def make_series(length: int, seed: int) -> np.ndarray:
    """<float32>[length, 2]: noisy ``sin(t)`` and ``cos(t / 2)``."""
    t = DT * np.arange(length)
    clean = np.stack([np.sin(t), np.cos(0.5 * t)], axis=1)
    noise = np.random.default_rng(seed).normal(0.0, NOISE, clean.shape)
    return (clean + noise).astype(np.float32)


def make_windows(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inputs <[n, WINDOW, 2]> (consecutive steps) and targets <[n, 1]> (next feature 0)."""
    n = len(series) - WINDOW
    inputs = np.stack([series[i : i + WINDOW] for i in range(n)])
    return inputs, series[WINDOW:, :1]


def split_in_time(series: np.ndarray) -> tuple[tuple, tuple]:
    """Train and test windows, each from its own contiguous part of the series."""
    cut = int(len(series) * (1 - TEST_FRACTION))
    return make_windows(series[:cut]), make_windows(series[cut:])


def mse(predictions, targets) -> float:
    return float(np.mean((np.asarray(predictions) - np.asarray(targets)) ** 2))


def train_regressor(cell: str, inputs: np.ndarray, targets: np.ndarray, steps: int, seed: int):
    """Full-batch Adam on the MSE; the whole loop is one ``lax.scan`` (compiled once).

    Returns:
      ``(model, params, losses <[steps]>)``.
    """
    from rnn_jax.models import SequenceRegressor

    model = SequenceRegressor(cell=cell, hidden_size=HIDDEN)
    params = model.init(jax.random.key(seed), inputs[:1])["params"]
    optimizer = optax.adam(LEARNING_RATE)

    def loss_fn(params):
        return jnp.mean((model.apply({"params": params}, inputs) - targets) ** 2)

    def step(carry, _):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    @jax.jit
    def fit(params):
        return jax.lax.scan(step, (params, optimizer.init(params)), None, length=steps)

    (params, _), losses = fit(params)
    return model, params, np.asarray(losses)


def predictions_figure(truth: np.ndarray, predictions: dict[str, np.ndarray]):
    """Predictions against the truth on the first test points."""
    fig, (ax,) = reporting.new_figure(width=9, height=4.5)
    steps = np.arange(len(truth))
    ax.plot(steps, truth, "k.", ms=4, label="truth (noisy)")
    for name, values in predictions.items():
        ax.plot(steps, values, ls=":" if name.startswith("naive") else "-", label=name)
    ax.set_xlabel("test time step")
    ax.set_ylabel("feature 0 (sin + noise)")
    ax.set_title("Next-value predictions on the test window")
    ax.grid(alpha=0.3)
    ax.legend(ncol=2)
    return fig


def loss_figure(losses: dict[str, np.ndarray]):
    fig, (ax,) = reporting.new_figure()
    for name, values in losses.items():
        ax.plot(values, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("Adam step (full batch)")
    ax.set_ylabel("train MSE (log scale)")
    ax.set_title("Training")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return fig


def main(argv: Sequence[str] | None = None) -> None:
    parser = flags.make_parser("timeseries", __doc__.splitlines()[0], data=False, training=False)
    parser.add_argument("--seed", type=int, default=0, help="noise and initialization seed")
    parser.add_argument("--steps", type=int, help=f"Adam steps (default {STEPS}; quick 200)")
    args = flags.parse(parser, argv)
    from rnn_jax.cells import CELLS
    from rnn_jax.models import count_params

    steps = args.steps or (QUICK_STEPS if args.quick else STEPS)
    report = reporting.Report(args, "Time series: next value of a noisy sine")
    series = make_series(QUICK_LENGTH if args.quick else LENGTH, args.seed)
    (x_train, y_train), (x_test, y_test) = split_in_time(series)
    naive = x_test[:, -1, :1]  # Repeat the last observed value of feature 0.
    rows = [{"model": "naive (repeat last value)", "test_mse": mse(naive, y_test)}]
    predictions = {"naive": naive[:PLOT_POINTS, 0]}
    losses = {}
    for cell in CELLS:
        name = CELLS[cell].label
        started = time.perf_counter()
        model, params, losses[name] = train_regressor(cell, x_train, y_train, steps, args.seed)
        seconds = time.perf_counter() - started
        test_predictions = model.apply({"params": params}, x_test)
        rows.append(
            {
                "model": f"{name} ({HIDDEN} units)",
                "test_mse": mse(test_predictions, y_test),
                "train_mse": mse(model.apply({"params": params}, x_train), y_train),
                "num_params": count_params(params),
                "seconds": seconds,
            }
        )
        predictions[name] = np.asarray(test_predictions)[:PLOT_POINTS, 0]
    for row in rows:
        row["vs_naive"] = row["test_mse"] / rows[0]["test_mse"]
    report.text(
        f"{len(series)} steps (dt {DT}, noise σ {NOISE}), windows of {WINDOW} steps × 2 "
        f"features; {len(x_train)} train / {len(x_test)} test windows; {steps} full-batch Adam "
        f"steps at {LEARNING_RATE:g}, seed {args.seed}. The noise alone puts the best possible "
        f"test MSE near σ² = {NOISE**2:g}."
    )
    report.table("table", rows, COLUMNS, "Test MSE per cell vs the naive forecast")
    report.figure(
        "predictions",
        predictions_figure(y_test[:PLOT_POINTS, 0], predictions),
        f"Predictions vs truth, first {PLOT_POINTS} test steps",
    )
    report.figure("training", loss_figure(losses), "Training MSE per step")
    report.finish()


if __name__ == "__main__":
    main()
