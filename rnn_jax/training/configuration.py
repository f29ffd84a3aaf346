"""Checks a config before any heavy work, so a typo costs seconds, not a run.

Unknown keys are already refused by ``config_flags``'s ``lock_config``; this checks values.
"""

import jax
import jax.numpy as jnp
import ml_collections

from rnn_jax.cells import ACTIVATIONS, get_cell_class, get_initializer, parse_cell_kwargs
from rnn_jax.data.vocabulary import INDEX_FROM
from rnn_jax.layers import RecurrenceOptions, resolve
from rnn_jax.models import COMPUTE_DTYPES, POOLINGS, make_cells
from rnn_jax.training.parallel import PARALLELISMS
from rnn_jax.training.tasks import TASKS

OPTIMIZERS = ("adam", "keras_adam", "rmsprop", "sgd")
SCHEDULES = ("constant", "warmup_cosine")
PAD_MODES = ("pre", "post")


class ConfigError(ValueError):
    """A config field has a value that is not allowed; the message names field and value."""


def _require(ok: bool, field: str, value, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"config.{field}={value!r} is not allowed: {allowed}")


def validate(config: ml_collections.ConfigDict, device_count: int | None) -> None:
    """Raises ``ConfigError`` naming the first bad field, its value and what is allowed.

    Args:
      config: a config with every field of ``configs/default.py``.
      device_count: devices the global batch is split over (``jax.device_count()``); None
        skips that check (before the devices exist).
    """
    _check_names(config)
    _check_numbers(config)
    _check_combinations(config)
    _check_recurrence(config, "gpu" if device_count is None else jax.default_backend())
    for field in ["kernel_init", "recurrent_init"]:
        try:
            get_initializer(config[field])
        except ValueError as error:
            raise ConfigError(f"config.{field}={config[field]!r} is not allowed: {error}") from None
    for field in ["batch_size", "eval_batch_size"] if device_count is not None else []:
        _require(
            config[field] % device_count == 0,
            field,
            config[field],
            f"a multiple of the device count ({device_count})",
        )


def _check_names(c: ml_collections.ConfigDict) -> None:
    """Fields that name one of a fixed set of choices."""
    for field, names in [
        ("optimizer", OPTIMIZERS),
        ("schedule", SCHEDULES),
        ("padding", PAD_MODES),
        ("truncating", PAD_MODES),
        ("pooling", POOLINGS),
        ("activation", ["", *sorted(ACTIVATIONS)]),  # '': the cell's own default.
        ("compute_dtype", list(COMPUTE_DTYPES)),
        ("parallelism", PARALLELISMS),
        ("task", TASKS),
    ]:
        _require(c[field] in names, field, c[field], "one of " + ", ".join(names))
    try:
        get_cell_class(c.cell)
    except ValueError as error:  # Every failure of a cell's module is one (registry).
        raise ConfigError(f"config.cell={c.cell!r} is not allowed: {error}") from None
    try:
        parse_cell_kwargs(c.cell_kwargs)
    except ValueError as error:
        raise ConfigError(f"config.cell_kwargs={c.cell_kwargs!r} is not allowed: {error}") from None


def _check_numbers(c: ml_collections.ConfigDict) -> None:
    """Sizes, rates and counts, each on its own."""
    for field in [
        "embed_dim",
        "hidden_size",
        "num_layers",
        "max_len",
        "num_epochs",
        "batch_size",
        "eval_batch_size",
        "keep_checkpoints",
        "log_every_steps",
        "chunk_length",
    ]:
        _require(c[field] > 0, field, c[field], "a positive integer")
    reserved = INDEX_FROM + 1  # Ids 0..3: padding, start, out-of-vocabulary, unused.
    _require(
        c.vocab_size > reserved,
        "vocab_size",
        c.vocab_size,
        f"more than the {reserved} reserved ids (0 pad, 1 start, 2 oov, 3 unused)",
    )
    for field in ["dropout_rate", "embed_dropout_rate"]:
        _require(0.0 <= c[field] < 1.0, field, c[field], "a rate in [0, 1)")
    _require(
        0.0 <= c.validation_fraction < 1.0,
        "validation_fraction",
        c.validation_fraction,
        "a fraction in [0, 1) (0: no validation, train on all training reviews)",
    )
    _require(c.learning_rate > 0, "learning_rate", c.learning_rate, "a positive number")
    for field in [
        "seed",
        "momentum",
        "grad_clip_norm",
        "warmup_epochs",
        "max_examples",
        "cpu_devices",
        "bucket_width",
        "ngram_buckets",
        "steps_per_epoch",
    ]:
        _require(c[field] >= 0, field, c[field], "zero or more")
    _require(c.ngram_order >= 2, "ngram_order", c.ngram_order, "2 or more (2: bigrams)")
    # n-gram ids are hashed in uint32 and stored as int32.
    _require(c.ngram_buckets < 2**31, "ngram_buckets", c.ngram_buckets, "less than 2^31")


def _check_combinations(c: ml_collections.ConfigDict) -> None:
    """Values that are allowed alone but not together."""
    _require(
        c.validation_fraction > 0 or c.evaluate_test,
        "validation_fraction",
        c.validation_fraction,
        "more than 0 when evaluate_test is False (the run would evaluate nothing)",
    )
    _require(
        c.bucket_width == 0 or c.mask_padding,
        "bucket_width",
        c.bucket_width,
        "0 when mask_padding is False (cutting padding would change what the model reads)",
    )
    _require(
        c.warmup_epochs <= c.num_epochs,
        "warmup_epochs",
        c.warmup_epochs,
        f"at most num_epochs={c.num_epochs}",
    )
    if c.task == "language_model":  # It reads a stream left to right, one chunk at a time.
        _require(
            not c.bidirectional,
            "bidirectional",
            c.bidirectional,
            "False for a language model (it predicts each byte from the ones before it)",
        )


def _check_recurrence(c: ml_collections.ConfigDict, backend: str) -> None:
    """The evaluation options, alone and with the cell, as a layer will resolve them.

    Args:
      c: the config.
      backend: the JAX backend the run will use; ``"gpu"`` before the devices exist, so that
        ``lstm_backend='cudnn'`` passes only for a layer that can take the fused path there.
    """
    try:
        options = RecurrenceOptions.from_config(c)
    except ValueError as error:
        raise ConfigError(f"config.{error}") from None
    try:  # The cell builds and steps (a researcher's cell may not; shapes only, no compute).
        (cell,) = make_cells(
            c.cell, c.hidden_size, 1, activation=c.activation, cell_kwargs=c.cell_kwargs
        )
        x = jax.ShapeDtypeStruct((1, 3), jnp.float32)
        jax.eval_shape(lambda x: cell.init_with_output(jax.random.key(0), _carry(cell, x), x), x)
    except Exception as error:
        first = (str(error).strip().splitlines() or [""])[0]
        raised = f"{type(error).__name__}: {first}"
        if c.cell_kwargs:  # The arguments are the likelier culprit; the message says both.
            raise ConfigError(
                f"config.cell_kwargs={c.cell_kwargs!r} is not allowed: building {c.cell} with "
                f"them and one step raised {raised}"
            ) from None
        raise ConfigError(
            f"config.cell={c.cell!r} is not allowed: building it and one step raised {raised}"
        ) from None
    try:  # A language model's layers reset at every review, which a fused kernel cannot.
        resets = c.task == "language_model"
        dtype = COMPUTE_DTYPES[c.compute_dtype]
        resolve(cell, options, dtype=dtype, backend=backend, has_reset=resets)
    except ValueError as error:
        raise ConfigError(f"config.{error}") from None


def _carry(cell, x):
    return cell.initialize_carry(jax.random.key(0), x.shape)
