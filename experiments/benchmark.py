"""Training and inference speed of rnn_jax's cells against Keras, PyTorch and Flax's nn.RNN.

    python -m experiments.benchmark [--repeats N] [--no-keras] [--no-torch] [--no-sweeps]
                                    [--cpu-devices N] [--quick] [--out DIR]

Every implementation trains the same model (embedding -> one recurrent layer reading each review's
last real state -> Dense(1) logit, Adam, binary cross-entropy) on the same batch of post-padded
reviews with random lengths in [T/2, T], each run the way its users run it:

* rnn_jax's ``SentimentClassifier`` at ``lax.scan`` unroll 1, 4 and 16 on one device (input
  projection ``"auto"``), at unroll 1 with the input projection ``"auto"`` does not pick, at
  unroll 1 computing in bfloat16 (``config.compute_dtype``), and at unroll 1 under ``pmap`` over
  all local devices when there are several (on CPU, one per core unless ``--cpu-devices`` says
  otherwise: ``config.cpu_devices``);
* the cells linear in h (minGRU, minLSTM, RG-LRU: ``rnn_jax.linear_cells``), each with its
  recurrence evaluated sequentially and in parallel (``time_parallel``); no peer has them, so
  their rows compare with rnn_jax's LSTM (``train speed / rnn_jax LSTM``), and the length sweep
  (``experiments/length_sweep.py``) times them against the LSTM, the GRU and their peers up to
  T = 4,000;
* Flax's ``nn.RNN`` with ``nn.SimpleCell`` / ``nn.OptimizedLSTMCell`` / ``nn.GRUCell`` and
  ``seq_lengths``;
* Keras 3 on TensorFlow, ``Embedding(mask_zero=True)``, timed through ``train_on_batch`` and
  ``predict_on_batch`` (what ``fit`` and ``predict`` call per batch);
* PyTorch (CPU, all cores), ``nn.Embedding`` -> ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` on
  ``pack_padded_sequence`` or on the padded batch (the output at each review's last real step
  gathered), ``nn.Linear``; an optional extra (``pip install -e ".[bench]"``), skipped with a
  line saying so when it is not installed.

The timed rounds visit every implementation in turn (one training step, then one inference
step), so load from other processes on a shared machine spreads over all of them instead of
hitting one: compare the ratios, not the absolute numbers. A peer that is missing is skipped; no
backend is hard-coded, so the same command runs on a GPU or TPU.

FLOPs per training example are counted, not guessed: the recurrent layer's matmuls are
``2 (E + H) G H`` multiply-adds per time step forward (input projection and recurrent matmul,
G gates), and a training step costs three times its forward matmuls (forward, and the two
backward matmuls of each), so ``6 (E + H) G H T`` per example. The fraction of peak divides the
achieved FLOP/s by a large float32 matmul's rate measured in the same run.
"""

import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from experiments import common, reporting
from experiments.reporting import Column, cell_label

SHAPE = {"batch": 64, "time": 200, "embed": 128, "hidden": 128, "vocab": 10_000}
QUICK_SHAPE = SHAPE | {"batch": 8, "time": 20}
UNROLLS, QUICK_UNROLLS = (1, 4, 16), (1,)
REPEATS, QUICK_REPEATS = 30, 5
WARMUP = 2
LEARNING_RATE = 1e-3
# The cells timed: those Flax, Keras and PyTorch all have (rnn_jax.cells.CELLS holds more).
PEER_CELLS = ("rnn", "lstm", "gru")
RNN_JAX = "rnn_jax"

# rnn_jax's LSTM at unroll 1, one shape field varied at a time (the others as in SHAPE).
SWEEPS = {
    "time": (50, 100, 200, 500, 1000),
    "batch": (16, 64, 256, 512),
    "hidden": (32, 64, 128, 256, 512),
}
QUICK_SWEEPS = {"time": (10,)}
# --quick: every cell once beside Flax's; the variants, Keras and the parallel scan on one cell
# of each kind (the same code for every cell, and each candidate costs seconds of compilation).
QUICK_VARIED_CELLS, QUICK_PARALLEL_CELLS = ("lstm",), ("mingru",)
SWEEP_CELL, SWEEP_REPEATS = "lstm", 5

COLUMNS = (
    Column("implementation", "implementation"),
    Column("cell", "cell"),
    Column("compile_seconds", "compile s", "{:.2f}"),
    Column("train_examples_per_second", "train ex/s (median)", "{:,.0f}"),
    Column("train_spread", "train ex/s (p25–p75)"),
    Column("infer_examples_per_second", "inference ex/s (median)", "{:,.0f}"),
    Column("vs_fastest_peer", "train speed / fastest peer", "{:.2f}"),
    Column("vs_lstm", "train speed / rnn_jax LSTM", "{:.2f}"),
    Column("peak_fraction", "share of matmul peak", "{:.0%}"),
    Column("temp_mb", "XLA temp MB", "{:.0f}"),
)
RATIO_COLUMNS = (
    Column("implementation", "implementation"),
    Column("gru_vs_lstm", "GRU step time / LSTM step time", "{:.2f}"),
)
SWEEP_COLUMNS = (
    Column("sweep", "varied"),
    Column("value", "value"),
    Column("compile_seconds", "compile s", "{:.2f}"),
    Column("step_ms", "train ms/step (median)", "{:.1f}"),
    Column("us_per_time_step", "µs per time step", "{:.0f}"),
    Column("train_examples_per_second", "train ex/s", "{:,.0f}"),
    Column("peak_fraction", "share of matmul peak", "{:.0%}"),
    Column("temp_mb", "XLA temp MB", "{:.0f}"),
)


@dataclasses.dataclass
class Candidate:
    """One implementation of one cell, compiled and ready to run training and inference steps.

    Attributes:
      framework: ``rnn_jax``, ``flax nn.RNN``, ``keras`` or ``pytorch``.
      variant: what distinguishes it within its framework (e.g. ``unroll=4``).
      cell: its name in ``rnn_jax.cells.CELLS``, one of ``PEER_CELLS``.
      compile_seconds: JAX: trace + lower + compile of the train step; Keras: its first
        ``train_on_batch``; PyTorch (eager): its first step.
      train: runs one training step and waits for its result.
      infer: runs one forward pass (logits) and waits for its result.
      temp_bytes: XLA's temporary buffers of the compiled train step (JAX only), else None.
    """

    framework: str
    variant: str
    cell: str
    compile_seconds: float
    train: Callable[[], None]
    infer: Callable[[], None]
    temp_bytes: int | None = None
    train_times: list[float] = dataclasses.field(default_factory=list)
    infer_times: list[float] = dataclasses.field(default_factory=list)

    @property
    def implementation(self) -> str:
        return f"{self.framework} {self.variant}".strip()


def make_batch(shape: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Post-padded random reviews (Flax's ``seq_lengths`` and cuDNN need the padding at the end)."""
    rng = np.random.default_rng(seed)
    batch, time_steps = shape["batch"], shape["time"]
    lengths = rng.integers(time_steps // 2, time_steps + 1, batch).astype(np.int32)
    token_ids = rng.integers(4, shape["vocab"], (batch, time_steps)).astype(np.int32)
    token_ids[np.arange(time_steps)[None, :] >= lengths[:, None]] = 0
    labels = rng.integers(0, 2, batch).astype(np.float32)
    return {"token_ids": token_ids, "lengths": lengths, "labels": labels}


def train_flops_per_example(cell: str, shape: dict) -> float:
    """Matmul FLOPs of one training example: ``6 (E + H) G H T`` (see the module docstring).

    G is the cell's ``num_gates`` in ``rnn_jax.cells.CELLS``; a cell linear in h has no
    recurrent matmul: ``6 E G H T``.
    """
    from rnn_jax.cells.classic import (  # Imports JAX, as everything that runs a model.
        CELLS,
        is_linear,
    )

    gates = CELLS[cell].num_gates
    reads = shape["embed"] + (0 if is_linear(CELLS[cell]) else shape["hidden"])
    return 6 * reads * gates * shape["hidden"] * shape["time"]


def matmul_peak_flops(size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a large float32 JAX matmul on the default device (best of ``repeats``)."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((size, size), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    matmul(a, a).block_until_ready()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        matmul(a, a).block_until_ready()
        times.append(time.perf_counter() - started)
    return 2 * size**3 / min(times)


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


def jax_candidate(
    framework: str, variant: str, cell: str, model, inputs: tuple, labels, pmap: bool = False
):
    """Compiles ``value_and_grad`` + Adam, and the forward pass, of ``model``.

    With ``pmap``, as ``rnn_jax.train`` runs: the batch split over the local devices, the
    gradients averaged with ``lax.pmean``; otherwise one ``jit`` on the default device.
    """
    import jax
    import optax

    from rnn_jax.training import parallel

    params = model.init(jax.random.key(0), *inputs)["params"]
    optimizer = optax.adam(LEARNING_RATE)

    def train_step(state, inputs, labels, axis_name=None):
        params, opt_state = state

        def loss_fn(params):
            logits = model.apply({"params": params}, *inputs)
            return optax.sigmoid_binary_cross_entropy(logits, labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        if axis_name is not None:
            grads = jax.lax.pmean(grads, axis_name)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    def forward(state, inputs, axis_name=None):
        return model.apply({"params": state[0]}, *inputs)

    state = [(params, optimizer.init(params))]
    temp_bytes = None
    started = time.perf_counter()
    if pmap:
        devices = jax.local_device_count()
        state[0] = parallel.replicate(state[0])
        inputs, labels = jax.tree.map(
            lambda x: x.reshape(devices, -1, *x.shape[1:]), (inputs, labels)
        )
        step = parallel.pmap_step(train_step, donate_state=True)
        forward = parallel.pmap_step(forward, donate_state=False)
        state[0], loss = step(state[0], inputs, labels)  # Compiles (and takes one step).
        loss.block_until_ready()
    else:
        inputs, labels = jax.device_put((inputs, labels))
        step = jax.jit(train_step, donate_argnums=0).lower(state[0], inputs, labels).compile()
        memory = step.memory_analysis()
        temp_bytes = None if memory is None else memory.temp_size_in_bytes
        forward = jax.jit(forward)
    compile_seconds = time.perf_counter() - started

    def train():
        state[0], loss = step(state[0], inputs, labels)
        loss.block_until_ready()

    def infer():
        forward(state[0], inputs).block_until_ready()

    return Candidate(framework, variant, cell, compile_seconds, train, infer, temp_bytes)


def rnn_jax_candidate(
    cell: str,
    shape: dict,
    batch: dict,
    unroll: int = 1,
    pmap: bool = False,
    input_projection: str = "auto",
    compute_dtype: str = "float32",
    time_parallel: str = "auto",
    lstm_backend: str = "auto",
) -> Candidate:
    import jax

    from rnn_jax.models.classifier import COMPUTE_DTYPES, SentimentClassifier

    model = SentimentClassifier(
        vocab_size=shape["vocab"],
        embed_dim=shape["embed"],
        cell=cell,
        hidden_size=shape["hidden"],
        unroll=unroll,
        input_projection=input_projection,
        time_parallel=time_parallel,
        lstm_backend=lstm_backend,
        dtype=COMPUTE_DTYPES[compute_dtype],
    )
    variant = f"unroll={unroll}"
    if time_parallel != "auto":
        variant = time_parallel + ("" if unroll == 1 else f", unroll={unroll}")
    if input_projection != "auto":
        variant += f", input_projection={input_projection}"
    if lstm_backend != "auto":
        variant += f", lstm_backend={lstm_backend}"
    if compute_dtype != "float32":
        variant += f", {compute_dtype}"
    if pmap:
        variant += f", pmap over {jax.local_device_count()} {jax.default_backend()} devices"
    inputs = (batch["token_ids"],)
    return jax_candidate(RNN_JAX, variant, cell, model, inputs, batch["labels"], pmap)


def flax_candidate(cell: str, shape: dict, batch: dict) -> Candidate:
    inputs = (batch["token_ids"], batch["lengths"])
    return jax_candidate("flax nn.RNN", "", cell, flax_peer(cell, shape), inputs, batch["labels"])


# ----------------------------------------------------------------------------------------------
# Keras and PyTorch (imported only when asked for: seconds of start-up each).


def keras_candidate(cell: str, shape: dict, batch: dict) -> Candidate:
    """Keras 3 on TensorFlow, as ``model.fit`` / ``model.predict`` run each batch."""
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
    model.predict_on_batch(x)  # Traces the predict function outside the timing.
    variant = f"({keras.backend.backend()}, jit_compile={model.jit_compile})"
    return Candidate(
        "keras",
        variant,
        cell,
        compile_seconds,
        lambda: model.train_on_batch(x, y),
        lambda: model.predict_on_batch(x),
    )


def torch_candidate(cell: str, shape: dict, batch: dict, packed: bool) -> Candidate:
    """PyTorch (eager, CPU or CUDA), written the two ways its users write it.

    ``packed``: ``pack_padded_sequence``, the layer's final state is each review's last real
    step. Else the padded batch runs whole and the output at ``length - 1`` is gathered (the
    padding comes after it, so it cannot change that output).
    """
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    layers = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}

    class TorchClassifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(shape["vocab"], shape["embed"], padding_idx=0)
            self.rnn = layers[cell](shape["embed"], shape["hidden"], batch_first=True)
            self.head = torch.nn.Linear(shape["hidden"], 1)

        def forward(self, token_ids, lengths):
            x = self.embed(token_ids)
            if packed:
                x = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
                _, state = self.rnn(x)
                h = state[0] if cell == "lstm" else state  # An LSTM state is (h, c).
                return self.head(h[-1])[:, 0]
            outputs, _ = self.rnn(x)
            last = outputs[torch.arange(len(lengths)), lengths - 1]
            return self.head(last)[:, 0]

    model = TorchClassifier().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    token_ids = torch.from_numpy(batch["token_ids"]).long().to(device)
    lengths = torch.from_numpy(batch["lengths"]).long()  # pack_padded_sequence wants them on CPU.
    labels = torch.from_numpy(batch["labels"]).to(device)

    def train():
        optimizer.zero_grad()
        loss = loss_fn(model(token_ids, lengths), labels)
        loss.backward()
        optimizer.step()
        loss.item()  # Waits for the step (on CUDA too).

    def infer():
        with torch.no_grad():
            model(token_ids, lengths).sum().item()

    started = time.perf_counter()
    train()
    compile_seconds = time.perf_counter() - started
    variant = (
        f"{torch.__version__.split('+')[0]} ({device}, {torch.get_num_threads()} threads, "
        f"{'packed' if packed else 'padded'})"
    )
    return Candidate("pytorch", variant, cell, compile_seconds, train, infer)


def peers_available(args) -> dict[str, bool]:
    """Which optional peers run; a missing one is reported with a line, not an error."""
    available = {"keras": not args.no_keras, "pytorch": not args.no_torch}
    if available["pytorch"]:
        try:
            import torch  # noqa: F401
        except ImportError:
            print('PyTorch is not installed: skipped (pip install -e ".[bench]")', flush=True)
            available["pytorch"] = False
    return available


# ----------------------------------------------------------------------------------------------
# Timing and reporting.


def time_rounds(candidates: list[Candidate], repeats: int) -> None:
    """Warm-up steps, then ``repeats`` rounds that time a step of every candidate in turn."""
    for candidate in candidates:
        for _ in range(WARMUP):
            candidate.train()
            candidate.infer()
    for _ in range(repeats):
        for c in candidates:
            for run, times in [(c.train, c.train_times), (c.infer, c.infer_times)]:
                started = time.perf_counter()
                run()
                times.append(time.perf_counter() - started)


def result_rows(candidates: list[Candidate], shape: dict, peak: float) -> list[dict]:
    """One row per candidate; its training speed relative to the fastest peer of its cell."""
    batch = shape["batch"]
    rows = []
    for c in candidates:
        low, high = np.percentile(c.train_times, [75, 25])  # Slow time = low speed.
        train_speed = batch / statistics.median(c.train_times)
        rows.append(
            {
                "implementation": c.implementation,
                "framework": c.framework,
                "cell": cell_label(c.cell),
                "compile_seconds": c.compile_seconds,
                "step_ms": 1000 * statistics.median(c.train_times),
                "train_examples_per_second": train_speed,
                "train_spread": f"{batch / low:,.0f}–{batch / high:,.0f}",
                "infer_examples_per_second": batch / statistics.median(c.infer_times),
                "peak_fraction": train_speed * train_flops_per_example(c.cell, shape) / peak,
                "temp_mb": None if c.temp_bytes is None else c.temp_bytes / 2**20,
            }
        )
    for row in rows:
        peers = [
            r["train_examples_per_second"]
            for r in rows
            if r["cell"] == row["cell"] and r["framework"] != RNN_JAX
        ]
        row["vs_fastest_peer"] = row["train_examples_per_second"] / max(peers) if peers else None
    lstm = [r for r in rows if r["implementation"] == f"{RNN_JAX} unroll=1" and r["cell"] == "LSTM"]
    for row in rows:
        row["vs_lstm"] = row["train_examples_per_second"] / lstm[0]["train_examples_per_second"]
    return rows


def gru_lstm_rows(rows: list[dict]) -> list[dict]:
    """Per implementation: its GRU training step time over its LSTM's."""
    by_key = {(r["implementation"], r["cell"]): r["step_ms"] for r in rows}
    implementations = dict.fromkeys(r["implementation"] for r in rows)
    gru, lstm = cell_label("gru"), cell_label("lstm")
    return [
        {"implementation": i, "gru_vs_lstm": by_key[(i, gru)] / by_key[(i, lstm)]}
        for i in implementations
        if (i, gru) in by_key and (i, lstm) in by_key  # Not the cells linear in h.
    ]


def sweep_rows(sweeps: dict, shape: dict, peak: float) -> list[dict]:
    """rnn_jax's ``SWEEP_CELL`` with one shape field varied at a time, timed alone."""
    rows = []
    for field, values in sweeps.items():
        for value in values:
            sized = shape | {field: value}
            candidate = rnn_jax_candidate(SWEEP_CELL, sized, make_batch(sized))
            time_rounds([candidate], SWEEP_REPEATS)
            step = statistics.median(candidate.train_times)
            speed = sized["batch"] / step
            rows.append(
                {
                    "sweep": field,
                    "value": value,
                    "compile_seconds": candidate.compile_seconds,
                    "step_ms": 1000 * step,
                    "us_per_time_step": 1e6 * step / sized["time"],
                    "train_examples_per_second": speed,
                    "peak_fraction": speed * train_flops_per_example(SWEEP_CELL, sized) / peak,
                    "temp_mb": candidate.temp_bytes / 2**20 if candidate.temp_bytes else None,
                }
            )
            print(f"sweep {field}={value}: {1000 * step:.1f} ms/step", flush=True)
    return rows


def speed_figure(rows: list[dict]):
    """Grouped bars: training examples/s for each cell and implementation."""
    fig, (ax,) = reporting.new_figure(width=10, height=4.5)
    speed = {(r["implementation"], r["cell"]): r["train_examples_per_second"] for r in rows}
    implementations = list(dict.fromkeys(r["implementation"] for r in rows))
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    width = 0.8 / len(implementations)
    for index, implementation in enumerate(implementations):
        x = np.arange(len(cells)) + (index - (len(implementations) - 1) / 2) * width
        # NaN (no bar) where an implementation lacks the cell.
        heights = [speed.get((implementation, cell), np.nan) for cell in cells]
        ax.bar(x, heights, width, label=implementation)
    ax.set_xticks(np.arange(len(cells)), cells)
    ax.set_ylabel("training examples/s (median; higher is faster)")
    ax.set_title("Training speed (forward, backward, Adam)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize="small")
    return fig


def sweep_figure(rows: list[dict]):
    """One panel per sweep: training step time against the varied field (log-log)."""
    fields = list(dict.fromkeys(r["sweep"] for r in rows))
    fig, axes = reporting.new_figure(1, len(fields), width=4.2, height=3.6)
    for ax, field in zip(axes, fields, strict=True):
        points = [(r["value"], r["step_ms"]) for r in rows if r["sweep"] == field]
        ax.loglog(*zip(*points, strict=True), "o-")
        ax.set_xlabel(field)
        ax.set_ylabel("train step (ms, median)")
        ax.set_title(f"rnn_jax {cell_label(SWEEP_CELL)}: step time vs {field}")
        ax.grid(alpha=0.3, which="both")
    return fig


def main(argv: Sequence[str] | None = None) -> None:
    parser = common.make_parser("benchmark", __doc__.splitlines()[0], data=False, training=False)
    parser.add_argument(
        "--repeats", type=int, help=f"timed rounds per candidate (default {REPEATS})"
    )
    parser.add_argument("--no-keras", action="store_true", help="skip Keras (saves its start-up)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--no-sweeps", action="store_true", help="skip the shape sweeps")
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=0,
        help="CPU devices for the pmap row (default 0: one per core; 1: no pmap row)",
    )
    args = common.parse(parser, argv)  # Also makes the --cpu-devices CPU devices.
    import jax

    from experiments import length_sweep
    from rnn_jax.cells.classic import LINEAR_CELLS
    from rnn_jax.layers.recurrence import projects_before_scan

    shape = QUICK_SHAPE if args.quick else SHAPE
    repeats = args.repeats or (QUICK_REPEATS if args.quick else REPEATS)
    report = reporting.Report(args, "Benchmark: training and inference speed against peers")
    peers = peers_available(args)
    peak = matmul_peak_flops()
    print(f"float32 matmul peak (2048^3, JAX): {peak / 1e9:.0f} GFLOP/s", flush=True)
    batch = make_batch(shape)
    candidates = []
    for cell in PEER_CELLS:
        print(f"compiling {cell} ...", flush=True)
        varied = not args.quick or cell in QUICK_VARIED_CELLS
        for unroll in QUICK_UNROLLS if args.quick else UNROLLS:
            candidates.append(rnn_jax_candidate(cell, shape, batch, unroll))
        if varied:  # The other place for x W than 'auto' picks on this backend; bfloat16.
            other = "in_step" if projects_before_scan("auto") else "before_scan"
            candidates.append(rnn_jax_candidate(cell, shape, batch, input_projection=other))
            candidates.append(rnn_jax_candidate(cell, shape, batch, compute_dtype="bfloat16"))
        if varied and jax.local_device_count() > 1:  # --cpu-devices on CPU; or accelerators.
            candidates.append(rnn_jax_candidate(cell, shape, batch, pmap=True))
        candidates.append(flax_candidate(cell, shape, batch))
        if varied and peers["keras"]:
            candidates.append(keras_candidate(cell, shape, batch))
        if varied and peers["pytorch"]:
            for packed in (True, False):
                candidates.append(torch_candidate(cell, shape, batch, packed))
    for cell in LINEAR_CELLS:  # No peer has them: compared with the LSTM (vs_lstm).
        both = not args.quick or cell in QUICK_PARALLEL_CELLS
        for mode in ("sequential", "parallel") if both else ("sequential",):
            candidates.append(rnn_jax_candidate(cell, shape, batch, time_parallel=mode))
    time_rounds(candidates, repeats)
    rows = result_rows(candidates, shape, peak)
    flops = ", ".join(
        f"{cell_label(c)} {train_flops_per_example(c, shape) / 1e6:.0f} M"
        for c in (*PEER_CELLS, *LINEAR_CELLS)
    )
    report.text(
        f"Batch {shape['batch']}, {shape['time']} steps (lengths uniform in "
        f"[{shape['time'] // 2}, {shape['time']}], post-padded and masked), embedding "
        f"{shape['embed']}, hidden {shape['hidden']}, vocabulary {shape['vocab']:,}; median of "
        f"{repeats} rounds after {WARMUP} warm-up steps, every implementation timed in turn in "
        f"each round. Matmul FLOPs per training example: {flops}. Measured float32 matmul peak "
        f"(2048³, JAX): {peak / 1e9:.0f} GFLOP/s (the bfloat16 rows' share is of this float32 "
        "peak too). Compile: JAX trace + lower + compile of the "
        "train step (pmap: its first step); Keras its first train_on_batch; PyTorch (eager) its "
        "first step. XLA temp MB: the compiled train step's temporary buffers (JAX only)."
    )
    report.table("table", rows, COLUMNS, "Training and inference speed")
    report.table("gru_vs_lstm", gru_lstm_rows(rows), RATIO_COLUMNS, "GRU vs LSTM step time")
    report.figure("speed", speed_figure(rows), "Training examples/s per cell and implementation")
    results = {"shape": shape, "matmul_peak_flops": peak, "rows": rows}
    if not args.no_sweeps:
        sweeps = sweep_rows(QUICK_SWEEPS if args.quick else SWEEPS, shape, peak)
        report.text(
            f"Sweeps: rnn_jax {cell_label(SWEEP_CELL)}, unroll 1, one field of the shape above "
            f"varied at a time, median of {SWEEP_REPEATS} steps each, timed alone."
        )
        report.table("sweeps", sweeps, SWEEP_COLUMNS, "Shape sweeps")
        report.figure("sweeps", sweep_figure(sweeps), "Training step time against each field")
        results["sweeps"] = sweeps
        results["length_sweep"] = length_sweep.report(report, shape, args.quick, peers["pytorch"])
    report.json("results", results)
    report.finish()


if __name__ == "__main__":
    main()
