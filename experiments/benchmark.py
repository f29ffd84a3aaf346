"""Training-step speed of rnn_jax's cells against Flax's nn.RNN and Keras 3, in the same run.

    python -m experiments.benchmark [--repeats N] [--no-keras] [--quick] [--out DIR]

Every implementation trains the same model (embedding -> one recurrent layer reading the last
real state -> Dense(1) logit, Adam, binary cross-entropy) on the same batch of post-padded
reviews with random lengths in [T/2, T]: rnn_jax's ``SentimentClassifier`` at ``lax.scan`` unroll
1, 4 and 16; Flax's ``nn.RNN`` with ``nn.SimpleCell`` / ``nn.OptimizedLSTMCell`` /
``nn.GRUCell`` and ``seq_lengths``; Keras 3 on TensorFlow with ``Embedding(mask_zero=True)``,
timed through ``train_on_batch``. The timed rounds visit every implementation in turn, so load
from other processes on a shared machine spreads over all of them instead of hitting one;
compare the ratios, not the absolute milliseconds.
"""

import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from experiments import common
from experiments.common import CELL_NAMES, Column

SHAPE = {"batch": 64, "time": 200, "embed": 128, "hidden": 128, "vocab": 10_000}
QUICK_SHAPE = SHAPE | {"batch": 8, "time": 20}
UNROLLS = (1, 4, 16)
REPEATS, QUICK_REPEATS = 30, 5
WARMUP = 2
LEARNING_RATE = 1e-3
REFERENCE = ("rnn_jax", "unroll=1")

COLUMNS = (
    Column("implementation", "implementation"),
    Column("cell", "cell"),
    Column("compile_seconds", "compile s", "{:.2f}"),
    Column("step_ms", "ms/step (median)", "{:.2f}"),
    Column("vs_reference", "time / rnn_jax unroll=1", "{:.2f}"),
)
RATIO_COLUMNS = (
    Column("implementation", "implementation"),
    Column("gru_vs_lstm", "GRU step time / LSTM step time", "{:.2f}"),
)


@dataclasses.dataclass
class Candidate:
    """One implementation of one cell, compiled and ready to take training steps.

    Attributes:
      framework: ``rnn_jax``, ``flax nn.RNN`` or ``keras (tensorflow)``.
      variant: what distinguishes it within its framework (e.g. ``unroll=4``).
      cell: ``rnn``, ``lstm`` or ``gru``.
      compile_seconds: JAX: trace + lower + compile; Keras: its first ``train_on_batch``.
      step: runs one training step and waits for its result.
    """

    framework: str
    variant: str
    cell: str
    compile_seconds: float
    step: Callable[[], None]
    times: list[float] = dataclasses.field(default_factory=list)

    @property
    def implementation(self) -> str:
        return f"{self.framework} {self.variant}".strip()


def make_batch(shape: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Post-padded random reviews (Flax's ``seq_lengths`` needs the padding at the end)."""
    rng = np.random.default_rng(seed)
    batch, time_steps = shape["batch"], shape["time"]
    lengths = rng.integers(time_steps // 2, time_steps + 1, batch).astype(np.int32)
    token_ids = rng.integers(4, shape["vocab"], (batch, time_steps)).astype(np.int32)
    token_ids[np.arange(time_steps)[None, :] >= lengths[:, None]] = 0
    labels = rng.integers(0, 2, batch).astype(np.float32)
    return {"token_ids": token_ids, "lengths": lengths, "labels": labels}


# ----------------------------------------------------------------------------------------------
# JAX implementations.


def flax_peer(cell: str, shape: dict):
    """The same classifier written with Flax's own ``nn.RNN`` and cells."""
    import flax.linen as nn

    cells = {"rnn": nn.SimpleCell, "lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell}

    class FlaxClassifier(nn.Module):
        @nn.compact
        def __call__(self, token_ids, lengths):
            x = nn.Embed(shape["vocab"], shape["embed"])(token_ids)
            rnn = nn.RNN(cells[cell](features=shape["hidden"]), return_carry=True)
            carry, _ = rnn(x, seq_lengths=lengths)
            state = carry[1] if cell == "lstm" else carry  # An LSTM carry is (c, h).
            return nn.Dense(1)(state)[:, 0]

    return FlaxClassifier()


def jax_candidate(framework: str, variant: str, cell: str, model, inputs: tuple, labels):
    """Compiles ``jit(value_and_grad)`` + Adam for ``model.apply(params, *inputs)``."""
    import jax
    import optax

    inputs = tuple(jax.device_put(x) for x in inputs)
    labels = jax.device_put(labels)
    params = model.init(jax.random.key(0), *inputs)["params"]
    optimizer = optax.adam(LEARNING_RATE)

    def train_step(params, opt_state, inputs, labels):
        def loss_fn(params):
            logits = model.apply({"params": params}, *inputs)
            return optax.sigmoid_binary_cross_entropy(logits, labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    state = [params, optimizer.init(params)]
    started = time.perf_counter()
    compiled = jax.jit(train_step, donate_argnums=(0, 1)).lower(*state, inputs, labels).compile()
    compile_seconds = time.perf_counter() - started

    def step():
        state[0], state[1], loss = compiled(state[0], state[1], inputs, labels)
        loss.block_until_ready()

    return Candidate(framework, variant, cell, compile_seconds, step)


def jax_candidates(cell: str, shape: dict, batch: dict) -> list[Candidate]:
    from rnn_jax.models import SentimentClassifier

    candidates = []
    for unroll in UNROLLS:
        model = SentimentClassifier(
            vocab_size=shape["vocab"],
            embed_dim=shape["embed"],
            cell=cell,
            hidden_size=shape["hidden"],
            unroll=unroll,
        )
        candidates.append(
            jax_candidate(
                "rnn_jax", f"unroll={unroll}", cell, model, (batch["token_ids"],), batch["labels"]
            )
        )
    inputs = (batch["token_ids"], batch["lengths"])
    candidates.append(
        jax_candidate("flax nn.RNN", "", cell, flax_peer(cell, shape), inputs, batch["labels"])
    )
    return candidates


# ----------------------------------------------------------------------------------------------
# Keras.


def keras_candidate(cell: str, shape: dict, batch: dict) -> Candidate:
    """Keras 3 on TensorFlow (imported here: slow, and only when asked for)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    layers = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((shape["time"],), dtype="int32"),
            keras.layers.Embedding(shape["vocab"], shape["embed"], mask_zero=True),
            layers[cell](shape["hidden"]),
            keras.layers.Dense(1),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    x, y = batch["token_ids"], batch["labels"]
    started = time.perf_counter()
    model.train_on_batch(x, y)  # Traces and compiles the train function.
    compile_seconds = time.perf_counter() - started
    variant = f"({keras.backend.backend()}, jit_compile={model.jit_compile})"
    return Candidate("keras", variant, cell, compile_seconds, lambda: model.train_on_batch(x, y))


# ----------------------------------------------------------------------------------------------
# Timing and reporting.


def time_rounds(candidates: list[Candidate], repeats: int) -> None:
    """Warm-up steps, then ``repeats`` rounds that time one step of every candidate in turn."""
    for candidate in candidates:
        for _ in range(WARMUP):
            candidate.step()
    for _ in range(repeats):
        for candidate in candidates:
            started = time.perf_counter()
            candidate.step()
            candidate.times.append(time.perf_counter() - started)


def result_rows(candidates: list[Candidate]) -> list[dict]:
    """One row per candidate, with its step time relative to rnn_jax unroll=1 of its cell."""
    median_ms = {id(c): 1000 * statistics.median(c.times) for c in candidates}
    reference = {
        c.cell: median_ms[id(c)] for c in candidates if (c.framework, c.variant) == REFERENCE
    }
    return [
        {
            "implementation": c.implementation,
            "cell": CELL_NAMES[c.cell],
            "compile_seconds": c.compile_seconds,
            "step_ms": median_ms[id(c)],
            "vs_reference": median_ms[id(c)] / reference[c.cell],
        }
        for c in candidates
    ]


def gru_lstm_rows(rows: list[dict]) -> list[dict]:
    by_key = {(r["implementation"], r["cell"]): r["step_ms"] for r in rows}
    implementations = dict.fromkeys(r["implementation"] for r in rows)
    return [
        {"implementation": i, "gru_vs_lstm": by_key[(i, "GRU")] / by_key[(i, "LSTM")]}
        for i in implementations
    ]


def step_time_figure(rows: list[dict]):
    """Grouped bars: ms per training step for each cell and implementation."""
    fig, (ax,) = common.new_figure(width=9, height=4.5)
    step_ms = {(r["implementation"], r["cell"]): r["step_ms"] for r in rows}
    implementations = list(dict.fromkeys(r["implementation"] for r in rows))
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    width = 0.8 / len(implementations)
    for index, implementation in enumerate(implementations):
        x = np.arange(len(cells)) + (index - (len(implementations) - 1) / 2) * width
        values = [step_ms[(implementation, cell)] for cell in cells]
        ax.bar(x, values, width, label=implementation)
    ax.set_xticks(np.arange(len(cells)), cells)
    ax.set_ylabel("training step time (ms, median)")
    ax.set_title("One training step (forward, backward, Adam)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize="small")
    return fig


def main(argv: Sequence[str] | None = None) -> None:
    parser = common.make_parser("benchmark", __doc__.splitlines()[0], data=False, training=False)
    parser.add_argument(
        "--repeats", type=int, help=f"timed steps per candidate (default {REPEATS})"
    )
    parser.add_argument("--no-keras", action="store_true", help="skip Keras (saves its start-up)")
    args = common.parse(parser, argv)
    shape = QUICK_SHAPE if args.quick else SHAPE
    repeats = args.repeats or (QUICK_REPEATS if args.quick else REPEATS)
    report = common.Report(args, "Benchmark: training-step time against Flax and Keras")
    batch = make_batch(shape)
    candidates = []
    for cell in CELL_NAMES:
        print(f"compiling {cell} ...", flush=True)
        candidates += jax_candidates(cell, shape, batch)
        if not args.no_keras:
            candidates.append(keras_candidate(cell, shape, batch))
    time_rounds(candidates, repeats)
    rows = result_rows(candidates)
    report.text(
        f"Batch {shape['batch']}, {shape['time']} steps (lengths uniform in "
        f"[{shape['time'] // 2}, {shape['time']}], post-padded and masked), embedding "
        f"{shape['embed']}, hidden {shape['hidden']}, vocabulary {shape['vocab']:,}; median of "
        f"{repeats} steps after {WARMUP} warm-up steps, in interleaved rounds. JAX compile = "
        "trace + lower + compile of the jitted step; Keras compile = its first train_on_batch."
    )
    report.table("table", rows, COLUMNS, "Training-step time")
    ratios = gru_lstm_rows(rows)
    report.table("gru_vs_lstm", ratios, RATIO_COLUMNS, "GRU vs LSTM step time")
    report.figure(
        "step_time", step_time_figure(rows), "Training-step time per cell and implementation"
    )
    report.finish()


if __name__ == "__main__":
    main()
