"""The sentiment classifier: shapes, padding invariance, gradients, parameter counts, summary."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnn_jax import models
from rnn_jax.cells import CELLS
from rnn_jax.cells.base import ACTIVATIONS, INITIALIZERS
from rnn_jax.layers import RecurrenceOptions
from rnn_jax.models import SentimentClassifier, SequenceRegressor
from tests.cell_specs import SPECS, reference_outputs

NAMES = sorted(CELLS)
SPEC_NAMES = [name for name in NAMES if name in SPECS]  # A cell without one: tests/cell_specs.py.
VOCAB, EMBED, HIDDEN, TIME = 20, 4, 5, 6


def keras_formula(name):
    return SPECS[name].param_count


def param_shapes(model, token_ids_shape):
    tokens = jax.ShapeDtypeStruct(token_ids_shape, jnp.int32)
    return jax.eval_shape(lambda t: model.init(jax.random.key(0), t), tokens)["params"]


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", NAMES)
def test_output_shapes(name):
    configs = [  # batch, time, pooling, bidirectional, num_layers
        (1, 1, "last", False, 1),
        (2, 3, "mean", True, 2),
        (3, 7, "max", False, 2),
        (2, 5, "last", True, 1),
    ]
    for batch, time, pooling, bidirectional, num_layers in configs:
        model = SentimentClassifier(
            VOCAB, EMBED, name, HIDDEN, num_layers, bidirectional, pooling, dropout_rate=0.1
        )
        tokens = jax.ShapeDtypeStruct((batch, time), jnp.int32)
        logits, _ = jax.eval_shape(
            lambda t, m=model: m.init_with_output(jax.random.key(0), t), tokens
        )
        assert (logits.shape, logits.dtype) == ((batch,), jnp.float32)

    regressor = SequenceRegressor(name, HIDDEN, out_features=3, num_layers=2)
    x = jax.ShapeDtypeStruct((2, 4, EMBED), jnp.float32)
    prediction, _ = jax.eval_shape(lambda x: regressor.init_with_output(jax.random.key(0), x), x)
    assert prediction.shape == (2, 3)


# --------------------------------------------------------------------------- padding and gradients


def random_params(model, token_ids_shape, seed):
    """Random normal parameters with the shapes ``model.init`` would create (no init)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda s: jnp.asarray(0.5 * rng.standard_normal(s.shape), s.dtype),
        param_shapes(model, token_ids_shape),
    )


def review(length, seed):
    return np.random.default_rng(seed).integers(1, VOCAB, size=length)  # never the pad id 0.


def token_batch():
    """Rows: a 3-token review post-padded, the same pre-padded, an empty row, a full row."""
    short, full = review(3, seed=1), review(TIME, seed=2)
    tokens = np.zeros((4, TIME), np.int32)
    tokens[0, :3] = short
    tokens[1, TIME - 3 :] = short
    tokens[3] = full
    return jnp.asarray(tokens), jnp.asarray(short[None], jnp.int32)


@functools.cache
def padded_batch_run(name, pooling, bidirectional):
    """Logits and gradients of a classifier on ``token_batch()``, computed once.

    One compiled function serves both tests below (compiling is most of their cost).
    """
    model = SentimentClassifier(
        VOCAB, EMBED, name, HIDDEN, bidirectional=bidirectional, pooling=pooling
    )
    params = random_params(model, (1, TIME), seed=3)
    tokens, alone = token_batch()  # alone: the short review unpadded, batch 1.
    labels = jnp.asarray(np.random.default_rng(4).integers(0, 2, len(tokens)), jnp.float32)

    def loss(params):
        logits = model.apply({"params": params}, tokens)
        return optax.sigmoid_binary_cross_entropy(logits, labels).mean(), logits

    @jax.jit
    def run(params):
        (value, logits), grads = jax.value_and_grad(loss, has_aux=True)(params)
        return value, logits, grads, model.apply({"params": params}, alone)

    return params, *run(params)


# Every pooling; bidirectional for 'last' (the backward half's output is its first step's)
# and for 'mean_max' (the best config's combination).
CONFIGS = [("last", True), ("mean", False), ("max", False), ("mean_max", True)]
assert {pooling for pooling, _ in CONFIGS} == set(models.POOLINGS)


@pytest.mark.slow  # 28 models; per cell, check_cell proves the layer's padding invariance.
@pytest.mark.parametrize("pooling, bidirectional", CONFIGS)
@pytest.mark.parametrize("name", NAMES)
def test_padding_does_not_change_the_logit(name, pooling, bidirectional):
    params, _, logits, _, alone_logit = padded_batch_run(name, pooling, bidirectional)
    assert np.all(np.isfinite(logits))
    np.testing.assert_allclose(logits[0], alone_logit[0], rtol=1e-5, atol=1e-6)  # post-padded
    np.testing.assert_allclose(logits[1], alone_logit[0], rtol=1e-5, atol=1e-6)  # pre-padded
    # No real token: zero features, so the logit is exactly the head's bias.
    np.testing.assert_array_equal(logits[2], params["head"]["bias"][0])
    assert not np.isclose(logits[3], logits[0])  # a different review, a different logit.


@pytest.mark.parametrize("pooling, bidirectional", CONFIGS)
@pytest.mark.parametrize("name", NAMES)
def test_every_gradient_is_finite_and_nonzero(name, pooling, bidirectional):
    # The batch has an empty row.
    params, loss, _, grads, _ = padded_batch_run(name, pooling, bidirectional)
    assert np.isfinite(loss)
    flat = jax.tree_util.tree_flatten_with_path(grads)[0]
    assert len(flat) == len(jax.tree.leaves(params))
    for path, grad in flat:
        where = jax.tree_util.keystr(path)
        assert np.all(np.isfinite(grad)), where
        assert np.any(grad != 0), f"{where}: gradient is all zero"
    # Padding never reaches the loss: the pad token's embedding gets exactly no gradient.
    np.testing.assert_array_equal(grads["embedding"]["embedding"][0], 0.0)


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_seed_determinism(name):
    model = SentimentClassifier(VOCAB, EMBED, name, HIDDEN)
    init = jax.jit(lambda key: model.init(key, jnp.ones((1, TIME), jnp.int32))["params"])
    a, b, other = (init(jax.random.key(k)) for k in (3, 3, 4))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)  # bitwise identical.
    for (path, x), y in zip(
        jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(other), strict=True
    ):
        in_cell = path[0].key == "recurrent"
        random = path[-1].key == "embedding" or path[-1].key == "kernel"  # Embedding and head.
        random |= in_cell and path[-1].key in SPECS[name].random_params
        assert np.array_equal(x, y) != random, jax.tree_util.keystr(path)


# --------------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize("bidirectional, num_layers", [(False, 1), (True, 2)])
@pytest.mark.parametrize("name", SPEC_NAMES)
def test_param_count_matches_keras(name, bidirectional, num_layers):
    vocab, embed, hidden = 37, 6, 7
    model = SentimentClassifier(vocab, embed, name, hidden, num_layers, bidirectional)
    formula = keras_formula(name)
    directions = 2 if bidirectional else 1
    recurrent = directions * formula(embed, hidden)
    recurrent += (num_layers - 1) * directions * formula(directions * hidden, hidden)
    head = directions * hidden + 1
    assert models.count_params(param_shapes(model, (1, 3))) == vocab * embed + recurrent + head


def keras_imdb_total(name):
    """The classic Keras IMDB model: Embedding(10000, 32) -> <cell>(32) -> Dense(1)."""
    return 10_000 * 32 + keras_formula(name)(32, 32) + 32 + 1


def test_the_imdb_totals_are_the_counts_keras_prints():
    # Keras's model.summary() of that model, hand-checked: a wrong formula fails here.
    assert [keras_imdb_total(n) for n in ("rnn", "lstm", "gru")] == [322_113, 328_353, 326_369]


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_summary(name):
    formula = keras_formula(name)
    for num_layers, bidirectional, pooling in [(1, False, "last"), (2, True, "mean")]:
        model = SentimentClassifier(10_000, 32, name, 32, num_layers, bidirectional, pooling)
        params = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), param_shapes(model, (1, 8)))
        total = models.count_params(params)
        text = models.summary(model, params, max_len=8)
        lines = text.splitlines()
        assert f"Total params: {total:,}" in text
        directions = 2 if bidirectional else 1
        for index in range(num_layers):
            rows = [line for line in lines if line.startswith(f"layer_{index} ")]
            assert len(rows) == 1, text
            d = 32 if index == 0 else directions * 32
            assert rows[0].rstrip().endswith(f"{directions * formula(d, 32):,}"), rows[0]
        assert not any(line.startswith(f"layer_{num_layers}") for line in lines)
        (embedding,) = [line for line in lines if line.startswith("embedding")]
        assert embedding.rstrip().endswith("320,000")
        (head,) = [line for line in lines if line.startswith("head")]
        assert head.rstrip().endswith(f"{directions * 32 + 1:,}")
        assert sum(line.startswith("pooling") for line in lines) == (pooling != "last")
        if num_layers == 1:
            assert f"Total params: {keras_imdb_total(name):,}" in text


# --------------------------------------------------------------------------- names and pieces


@pytest.mark.parametrize("name", NAMES)
def test_make_cells(name):
    cells = models.make_cells(name, 6, 3, param_dtype=jnp.float16)
    assert len(cells) == 3 and len({id(c) for c in cells}) == 3
    for cell in cells:
        assert type(cell) is CELLS[name] and cell.features == 6
        assert cell.param_dtype == jnp.float16


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_the_config_activation_reaches_every_layer_by_value(name, x64):
    """The classifier's recurrent stack with activation='relu' computes the NumPy equations with
    relu (tests/cell_specs.py's transcriptions), layer after layer."""
    model = SentimentClassifier(
        vocab_size=VOCAB, embed_dim=EMBED, cell=name, hidden_size=HIDDEN, num_layers=2,
        pooling="mean", activation="relu", param_dtype=jnp.float64,
    )  # fmt: skip
    ids = jnp.array([[5, 6, 7, 8], [9, 10, 11, 12]])
    params = random_params(model, ids.shape, seed=3)
    x = np.asarray(params["embedding"]["embedding"])[np.asarray(ids)]
    for layer in ("layer_0", "layer_1"):
        layer_params = params["recurrent"][layer]
        x, _ = reference_outputs(name, {}, x, layer_params, "relu/sigmoid")
    expected = x.mean(axis=1) @ np.asarray(params["head"]["kernel"]) + np.asarray(
        params["head"]["bias"]
    )
    np.testing.assert_allclose(model.apply({"params": params}, ids), expected[:, 0], atol=1e-10)


@pytest.mark.parametrize(
    "field, param", [("kernel_init", "kernel"), ("recurrent_init", "recurrent_kernel")]
)
def test_each_initializer_reaches_its_own_kernel(field, param):
    other = {"kernel": "recurrent_kernel", "recurrent_kernel": "kernel"}[param]
    model = SentimentClassifier(
        vocab_size=VOCAB, embed_dim=EMBED, cell="lstm", hidden_size=HIDDEN, **{field: "zeros"}
    )
    cell = model.init(jax.random.key(0), jnp.ones((1, 3), jnp.int32))["params"]["recurrent"][
        "layer_0"
    ]["cell"]
    np.testing.assert_array_equal(cell[param], 0.0)
    assert np.abs(np.asarray(cell[other])).min() > 0


@pytest.mark.parametrize("name", NAMES)
def test_unknown_names_raise_with_the_allowed_ones(name):
    def build(**overrides):
        fields = dict(vocab_size=VOCAB, embed_dim=EMBED, cell=name, hidden_size=HIDDEN)
        param_shapes(SentimentClassifier(**(fields | overrides)), (1, 3))

    cases = [
        ({"cell": "no_such_cell"}, CELLS),
        ({"activation": "no_such_activation"}, ACTIVATIONS),
        ({"kernel_init": "no_such_init"}, INITIALIZERS),
        ({"recurrent_init": "random_normal:x"}, INITIALIZERS),
        ({"pooling": "no_such_pooling"}, ("mean", "max")),
    ]
    for overrides, allowed in cases:
        with pytest.raises(ValueError) as info:
            build(**overrides)
        for option in allowed:
            assert option in str(info.value), (overrides, str(info.value))


def test_pool_over_real_steps_only():
    outputs = jnp.array(
        [
            [[1.0, -2.0], [3.0, -4.0], [9.0, 9.0]],  # 2 real steps, post-padded.
            [[7.0, 7.0], [0.0, 0.0], [-5.0, -6.0]],  # 1 real step, pre-padded.
            [[8.0, 8.0], [0.0, 0.0], [0.0, 0.0]],  # no real step.
            # (What padded steps hold must not count, whatever it is.)
        ]
    )
    mask = jnp.array([[1, 1, 0], [0, 0, 1], [0, 0, 0]], bool)
    np.testing.assert_array_equal(
        models.pool(outputs, mask, "mean"), [[2.0, -3.0], [-5.0, -6.0], [0.0, 0.0]]
    )
    np.testing.assert_array_equal(
        models.pool(outputs, mask, "max"), [[3.0, -2.0], [-5.0, -6.0], [0.0, 0.0]]
    )
    np.testing.assert_array_equal(
        models.pool(outputs, mask, "mean_max"),
        [[2.0, -3.0, 3.0, -2.0], [-5.0, -6.0, -5.0, -6.0], [0.0, 0.0, 0.0, 0.0]],
    )
    with pytest.raises(ValueError, match=r"^unknown pooling 'last'; pool\(\) takes mean, max or"):
        models.pool(outputs, mask, "last")


# Every cell pre-padded (the default); post-padding once: the masking is the cells' shared code.
@pytest.mark.parametrize(
    "cell, padding", [*((cell, "pre") for cell in sorted(CELLS)), ("lstm", "post")]
)
def test_cutting_padding_columns_leaves_a_masked_models_logits_unchanged(cell, padding):
    # What length bucketing relies on (batching.cut_padding): padding steps change nothing.
    from rnn_jax.data.batching import cut_padding, pad_sequences

    rng = np.random.default_rng(0)
    reviews = [rng.integers(3, 50, size).tolist() for size in (3, 9, 5, 1)]
    token_ids, lengths = pad_sequences(reviews, 40, padding, "pre")
    batch = {"token_ids": token_ids, "length": lengths}
    cut = cut_padding(batch, 4, padding)["token_ids"]
    assert cut.shape == (4, 12)
    model = SentimentClassifier(
        vocab_size=50, embed_dim=8, hidden_size=6, cell=cell, num_layers=2, bidirectional=True
    )
    params = jax.jit(model.init)(jax.random.key(1), token_ids)["params"]
    apply = jax.jit(model.apply)  # Compiled per shape: faster than op by op, even twice.
    full_logits = apply({"params": params}, token_ids)
    cut_logits = apply({"params": params}, cut)
    np.testing.assert_allclose(cut_logits, full_logits, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [2, 3])
def test_ngram_ids_name_each_run_of_n_words(n):
    vocab, buckets = 30_000, 1 << 18
    tokens = np.random.default_rng(n).integers(1, vocab, (3, 500)).astype(np.int32)
    ids = np.asarray(models.ngram_ids(jnp.asarray(tokens), vocab, buckets, n))
    assert ids.shape == tokens.shape and ids.dtype == np.int32
    assert 0 <= ids.min() and ids.max() < buckets
    padded = np.pad(tokens, ((0, 0), (n - 1, 0)))  # before the first token: padding.
    ngrams = np.stack([padded[:, k : k + tokens.shape[1]] for k in range(n)], -1)
    seen = {}  # n-gram -> id: the same words always get the same id, wherever they are.
    for ngram, bucket in zip(map(tuple, ngrams.reshape(-1, n)), ids.ravel(), strict=True):
        assert seen.setdefault(ngram, bucket) == bucket
    # 1,500 random n-grams in 262,144 buckets: a good hash collides a handful of times at most.
    assert len(set(ids.ravel())) >= len(seen) - 10
    # A repeated n-gram gets its first occurrence's id.
    tokens[2, 100 : 100 + n] = tokens[0, 10 : 10 + n]
    again = np.asarray(models.ngram_ids(jnp.asarray(tokens), vocab, buckets, n))
    assert again[2, 100 + n - 1] == again[0, 10 + n - 1]
    # Changing one token changes the ids of the n steps whose n-grams contain it, no other.
    changed = tokens.copy()
    changed[1, 7] = tokens[1, 7] % (vocab - 1) + 1
    new_ids = np.asarray(models.ngram_ids(jnp.asarray(changed), vocab, buckets, n))
    rows, steps = np.nonzero(new_ids != again)
    assert rows.tolist() == [1] * n and steps.tolist() == [7 + k for k in range(n)]


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_an_ngram_model_ignores_padding_and_learns_its_ngram_table(padding):
    from rnn_jax.data.batching import pad_sequences

    rng = np.random.default_rng(5)
    reviews = [rng.integers(3, 50, size).tolist() for size in (3, 11, 6)]
    labels = jnp.array([1.0, 0.0, 1.0])
    model = SentimentClassifier(
        vocab_size=50, embed_dim=8, cell="gru", hidden_size=6, bidirectional=True,
        pooling="mean_max", ngram_buckets=97, ngram_order=3,
    )  # fmt: skip
    padded, _ = pad_sequences(reviews, 16, padding, "pre")
    params = jax.jit(model.init)(jax.random.key(0), padded)["params"]
    assert params["ngram_embedding"]["embedding"].shape == (97, 8)
    (row,) = [r for r in models.summary(model, params, 16).splitlines() if r.startswith("ngram")]
    assert row.split()[-1] == "776"  # 97 x 8
    apply = jax.jit(model.apply)
    logits = apply({"params": params}, padded)
    for row, review_ids in enumerate(reviews):  # each review alone, unpadded.
        alone = apply({"params": params}, jnp.asarray([review_ids], jnp.int32))
        np.testing.assert_allclose(logits[row], alone[0], rtol=1e-5, atol=1e-6)

    def loss(params):
        logits = model.apply({"params": params}, padded)
        return optax.sigmoid_binary_cross_entropy(logits, labels).mean()

    grads = jax.jit(jax.grad(loss))(params)["ngram_embedding"]["embedding"]
    real = np.asarray(padded) != 0
    used = np.unique(
        [np.asarray(models.ngram_ids(jnp.asarray(padded), 50, 97, n))[real] for n in (2, 3)]
    )
    # Exactly the bigrams and trigrams ending at real tokens get a gradient (padding steps
    # reach no loss).
    np.testing.assert_array_equal(np.flatnonzero(np.abs(grads).sum(axis=1)), used)


@pytest.mark.parametrize("whole_tokens", [True, False])
def test_embedding_dropout_drops_whole_tokens_or_single_features(whole_tokens):
    import flax.linen as nn

    model = SentimentClassifier(
        vocab_size=50, embed_dim=16, cell="gru", hidden_size=4,
        embed_dropout_rate=0.3, embed_dropout_tokens=whole_tokens,
    )  # fmt: skip
    tokens = jnp.asarray(np.random.default_rng(0).integers(3, 50, (8, 64)), jnp.int32)
    params = jax.jit(model.init)(jax.random.key(0), tokens)["params"]
    _, state = model.apply(
        {"params": params},
        tokens,
        train=True,
        rngs={"dropout": jax.random.key(1)},
        capture_intermediates=lambda module, _: isinstance(module, nn.Dropout),
        mutable=["intermediates"],
    )
    (dropped,) = state["intermediates"]["Dropout_0"]["__call__"]
    embedded = params["embedding"]["embedding"][tokens]
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], embedded[kept] / 0.7, rtol=1e-6)
    assert 0.25 < 1 - kept.mean() < 0.35
    whole = kept.all(axis=-1) | ~kept.any(axis=-1)  # per token: all features kept or none.
    # Dropping single features leaves a token whole with chance 0.7^16 + 0.3^16 (0.3%).
    assert whole.all() if whole_tokens else whole.mean() < 0.05


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_masked_pre_and_post_padding_give_the_same_gradients(cell):
    # So masked pre- and post-padded trainings differ only by float summation order (the padding
    # study's 0.8192 vs 0.8146 is that noise, amplified over 3,000 steps), not by the model.
    from rnn_jax.data.batching import pad_sequences

    rng = np.random.default_rng(3)
    reviews = [rng.integers(3, 50, size).tolist() for size in (3, 17, 9, 1, 20)]
    labels = jnp.array([1.0, 0.0, 1.0, 0.0, 1.0])
    model = SentimentClassifier(vocab_size=50, embed_dim=8, hidden_size=6, cell=cell)
    pre, _ = pad_sequences(reviews, 24, "pre", "pre")
    post, _ = pad_sequences(reviews, 24, "post", "pre")
    params = jax.jit(model.init)(jax.random.key(2), pre)["params"]

    @jax.jit  # One program for both paddings (same shapes).
    def grads(token_ids):
        def loss(params):
            logits = model.apply({"params": params}, token_ids)
            return optax.sigmoid_binary_cross_entropy(logits, labels).mean()

        return jax.grad(loss)(params)

    for a, b in zip(jax.tree.leaves(grads(pre)), jax.tree.leaves(grads(post)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


# --------------------------------------------------------------------------- mixed precision


# Every cell with the input projection in the step (CPU's choice); before the scan (GPU/TPU's)
# the projection is the cells' shared code, so one cell covers it.
@pytest.mark.slow  # A model per cell and projection.
@pytest.mark.parametrize(
    "name, projection", [*((n, "in_step") for n in NAMES), ("lstm", "before_scan")]
)
def test_bfloat16_compute_keeps_float32_parameters_and_gradients_close_to_float32(name, projection):
    f32 = SentimentClassifier(
        VOCAB,
        EMBED,
        name,
        HIDDEN,
        pooling="mean_max",
        ngram_buckets=16,
        recurrence=RecurrenceOptions(input_projection=projection),
    )
    bf16 = f32.clone(dtype=jnp.bfloat16)
    tokens, _ = token_batch()
    params = jax.jit(f32.init)(jax.random.key(0), tokens)["params"]
    # The same parameters, in float32: only the computation changes.
    bf16_params = jax.jit(bf16.init)(jax.random.key(0), tokens)["params"]
    same = jax.tree.map(jnp.array_equal, params, bf16_params)
    assert all(jax.tree.leaves(same))
    labels = jnp.asarray([1.0, 0.0, 1.0, 0.0])

    def loss_and_grads(model):
        def loss(params):
            logits = model.apply({"params": params}, tokens)
            return optax.sigmoid_binary_cross_entropy(logits, labels).mean(), logits

        return jax.jit(jax.value_and_grad(loss, has_aux=True))(params)

    (_, logits32), grads32 = loss_and_grads(f32)
    (_, logits16), grads16 = loss_and_grads(bf16)
    assert logits16.dtype == jnp.float32
    assert not np.array_equal(logits16, logits32)  # Really computed in bfloat16 ...
    np.testing.assert_allclose(logits16, logits32, atol=0.03)  # ... to bfloat16's precision.
    for g16, g32 in zip(jax.tree.leaves(grads16), jax.tree.leaves(grads32), strict=True):
        assert g16.dtype == jnp.float32
        assert np.linalg.norm(g16 - g32) <= 0.05 * np.linalg.norm(g32) + 1e-6
    # The cells ran in bfloat16: the recurrent layer's outputs are bfloat16.
    _, state = jax.eval_shape(
        lambda: bf16.apply(
            {"params": params}, tokens, capture_intermediates=True, mutable=["intermediates"]
        )
    )
    _, outputs = state["intermediates"]["recurrent"]["layer_0"]["__call__"][0]
    assert outputs.dtype == jnp.bfloat16


def test_bfloat16_compute_sums_a_frequent_words_embedding_gradient_in_float32():
    # One word read 4 x 500 times: its embedding row's gradient sums 2,000 contributions, which
    # a bfloat16 accumulator (8-bit mantissa) would round away.
    f32 = SentimentClassifier(VOCAB, EMBED, "gru", HIDDEN, pooling="mean")
    bf16 = f32.clone(dtype=jnp.bfloat16)
    tokens = jnp.full((4, 500), 7, jnp.int32)
    params = f32.init(jax.random.key(0), tokens)["params"]

    def embedding_grad(model):
        def loss(params):
            return model.apply({"params": params}, tokens).sum()

        return jax.jit(jax.grad(loss))(params)["embedding"]["embedding"][7]

    g32, g16 = embedding_grad(f32), embedding_grad(bf16)
    assert g16.dtype == jnp.float32
    np.testing.assert_allclose(g16, g32, rtol=0.02, atol=1e-3 * np.abs(g32).max())


@pytest.mark.parametrize("name", NAMES)
def test_without_mask_padding_the_model_reads_padding_like_a_word(name):
    """config.mask_padding=False (Keras without mask_zero): a pad is an ordinary token. The
    unmasked model on a padded review equals the masking model on the same review with each
    pad replaced by a word whose embedding is the pad's."""
    from configs import default

    config = default.get_config()
    config.update(vocab_size=VOCAB, embed_dim=EMBED, hidden_size=HIDDEN, cell=name)
    padded = jnp.array([[0, 0, 5, 6, 7], [8, 9, 0, 0, 0]])  # Pre- and post-padded.
    config.mask_padding = False
    unmasked = models.create_model(config)
    config.mask_padding = True
    masked = models.create_model(config)
    params = random_params(masked, padded.shape, seed=7)
    word = VOCAB - 1  # Not in the reviews above.
    table = params["embedding"]["embedding"]
    as_word = {**params, "embedding": {"embedding": table.at[word].set(table[0])}}
    read_like_a_word = jnp.where(padded == 0, word, padded)
    unmasked_apply, masked_apply = jax.jit(unmasked.apply), jax.jit(masked.apply)
    np.testing.assert_allclose(
        unmasked_apply({"params": as_word}, padded),
        masked_apply({"params": as_word}, read_like_a_word),
        rtol=1e-6,
    )
    # ... which differs from what the masking model makes of the padded review.
    assert not np.allclose(
        unmasked_apply({"params": params}, padded), masked_apply({"params": params}, padded)
    )


def test_the_classifier_masks_the_data_padding_id():
    # models knows nothing of data: its default pad_id must be the one the data pads with.
    from rnn_jax.data.vocabulary import PAD_ID

    assert SentimentClassifier.pad_id == PAD_ID
