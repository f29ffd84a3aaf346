"""Cells from the names configs use: the registry's class with initializers and activations."""

from typing import Any

import jax.numpy as jnp

from rnn_jax.cells import ACTIVATIONS, RecurrentCell, get_cell_class, get_initializer


def make_cells(
    cell: str,
    hidden_size: int,
    num_layers: int,
    *,
    kernel_init: str = "glorot_uniform",
    recurrent_init: str = "orthogonal",
    activation: str = "tanh",
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> list[RecurrentCell]:
    """``num_layers`` unbound cells of the registered kind ``cell``, as configs name them."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; allowed: {', '.join(ACTIVATIONS)}")
    cell_class = get_cell_class(cell)
    return [
        cell_class(
            features=hidden_size,
            activation=ACTIVATIONS[activation],
            kernel_init=get_initializer(kernel_init),
            recurrent_kernel_init=get_initializer(recurrent_init),
            param_dtype=param_dtype,
            dtype=dtype,
        )
        for _ in range(num_layers)
    ]
