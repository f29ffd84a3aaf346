"""The implementations a speed study times, each compiled into a ``timing.Candidate``.

Every implementation trains the same model (embedding -> one recurrent layer reading each
review's last real state -> Dense(1) logit, Adam, binary cross-entropy) on the same batch of
post-padded reviews, each the way its users run it: rnn_jax's ``SentimentClassifier``; Flax's
``nn.RNN`` with its own cells and ``seq_lengths``; Keras 3 on TensorFlow through
``train_on_batch`` / ``predict_on_batch``; PyTorch (eager, CPU or CUDA) on a packed or a padded
batch; and ``jax.experimental.rnn.lstm`` (cuDNN on a GPU, its CPU stand-in elsewhere). Keras and
PyTorch are imported only when asked for (seconds of start-up each); a missing optional peer is
skipped with a line (``peers_available``).
"""

import os
import time
from collections.abc import Callable

from experiments.lib.timing import Candidate

LEARNING_RATE = 1e-3
# The cells timed against peers: those Flax, Keras and PyTorch all have (CELLS holds more).
PEER_CELLS = ("rnn", "lstm", "gru")
RNN_JAX = "rnn_jax"
EXPERIMENTAL_RNN = "jax.experimental.rnn"


def jax_candidate(
    framework: str,
    variant: str,
    cell: str,
    model,
    inputs: tuple,
    labels,
    parallelism: str | None = None,
):
    """Compiles ``value_and_grad`` + Adam, and the forward pass, of ``model``.

    Args:
      framework: the candidate's framework (its table label).
      variant: what distinguishes it within the framework.
      cell: the cell's name.
      model: a Flax module taking ``*inputs``.
      inputs: the batch's arrays the model reads.
      labels: the batch's labels.
      parallelism: None: one ``jit`` on the default device. ``"pmap"`` or ``"shard_map"``: as
        ``rnn_jax.training.train`` runs (``rnn_jax.training.parallel``: the batch split over
        every device, the gradients averaged with ``lax.pmean``). ``"jit"``: plain ``jit`` with
        the state replicated and the batch split over a one-axis mesh, the all-reduce left to
        XLA's partitioner (measured, not offered by rnn_jax: see ``experiments.parallelism``).
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
            grads, loss = jax.lax.pmean((grads, loss), axis_name)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    def forward(state, inputs, axis_name=None):
        return model.apply({"params": state[0]}, *inputs)

    state = [(params, optimizer.init(params))]
    temp_bytes = None
    started = time.perf_counter()
    if parallelism in parallel.PARALLELISMS:
        data_parallel = parallel.create(parallelism)
        state[0] = data_parallel.replicate(state[0])
        placed = data_parallel.shard({str(i): x for i, x in enumerate((*inputs, labels))})
        *inputs, labels = (placed[str(i)] for i in range(len(inputs) + 1))
        inputs = tuple(inputs)
        replicated, sharded = parallel.REPLICATED, parallel.SHARDED
        step = data_parallel.compile(
            train_step, (replicated, sharded, sharded), (replicated, replicated), donate_state=True
        )
        forward = data_parallel.compile(forward, (replicated, sharded), sharded, donate_state=False)
        hlo = step.lower(state[0], inputs, labels).compile().as_text()
        state[0], loss = step(state[0], inputs, labels)  # Compiles (and takes one step).
        loss.block_until_ready()
    else:
        if parallelism == "jit":
            replicated, sharded = jit_shardings()
            state[0] = jax.device_put(state[0], replicated)
            inputs, labels = jax.device_put((inputs, labels), sharded)
        elif parallelism is None:
            inputs, labels = jax.device_put((inputs, labels))
        else:
            raise ValueError(f"parallelism={parallelism!r}: None, jit or {parallel.PARALLELISMS}")
        step = jax.jit(train_step, donate_argnums=0).lower(state[0], inputs, labels).compile()
        memory = step.memory_analysis()
        temp_bytes = None if memory is None else memory.temp_size_in_bytes
        hlo = step.as_text()
        forward = jax.jit(forward)
    compile_seconds = time.perf_counter() - started

    def train():
        state[0], loss = step(state[0], inputs, labels)
        loss.block_until_ready()

    def infer():
        forward(state[0], inputs).block_until_ready()

    return Candidate(framework, variant, cell, compile_seconds, train, infer, temp_bytes, hlo)


def jit_shardings():
    """Plain ``jit``'s placements: replicated, and rows split over a mesh of every device.

    The mesh's axis is ``Auto`` (the partitioner chooses every other sharding): in ``Explicit``
    mode a scan whose initial carry is replicated zeros and whose steps read batch-split inputs
    is refused ("carry input and carry output must have equal types").
    """
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    return NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))


def rnn_jax_candidate(
    cell: str,
    shape: dict,
    batch: dict,
    unroll: int = 1,
    parallelism: str | None = None,
    input_projection: str = "auto",
    compute_dtype: str = "float32",
    time_parallel: str = "auto",
    lstm_backend: str = "auto",
) -> Candidate:
    """rnn_jax's ``SentimentClassifier`` of ``cell`` at ``shape``, compiled.

    ``parallelism``: as ``jax_candidate`` takes it (None: one device).
    The candidate's variant names every option that differs from its default, and the unroll
    unless ``time_parallel`` is named (the labels of the committed tables).
    """
    import jax

    from rnn_jax.layers import RecurrenceOptions
    from rnn_jax.models import COMPUTE_DTYPES, SentimentClassifier

    options = RecurrenceOptions(unroll, input_projection, time_parallel, lstm_backend)
    model = SentimentClassifier(
        vocab_size=shape["vocab"],
        embed_dim=shape["embed"],
        cell=cell,
        hidden_size=shape["hidden"],
        recurrence=options,
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
    if parallelism is not None:
        devices = f"{jax.device_count()} {jax.default_backend()} devices"
        variant += f", {parallelism} over {devices}"
    inputs = (batch["token_ids"],)
    return jax_candidate(RNN_JAX, variant, cell, model, inputs, batch["labels"], parallelism)


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


def flax_candidate(cell: str, shape: dict, batch: dict) -> Candidate:
    inputs = (batch["token_ids"], batch["lengths"])
    return jax_candidate("flax nn.RNN", "", cell, flax_peer(cell, shape), inputs, batch["labels"])


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


def experimental_lstm_classifier(shape: dict, lstm: Callable):
    """The benchmark's classifier on ``jax.experimental.rnn``'s LSTM API.

    Embedding -> ``lstm`` (``rnn.lstm``'s signature) over the post-padded batch with
    ``seq_lengths`` -> ``h_n``, the state after each review's last real step -> Dense(1).
    """
    import flax.linen as nn
    import jax.numpy as jnp
    from jax.experimental import rnn

    embed, hidden = shape["embed"], shape["hidden"]

    class ExperimentalLstmClassifier(nn.Module):
        @nn.compact
        def __call__(self, token_ids, lengths):
            x = nn.Embed(shape["vocab"], embed)(token_ids)
            weights = self.param(
                "lstm", lambda key: rnn.init_lstm_weight(key, embed, hidden, 1, False)
            )
            zeros = jnp.zeros((1, token_ids.shape[0], hidden), x.dtype)  # <[layers, B, H]>
            _, h_n, _ = lstm(x, zeros, zeros, weights, lengths, embed, hidden, 1, 0.0, False)
            return nn.Dense(1)(h_n[0])[:, 0]

    return ExperimentalLstmClassifier()


def experimental_lstm_candidate(shape: dict, batch: dict, on_gpu: bool) -> Candidate:
    """``jax.experimental.rnn.lstm`` (cuDNN) on a GPU; elsewhere its CPU stand-in, so labelled."""
    from jax.experimental import rnn

    from rnn_jax.cells.cudnn_lstm import lstm_ref_with_flat_weights

    if on_gpu:
        lstm, variant = rnn.lstm, "lstm (cuDNN)"
    else:
        lstm, variant = lstm_ref_with_flat_weights, "lstm_ref (CPU stand-in for cuDNN)"
    model = experimental_lstm_classifier(shape, lstm)
    inputs = (batch["token_ids"], batch["lengths"])
    return jax_candidate(EXPERIMENTAL_RNN, variant, "lstm", model, inputs, batch["labels"])
