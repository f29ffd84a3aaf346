"""The learning-rate schedule and the optimizer a config names (optax)."""

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
      both against Keras; docs/configuration.md says how large the difference gets).
    - ``sgd`` with ``config.momentum`` is Keras's SGD (heavy-ball momentum).

    Args:
      config: the ``optimizer``, ``momentum`` and ``grad_clip_norm`` fields are read.
      learning_rate_fn: step -> learning rate (``create_learning_rate_fn``).
      epsilon: Adam's and RMSprop's epsilon (Keras's 1e-7).
    """
    if config.optimizer == "adam":
        optimizer = optax.adam(learning_rate_fn, b1=ADAM_B1, b2=ADAM_B2, eps=epsilon)
    elif config.optimizer == "rmsprop":
        optimizer = optax.rmsprop(learning_rate_fn, decay=RMSPROP_RHO, eps=epsilon)
    else:
        optimizer = optax.sgd(learning_rate_fn, momentum=config.momentum or None)
    if config.grad_clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), optimizer)
    return optimizer
