"""What a model is, in words: parameter counts, a Keras-like summary, the recurrence's path."""

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.layers import resolve
from rnn_jax.models.cell_stack import make_cells
from rnn_jax.models.classifier import SentimentClassifier


def recurrence_path(model, has_reset: bool = False) -> str:
    """Which evaluation a model's recurrent layers run on this backend, in words (for the log).

    Args:
      model: a model with the classifier's ``cell``, ``hidden_size``, ``activation``,
        ``dtype`` and ``recurrence`` attributes (``SentimentClassifier``, ``LanguageModel``).
      has_reset: its layers reset their state inside sequences (a language model).
    """
    (cell,) = make_cells(
        model.cell,
        model.hidden_size,
        1,
        activation=model.activation,
        dtype=model.dtype,
        cell_kwargs=model.cell_kwargs,
    )
    plan = resolve(cell, model.recurrence, dtype=model.dtype, has_reset=has_reset)
    return plan.describe()


def count_params(params) -> int:
    """Total number of scalars in a parameter tree."""
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params))


def summary(model: SentimentClassifier, params, max_len: int) -> str:
    """A Keras-like ``model.summary()``: layer, output shape, parameters, totals.

    Args:
      model: the classifier.
      params: its parameters (``variables['params']``).
      max_len: time steps of the input.

    Returns:
      The table as text, batch shown as ``None`` like Keras.
    """
    token_ids = jnp.ones((1, max_len), jnp.int32)
    _, state = jax.eval_shape(
        lambda: model.apply(
            {"params": params}, token_ids, capture_intermediates=True, mutable=["intermediates"]
        )
    )
    intermediates = state["intermediates"]
    rows = [("input (token_ids)", (max_len,), 0)]
    rows.append(
        (
            "embedding (Embed)",
            intermediates["embedding"]["__call__"][0].shape[1:],
            count_params(params["embedding"]),
        )
    )
    if model.ngram_buckets:
        rows.append(
            (
                "ngram_embedding (Embed, "
                + ("bigrams)" if model.ngram_order == 2 else f"2..{model.ngram_order}-grams)"),
                rows[-1][1],
                count_params(params["ngram_embedding"]),
            )
        )
    recurrent = intermediates["recurrent"]
    layer_kind = f"{model.cell}{' x2 bidirectional' if model.bidirectional else ''}"
    for index in range(model.num_layers):
        name = f"layer_{index}"
        output = recurrent[name]["__call__"][0][1]
        rows.append(
            (f"{name} ({layer_kind})", output.shape[1:], count_params(params["recurrent"][name]))
        )
    if model.pooling != "last":
        width = rows[-1][1][-1] * (2 if model.pooling == "mean_max" else 1)
        rows.append((f"pooling ({model.pooling})", (width,), 0))
    rows.append(("head (Dense)", (1,), count_params(params["head"])))
    total = count_params(params)
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"{'Layer (type)':<{width}}{'Output Shape':<22}{'Param #':>12}", "=" * (width + 34)]
    for name, shape, n in rows:
        lines.append(f"{name:<{width}}{str((None, *shape)):<22}{n:>12,}")
    lines += [
        "=" * (width + 34),
        f"Total params: {total:,}",
        f"Trainable params: {total:,}",
        "Non-trainable params: 0",
    ]
    return "\n".join(lines)
