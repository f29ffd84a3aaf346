"""The optimizers against Keras 3's own (``keras.optimizers``, installed with tensorflow-cpu).

Gradients span 1e-6 to 1e1, each coordinate with its own scale, so epsilon's placement shows
where it matters (small gradients) and the moments where it does not (large ones).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import default
from rnn_jax.training import optimizers

STEPS, COORDINATES = 30, 36
SCALES = 10.0 ** np.linspace(-6, 1, COORDINATES)
GRADIENTS = (np.random.default_rng(0).standard_normal((STEPS, COORDINATES)) * SCALES).astype(
    np.float32
)


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras  # slow (~5 s), once for the module.

    return keras


def config_for(optimizer, learning_rate, **overrides):
    config = default.get_config()
    config.update(optimizer=optimizer, learning_rate=learning_rate, grad_clip_norm=0.0)
    config.update({"schedule": "constant"} | overrides)
    return config


def our_trajectory(config, **optimizer_kwargs):
    """Parameters after each step, starting from zero (so rounding is relative to the motion)."""
    tx = optimizers.create_optimizer(
        config, optimizers.create_learning_rate_fn(config, 10), **optimizer_kwargs
    )
    params = jnp.zeros(COORDINATES, jnp.float32)
    state, trajectory = tx.init(params), []
    for g in GRADIENTS:
        updates, state = tx.update(jnp.asarray(g), state, params)
        params = optax.apply_updates(params, updates)
        trajectory.append(np.asarray(params))
    return np.stack(trajectory)


def keras_trajectory(keras, optimizer):
    variable = keras.Variable(np.zeros(COORDINATES, np.float32))
    trajectory = []
    for g in GRADIENTS:
        optimizer.apply([keras.ops.convert_to_tensor(g)], [variable])
        trajectory.append(np.array(variable.numpy()))
    return np.stack(trajectory)


def relative_difference(ours, theirs):
    """Per coordinate: the largest difference along the way, relative to how far it moved."""
    return np.abs(ours - theirs).max(axis=0) / np.abs(theirs).max(axis=0)


def test_our_defaults_are_keras_defaults(keras):
    assert optimizers.KERAS_EPSILON == keras.optimizers.Adam().epsilon
    assert optimizers.KERAS_EPSILON == keras.optimizers.RMSprop().epsilon
    assert (optimizers.ADAM_B1, optimizers.ADAM_B2) == (
        keras.optimizers.Adam().beta_1,
        keras.optimizers.Adam().beta_2,
    )
    assert optimizers.RMSPROP_RHO == keras.optimizers.RMSprop().rho


def test_rmsprop_is_keras_rmsprop(keras):
    """Keras: v = rho v + (1 - rho) g^2; w -= lr g / sqrt(v + eps), epsilon inside the root."""
    ours = our_trajectory(config_for("rmsprop", 1e-3))
    theirs = keras_trajectory(keras, keras.optimizers.RMSprop(learning_rate=1e-3))
    # Float32 rounding only, at every gradient scale (epsilon outside the root: up to 500x).
    assert relative_difference(ours, theirs).max() < 2e-6


def test_adam_is_keras_adam_but_for_epsilon(keras):
    """With epsilon 0 on both sides, moments, bias corrections and learning rate agree."""
    ours = our_trajectory(config_for("adam", 1e-3), epsilon=0.0)
    theirs = keras_trajectory(keras, keras.optimizers.Adam(learning_rate=1e-3, epsilon=0.0))
    assert relative_difference(ours, theirs).max() < 2e-6


def test_adam_epsilon_differs_from_keras_by_the_documented_bound(keras):
    """Ours adds eps to sqrt(v_hat) (Kingma & Ba, Algorithm 1); Keras adds eps to sqrt(v) before
    the bias correction, an effective eps / sqrt(1 - beta2^t) >= eps. So a Keras step is never
    longer than ours, in the same direction, and the same once sqrt(v_hat) >> eps (docs)."""
    ours = our_trajectory(config_for("adam", 1e-3))
    theirs = keras_trajectory(keras, keras.optimizers.Adam(learning_rate=1e-3))
    steps_ours, steps_theirs = np.diff(ours, axis=0, prepend=0), np.diff(theirs, axis=0, prepend=0)
    assert np.all(np.sign(steps_ours) == np.sign(steps_theirs))
    assert np.all(np.abs(steps_theirs) <= np.abs(steps_ours) * (1 + 1e-5))
    difference = relative_difference(ours, theirs)
    assert difference[SCALES >= 1].max() < 1e-5  # Gradients of 1 and more: about the same.
    assert difference[SCALES < 1e-4].min() > 1e-2  # Small gradients: epsilon shows.


def test_keras_adam_is_keras_adam(keras):
    """keras_adam: epsilon added to sqrt(v) before the bias correction, as Keras does."""
    ours = our_trajectory(config_for("keras_adam", 1e-3))
    theirs = keras_trajectory(keras, keras.optimizers.Adam(learning_rate=1e-3))
    # Float32 rounding only, at every gradient scale; adam differs by more than 1e-2 on the
    # small ones (test above).
    assert relative_difference(ours, theirs).max() < 2e-6


def test_keras_adam_with_another_epsilon_is_keras_adam(keras):
    """Epsilon is passed through: at 1e-4 it outweighs sqrt(v) on about half the coordinates."""
    ours = our_trajectory(config_for("keras_adam", 1e-2), epsilon=1e-4)
    theirs = keras_trajectory(keras, keras.optimizers.Adam(learning_rate=1e-2, epsilon=1e-4))
    assert relative_difference(ours, theirs).max() < 2e-6


def test_keras_adam_differs_from_adam_only_on_small_gradients():
    """The two Adams share moments and bias corrections: they differ where eps ~ sqrt(v_hat)."""
    keras_like = our_trajectory(config_for("keras_adam", 1e-3))
    kingma_ba = our_trajectory(config_for("adam", 1e-3))
    difference = relative_difference(keras_like, kingma_ba)
    assert difference[SCALES >= 1].max() < 1e-5
    assert difference[SCALES < 1e-4].min() > 1e-2
    # Keras's effective epsilon is the larger one: its steps are never longer.
    steps_keras = np.diff(keras_like, axis=0, prepend=0)
    steps_kingma_ba = np.diff(kingma_ba, axis=0, prepend=0)
    assert np.all(np.abs(steps_keras) <= np.abs(steps_kingma_ba) * (1 + 1e-5))


def test_keras_adam_steps_a_tree_under_jit_with_a_schedule():
    """As training uses it: a parameter tree, a jitted update, a learning rate that changes."""
    config = config_for("keras_adam", 1e-3, schedule="warmup_cosine", num_epochs=2)
    lr = optimizers.create_learning_rate_fn(config, steps_per_epoch=5)
    tx = optimizers.create_optimizer(config, lr)
    params = {"kernel": jnp.zeros((3, 4)), "bias": jnp.zeros(4)}
    state, update = tx.init(params), jax.jit(tx.update)
    # Gradients near sqrt(1 - b2) eps, where the effective epsilon is a quarter of the step's
    # denominator and more (Kingma & Ba's eps would be under 5%).
    grads = {"kernel": jnp.full((3, 4), 1e-5), "bias": jnp.full(4, -2e-6)}
    for step in range(3):
        updates, state = update(grads, state, params)
        # A constant gradient g: m_hat = g and v_hat = g^2 at every step, so the step is
        # -lr(t) g / (|g| + eps / sqrt(1 - b2^t)) (the effective epsilon).
        effective_eps = optimizers.KERAS_EPSILON / np.sqrt(1 - optimizers.ADAM_B2 ** (step + 1))
        for name, g in (("kernel", 1e-5), ("bias", -2e-6)):
            expected = -float(lr(step)) * g / (abs(g) + effective_eps)
            # float32 rounds 1 - b2^t at 1e-5 relative (Keras too).
            np.testing.assert_allclose(np.asarray(updates[name]), expected, rtol=5e-5)
    assert int(state[0].count) == 3  # (keras adam, learning rate) states, chained.


def test_sgd_momentum_is_the_heavy_ball(keras):
    ours = our_trajectory(config_for("sgd", 1e-2, momentum=0.9))
    theirs = keras_trajectory(keras, keras.optimizers.SGD(learning_rate=1e-2, momentum=0.9))
    assert relative_difference(ours, theirs).max() < 2e-6


def test_gradient_clipping_bounds_the_update():
    config = config_for("sgd", 1.0, grad_clip_norm=0.5)
    tx = optimizers.create_optimizer(config, optimizers.create_learning_rate_fn(config, 10))
    params = {"w": jnp.zeros(4)}
    updates, _ = tx.update({"w": jnp.full(4, 10.0)}, tx.init(params), params)
    np.testing.assert_allclose(float(optax.tree.norm(updates)), 0.5, rtol=1e-6)


def test_warmup_cosine_schedule():
    config = config_for("adam", 0.1, schedule="warmup_cosine", warmup_epochs=1.0, num_epochs=3)
    lr = optimizers.create_learning_rate_fn(config, steps_per_epoch=10)
    assert float(lr(0)) == 0.0
    np.testing.assert_allclose(float(lr(5)), 0.05, rtol=1e-6)
    np.testing.assert_allclose(float(lr(10)), 0.1, rtol=1e-6)
    assert float(lr(20)) < 0.1 and float(lr(30)) == pytest.approx(0.0, abs=1e-9)
    # No warmup: cosine decay from the first step, 0.1 * (1 + cos(pi * t / 30)) / 2.
    config.warmup_epochs = 0.0
    lr = optimizers.create_learning_rate_fn(config, steps_per_epoch=10)
    for step in (0, 10, 15, 30):
        expected = 0.1 * (1 + np.cos(np.pi * step / 30)) / 2
        np.testing.assert_allclose(float(lr(step)), expected, rtol=1e-5, atol=1e-9)
