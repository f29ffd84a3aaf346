"""The IMDB sentiment classifier: embeddings, a recurrent stack, pooling, a logit.

The classifier returns a logit per review; the sigmoid lives in the loss
(``optax.sigmoid_binary_cross_entropy``), which is numerically safer than probabilities.
"""

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from rnn_jax.layers import RecurrenceOptions, RecurrentStack
from rnn_jax.models.cell_stack import make_cells

Array = jax.Array

POOLINGS = ("last", "mean", "max", "mean_max")
# config.compute_dtype -> SentimentClassifier.dtype (None: compute in the parameters' float32).
COMPUTE_DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}

# Knuth's multiplicative hash constant (2^32 / golden ratio): spreads consecutive pair ids over
# the buckets, so no two frequent n-grams collide just because their ids are close.
_HASH_MULTIPLIER = 2654435761


def keras_uniform(scale: float = 0.05):
    """Keras's default ``Embedding`` initializer, uniform in ``[-scale, scale)``."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


def ngram_ids(token_ids: Array, vocab_size: int, buckets: int, n: int) -> Array:
    """Hashes the n tokens ending at each step into one of ``buckets`` n-gram ids.

    Args:
      token_ids: <int32>[batch, time], ids in ``[0, vocab_size)``; steps before the first read
        as id 0 (padding).
      vocab_size: the word vocabulary size (an n-gram is numbered in base ``vocab_size``).
      buckets: number of n-gram ids.
      n: tokens per n-gram, >= 2.

    Returns:
      <int32>[batch, time] in ``[0, buckets)``; the same n words always get the same id. An
      n-gram reaching back before the first token reads the missing words as padding, whose id
      0 adds nothing to the number: at a review's first steps a trigram shares the row of the
      bigram it ends with, which is all it knows.
    """
    padded = jnp.pad(token_ids, ((0, 0), (n - 1, 0))).astype(jnp.uint32)
    time = token_ids.shape[1]
    # uint32 arithmetic wraps modulo 2^32, which is what a multiplicative hash wants.
    number = padded[:, :time]
    for offset in range(1, n):
        number = number * jnp.uint32(vocab_size) + padded[:, offset : offset + time]
    hashed = number * jnp.uint32(_HASH_MULTIPLIER)
    # The product's low bits depend only on the number's low bits, so the high bits are folded
    # in before taking the remainder.
    hashed = hashed ^ (hashed >> 16)
    return (hashed % jnp.uint32(buckets)).astype(jnp.int32)


def pool(outputs: Array, mask: Array, pooling: str) -> Array:
    """Pools per-step outputs over the real steps.

    Args:
      outputs: <float>[batch, time, features]; masked steps are ignored, whatever they hold.
      mask: <bool>[batch, time].
      pooling: ``"mean"`` or ``"max"`` over real steps, or ``"mean_max"``: both, concatenated.

    Returns:
      <float>[batch, features] (``2 * features`` for ``"mean_max"``); zeros for a sequence
      without real steps.
    """
    if pooling == "mean_max":
        return jnp.concatenate([pool(outputs, mask, "mean"), pool(outputs, mask, "max")], -1)
    if pooling == "mean":
        count = jnp.maximum(mask.sum(axis=1, keepdims=True), 1)
        return jnp.where(mask[..., None], outputs, 0.0).sum(axis=1) / count
    if pooling == "max":
        pooled = jnp.where(mask[..., None], outputs, -jnp.inf).max(axis=1)
        return jnp.where(mask.any(axis=1, keepdims=True), pooled, 0.0)
    raise ValueError(
        f"unknown pooling {pooling!r}; pool() takes mean, max or mean_max ('last' is no pooling "
        "of outputs: the model reads the recurrence's final state)"
    )


class SentimentClassifier(nn.Module):
    """Embedding -> recurrent stack -> pooling -> Dense(1) logit.

    Attributes:
      vocab_size: number of token ids (ids ``>= vocab_size`` are not allowed).
      embed_dim: embedding size.
      cell: registered cell name (``"rnn"``, ``"lstm"``, ``"gru"``, ...).
      hidden_size: hidden size H of every layer.
      num_layers: stacked recurrent layers.
      bidirectional: each layer reads both directions (pooled features ``2H``).
      pooling: ``"last"`` (output of the last real step; the backward direction's is its state
        after the first real token), ``"mean"`` or ``"max"`` over real steps, or ``"mean_max"``
        (both, concatenated).
      dropout_rate: dropout between recurrent layers and before the Dense head.
      residual: stacked layers after the first are pre-norm residual (``RecurrentStack``).
      embed_dropout_rate: dropout on the embedded tokens.
      embed_dropout_tokens: True drops whole tokens (every feature of a token's embedding at once,
        "word dropout"), False single features.
      ngram_buckets: > 0 adds to each token's embedding the embeddings of the 2- to
        ``ngram_order``-grams ending at it, hashed into one table of this many rows
        (``ngram_ids``, as fastText does): the cell then reads phrases such as "not good" as one
        input. 0: words only.
      ngram_order: the longest n-gram embedded when ``ngram_buckets > 0`` (2: bigrams).
      kernel_init, recurrent_init, activation: cell options, by name (see ``make_cells``).
      cell_kwargs: the cell's constructor arguments as a JSON object ('' for none).
      recurrence: how the recurrent layers are evaluated (``rnn_jax.layers.RecurrenceOptions``:
        unroll, input projection, time-parallel scan, fused kernels, remat).
      pad_id: the padding token (the data's ``PAD_ID``, 0); its steps are masked, so padding side
        and amount do not matter.
      param_dtype: parameter dtype.
      dtype: dtype the embeddings and cells compute in (e.g. bfloat16; parameters, pooling, the
        head and the loss stay in ``param_dtype``); None: ``param_dtype``.
    """

    vocab_size: int
    embed_dim: int
    cell: str
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    pooling: str = "last"
    dropout_rate: float = 0.0
    residual: bool = False
    embed_dropout_rate: float = 0.0
    embed_dropout_tokens: bool = False
    ngram_buckets: int = 0
    ngram_order: int = 2
    kernel_init: str = "glorot_uniform"
    recurrent_init: str = "orthogonal"
    activation: str = "tanh"
    cell_kwargs: str = ""
    recurrence: RecurrenceOptions = RecurrenceOptions()
    pad_id: int = 0
    param_dtype: Any = jnp.float32
    dtype: Any = None

    @nn.compact
    def __call__(self, token_ids: Array, *, train: bool = False) -> Array:
        """Classifies padded reviews.

        Args:
          token_ids: <int32>[batch, time]; ``pad_id`` marks padding (pre or post).
          train: enables dropout (needs a ``'dropout'`` rng).

        Returns:
          <float32>[batch] logits of the positive class.
        """
        mask = token_ids != self.pad_id
        # Both tables start like Keras's Embedding.
        embed = functools.partial(
            nn.Embed,
            features=self.embed_dim,
            embedding_init=keras_uniform(),
            param_dtype=self.param_dtype,
        )
        x = embed(self.vocab_size, name="embedding")(token_ids)
        if self.ngram_buckets:
            ngram_embed = embed(self.ngram_buckets, name="ngram_embedding")
            for n in range(2, self.ngram_order + 1):
                x = x + ngram_embed(ngram_ids(token_ids, self.vocab_size, self.ngram_buckets, n))
        # Looked up in param_dtype, then cast: Embed(dtype=bfloat16) would cast the whole table
        # every step and sum each row's gradient over its occurrences in bfloat16.
        x = x.astype(self.dtype or self.param_dtype)
        # A zero no-op unless a 'perturbations' collection is passed: then d(loss)/d(it) is
        # d(loss)/d(embedded input at every step), for the vanishing-gradient measurements.
        x = self.perturb("embedded", x)
        # broadcast_dims: one mask value shared along the features drops the token whole.
        x = nn.Dropout(
            self.embed_dropout_rate,
            broadcast_dims=(2,) if self.embed_dropout_tokens else (),
            deterministic=not train,
        )(x)
        cells = make_cells(
            self.cell,
            self.hidden_size,
            self.num_layers,
            kernel_init=self.kernel_init,
            recurrent_init=self.recurrent_init,
            activation=self.activation,
            param_dtype=self.param_dtype,
            dtype=self.dtype,
            cell_kwargs=self.cell_kwargs,
        )
        features = RecurrentStack(
            cells,
            self.bidirectional,
            self.dropout_rate,
            return_sequences=self.pooling != "last",
            residual=self.residual,
            options=self.recurrence,
            name="recurrent",
        )(x, mask, train=train)
        # Pooling sums up to max_len steps, and the loss wants full precision: both run in
        # param_dtype, whatever the cells computed in.
        features = features.astype(self.param_dtype)
        if self.pooling != "last":
            features = pool(features, mask, self.pooling)
        features = nn.Dropout(self.dropout_rate, deterministic=not train)(features)
        logits = nn.Dense(
            1,
            kernel_init=nn.initializers.glorot_uniform(),
            param_dtype=self.param_dtype,
            name="head",
        )(features)
        return logits[:, 0]


def create_model(config: ml_collections.ConfigDict, **overrides) -> SentimentClassifier:
    """The classifier a config describes (``overrides`` replace attributes, e.g. in tests).

    Every classifier attribute with a config field of the same name reads it; the others are
    derived here: ``recurrence`` from the config's evaluation fields, ``pad_id`` from
    ``mask_padding``, ``dtype`` from ``compute_dtype``.
    """
    attributes = {field.name for field in dataclasses.fields(SentimentClassifier)}
    fields = {name: config[name] for name in attributes & set(config.keys())}
    fields |= dict(
        recurrence=RecurrenceOptions.from_config(config),
        # No token id is -1, so nothing is masked then: padding is read like a word.
        pad_id=SentimentClassifier.pad_id if config.mask_padding else -1,
        dtype=COMPUTE_DTYPES[config.compute_dtype],
    )
    return SentimentClassifier(**(fields | overrides))
