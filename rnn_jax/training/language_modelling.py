"""The byte-level language model as a training task (``config.task = "language_model"``).

The reviews' text as bytes (``rnn_jax.data.text``), B streams of whole reviews cut into chunks
of ``chunk_length`` tokens (``rnn_jax.data.streams``), the ``LanguageModel``, and stateful
truncated backpropagation through time: the streams' carries pass from one step to the next
(the task's ``stream``, saved in every checkpoint, so a run resumes exactly) and every review
restarts them. An epoch is ``steps_per_epoch`` steps (0: one pass over the training text); the
measures are bits per character (``bpc``), the loss in nats per character and the next-byte
accuracy, on every predicted token of a split (each review's bytes and its end).
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rnn_jax.data import batching, streams, text
from rnn_jax.layers import RecurrenceOptions
from rnn_jax.models import COMPUTE_DTYPES, LanguageModel, count_params, recurrence_path
from rnn_jax.training import configuration, lm_steps, parallel, train_steps
from rnn_jax.training import workdir as workdirs
from rnn_jax.training.tasks import Task


def create_language_model(config: ml_collections.ConfigDict) -> LanguageModel:
    """The language model a config describes (the cell options as the classifier reads them)."""
    return LanguageModel(
        vocab_size=text.VOCAB_SIZE,
        boundary_id=text.BOUNDARY,
        cell=config.cell,
        embed_dim=config.embed_dim,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        dropout_rate=config.dropout_rate,
        embed_dropout_rate=config.embed_dropout_rate,
        residual=config.residual,
        kernel_init=config.kernel_init,
        recurrent_init=config.recurrent_init,
        activation=config.activation,
        cell_kwargs=config.cell_kwargs,
        recurrence=RecurrenceOptions.from_config(config),
        dtype=COMPUTE_DTYPES[config.compute_dtype],
    )


def load_text(config: ml_collections.ConfigDict) -> text.ReviewText:
    """The reviews' text as the config asks for it.

    Raises:
      configuration.ConfigError: ``validation_fraction`` leaves no review for validation or
        for training (with ``max_examples``, it can).
    """
    try:
        return text.load_review_text(
            validation_fraction=config.validation_fraction,
            data_dir=config.data_dir or None,
            cache_dir=config.cache_dir or None,
            max_examples=config.max_examples or None,
        )
    except text.SplitSizeError as error:
        raise configuration.ConfigError(f"config.validation_fraction: {error}") from None


# Evaluation chunks summed on the device between host reads (LanguageModellingTask.evaluate).
FETCH_EVERY = 64


def _add(total: dict | None, sums: dict) -> dict:
    """Host sums in float64."""
    sums = {k: np.asarray(v, np.float64) for k, v in sums.items()}
    return sums if total is None else {k: total[k] + sums[k] for k in total}


class LanguageModellingTask(Task):
    """Next-byte prediction on the reviews' text; ``characters_per_second`` counts tokens."""

    unit = "characters"
    has_stream = True

    def __init__(self, config: ml_collections.ConfigDict):
        """Reads the text and builds the model.

        Raises:
          configuration.ConfigError: the training text does not fill one chunk of every stream
            (``batch_size`` streams of ``chunk_length``; with ``max_examples``, it may not).
        """
        self.config = config
        self.text = load_text(config)
        self.model = create_language_model(config)
        try:
            per_pass = streams.chunks_per_pass(
                self.text.train, config.batch_size, config.chunk_length
            )
        except streams.TextTooShortError as error:
            raise configuration.ConfigError(
                f"config.batch_size={config.batch_size} is not allowed: {error}"
            ) from None
        self.steps_per_epoch = config.steps_per_epoch or per_pass
        self.units_per_step = config.batch_size * config.chunk_length

    @property
    def has_validation(self) -> bool:
        return len(self.text.validation) > 0

    def create_state(self):
        tokens = jnp.zeros((1, self.config.chunk_length), jnp.int32)
        return train_steps.create_train_state(self.config, self.model, self.steps_per_epoch, tokens)

    def initial_stream(self):
        """Every stream's carries before its first review: <[batch_size, ...]> per layer."""
        return jax.device_get(self.model.initial_carries(self.config.batch_size))

    def compile(self, data_parallel):
        return lm_steps.compile_steps(data_parallel)

    def train_batches(self, epoch, start_batch):
        c = self.config
        first = epoch * self.steps_per_epoch
        return streams.train_chunks(
            self.text.train,
            c.batch_size,
            c.chunk_length,
            seed=c.seed,
            start=first + start_batch,
            stop=first + self.steps_per_epoch,
        )

    def evaluate(self, eval_step, data_parallel: parallel.DataParallel, state, split):
        """Every review of ``split`` scored once, each from its own beginning."""
        c = self.config
        documents = self.text.split(split)
        carries = jax.device_get(self.model.initial_carries(c.eval_batch_size))
        carries = data_parallel.shard(parallel.process_rows(carries))
        process = (jax.process_index(), jax.process_count())
        # Sums of FETCH_EVERY chunks on the device (float32 counts exact below 2^24), added on
        # the host in float64: the test text is about 2^25 tokens.
        total, partial = None, None
        chunks = streams.eval_chunks(documents, c.eval_batch_size, c.chunk_length)
        for number, chunk in enumerate(chunks, start=1):
            chunk = batching.shard_for_process(chunk, *process)
            chunk = data_parallel.shard(chunk)
            parallel.wait_if_cpu_devices(carries)  # The previous chunk (see there).
            sums, carries = eval_step(state, carries, chunk)
            partial = sums if partial is None else jax.tree.map(jnp.add, partial, sums)
            if number % FETCH_EVERY == 0:
                total, partial = _add(total, data_parallel.fetch(partial)), None
        if partial is not None:
            total = _add(total, data_parallel.fetch(partial))
        metrics = train_steps.normalize(total) | {"count": int(total["count"])}
        return metrics | {"bpc": lm_steps.bits_per_character(metrics)}

    def epoch_metrics(self, prefix, metrics):
        metrics = metrics or {}
        if "loss" in metrics and "bpc" not in metrics:  # The training sums.
            metrics = metrics | {"bpc": lm_steps.bits_per_character(metrics)}
        return {f"{prefix}_{k}": metrics.get(k) for k in ("bpc", "loss", "accuracy")}

    def validation_metrics(self, entry):
        return {"val_bpc": entry["val_bpc"]}

    def summary(self, history, test, num_params, best_step):
        c = self.config
        best = next((h for h in history if h["step"] == best_step), None)
        return {
            "task": c.task,
            "cell": c.cell,
            "test_bpc": test.get("bpc"),
            "test_loss": test["loss"],
            "test_accuracy": test["accuracy"],
            "test_characters": test["count"],
            "best_val_bpc": None if best is None else best["val_bpc"],
            "best_epoch": None if best is None else best["epoch"],
            "epochs": len(history),
            "characters_trained": len(history) * self.steps_per_epoch * self.units_per_step,
            **workdirs.speed(history, self.unit),
            "num_params": num_params,
            "devices": jax.device_count(),
            "backend": jax.default_backend(),
            "parallelism": c.parallelism,
        }

    def describe(self, params) -> str:
        c = self.config
        return (
            f"Language model: {c.num_layers} x {c.cell} of {c.hidden_size} over a byte "
            f"embedding of {c.embed_dim}, {count_params(params):,} parameters; "
            f"{c.batch_size} streams x {c.chunk_length} steps per chunk, "
            f"{self.steps_per_epoch} steps per epoch "
            f"({self.steps_per_epoch * self.units_per_step / 1e6:.2f} M characters)\n"
            f"{recurrence_path(self.model, has_reset=True)}"
        )
