"""The learning-rate schedule and the optimizer a config names (optax)."""

import jax
import jax.numpy as jnp
import ml_collections
import optax

# Keras 3's defaults (keras.optimizers.Adam / RMSprop), which the course uses.
KERAS_EPSILON = 1e-7
ADAM_B1, ADAM_B2 = 0.9, 0.999
RMSPROP_RHO = 0.9


def create_learning_rate_fn(config: ml_collections.ConfigDict, steps_per_epoch: int):
    """Step -> learning rate: constant, or linear warmup then cosine decay to 0."""
    if config.schedule == "constant":
        return optax.constant_schedule(config.learning_rate)
    total = config.num_epochs * steps_per_epoch
    warmup = int(config.warmup_epochs * steps_per_epoch)
    if warmup == 0:  # The same numbers; optax logs a warning for a warmup of 0 steps.
        return optax.cosine_decay_schedule(config.learning_rate, total)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.learning_rate,
        warmup_steps=warmup,
        decay_steps=max(total, warmup + 1),
        end_value=0.0,
    )


def scale_by_keras_adam(
    b1: float = ADAM_B1, b2: float = ADAM_B2, eps: float = KERAS_EPSILON
) -> optax.GradientTransformation:
    """Keras 3's Adam direction, ``m * sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(v) + eps)``.

    The moments and their bias corrections are Kingma & Ba's (``optax.scale_by_adam``); only
    epsilon's place differs: it is added to ``sqrt(v)`` before the bias correction, so it acts
    as ``eps / sqrt(1 - b2^t)`` on ``sqrt(v_hat)``. The arithmetic follows Keras's order
    (``keras.optimizers.Adam.update_step``), except that Keras folds the learning rate into the
    bias correction and here it is applied last: the two agree to float32 rounding. Chain it
    with ``optax.scale_by_learning_rate``, as ``optax.adam`` chains ``scale_by_adam``.

    Args:
      b1: decay of the first moment (Keras's ``beta_1``).
      b2: decay of the second moment (Keras's ``beta_2``).
      eps: added to ``sqrt(v)``, the uncorrected second moment's root.

    Returns:
      A transformation whose state is ``optax.ScaleByAdamState`` (the moments have the
      parameters' shapes), as ``optax.scale_by_adam``'s is.
    """

    def init_fn(params):
        zeros = optax.tree.zeros_like(params)
        return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=zeros, nu=zeros)

    def update_fn(updates, state, params=None):
        del params
        # Keras: m += (g - m) (1 - b1); v += (g^2 - v) (1 - b2). The same moments as optax's
        # b m + (1 - b) g, rounded as Keras rounds them.
        mu = jax.tree.map(lambda g, m: m + (g - m) * (1 - b1), updates, state.mu)
        nu = jax.tree.map(lambda g, v: v + (jnp.square(g) - v) * (1 - b2), updates, state.nu)
        count = optax.safe_increment(state.count)
        step = count.astype(jnp.float32)  # Keras raises float32 betas to a float32 step.
        alpha = jnp.sqrt(1 - jnp.float32(b2) ** step) / (1 - jnp.float32(b1) ** step)
        updates = jax.tree.map(
            lambda m, v: (m * alpha.astype(m.dtype)) / (jnp.sqrt(v) + eps), mu, nu
        )
        return updates, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)


def create_optimizer(
    config: ml_collections.ConfigDict, learning_rate_fn, *, epsilon: float = KERAS_EPSILON
):
    """Clipping (optional) then the named optimizer, with Keras's defaults.

    - ``rmsprop`` is Keras's RMSprop: ``v = rho v + (1 - rho) g^2``, ``w -= lr g / sqrt(v + eps)``
      (epsilon inside the root; optax's default placement).
    - ``adam`` is Kingma & Ba's Algorithm 1 (optax's): ``w -= lr m_hat / (sqrt(v_hat) + eps)``.
      Keras adds epsilon to ``sqrt(v)`` before the bias correction, which is an effective
      ``eps / sqrt(1 - beta2^t) >= eps``: its steps are never longer than ours, in the same
      direction, and equal once ``sqrt(v_hat) >> eps`` (``tests/test_optimizers.py`` measures
      both against Keras; docs/configuration.md says how large the difference gets). Every
      committed result trained with Adam used this one, so it keeps its meaning.
    - ``keras_adam`` is Keras's Adam (equal to float32 rounding: Keras folds the learning rate
      into the bias correction, here it is applied last): ``scale_by_keras_adam``.
    - ``sgd`` with ``config.momentum`` is Keras's SGD (heavy-ball momentum).

    Args:
      config: the ``optimizer``, ``momentum`` and ``grad_clip_norm`` fields are read.
      learning_rate_fn: step -> learning rate (``create_learning_rate_fn``).
      epsilon: Adam's (both) and RMSprop's epsilon (Keras's 1e-7).
    """
    if config.optimizer == "adam":
        optimizer = optax.adam(learning_rate_fn, b1=ADAM_B1, b2=ADAM_B2, eps=epsilon)
    elif config.optimizer == "keras_adam":
        optimizer = optax.chain(
            scale_by_keras_adam(ADAM_B1, ADAM_B2, epsilon),
            optax.scale_by_learning_rate(learning_rate_fn),
        )
    elif config.optimizer == "rmsprop":
        optimizer = optax.rmsprop(learning_rate_fn, decay=RMSPROP_RHO, eps=epsilon)
    else:
        optimizer = optax.sgd(learning_rate_fn, momentum=config.momentum or None)
    if config.grad_clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), optimizer)
    return optimizer
