"""The learning-rate schedule and the optimizer a config names (optax)."""

import ml_collections
import optax


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


def create_optimizer(config: ml_collections.ConfigDict, learning_rate_fn):
    """Clipping (optional) then the named optimizer.

    Adam and RMSprop use Keras's epsilon (1e-7), and RMSprop Keras's update
    ``g / (sqrt(v) + eps)`` (optax's default puts eps inside the sqrt), so the course's
    ``RMSprop(1e-4)`` means the same thing here.
    """
    if config.optimizer == "adam":
        optimizer = optax.adam(learning_rate_fn, eps=1e-7)
    elif config.optimizer == "rmsprop":
        optimizer = optax.rmsprop(learning_rate_fn, decay=0.9, eps=1e-7, eps_in_sqrt=False)
    else:
        optimizer = optax.sgd(learning_rate_fn, momentum=config.momentum or None)
    if config.grad_clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), optimizer)
    return optimizer
