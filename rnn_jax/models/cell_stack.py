"""Cells from the names configs use: the registry's class with initializers and activations."""

from typing import Any

import jax.numpy as jnp

from rnn_jax.cells import (
    ACTIVATIONS,
    RecurrentCell,
    get_cell_class,
    get_initializer,
    parse_cell_kwargs,
)


def make_cells(
    cell: str,
    hidden_size: int,
    num_layers: int,
    *,
    kernel_init: str | None = None,
    recurrent_init: str | None = None,
    activation: str | None = None,
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
    cell_kwargs: str = "",
) -> list[RecurrentCell]:
    """``num_layers`` unbound cells of the kind ``cell`` names, as configs name their options.

    An option left None (or ``activation=""``, as configs say it) keeps the cell class's own
    default (e.g. the minGRU's linear candidate, a researcher cell's activation); only what is
    asked is passed. ``cell_kwargs``: the cell's constructor arguments as a JSON object
    (``parse_cell_kwargs``), e.g. a chrono initialization's ``'{"t_max": 64}'``.
    """
    activation = activation or None
    if activation is not None and activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; allowed: {', '.join(ACTIVATIONS)}")
    asked = {
        "activation": None if activation is None else ACTIVATIONS[activation],
        "kernel_init": None if kernel_init is None else get_initializer(kernel_init),
        "recurrent_kernel_init": None
        if recurrent_init is None
        else get_initializer(recurrent_init),
    }
    kwargs = {name: value for name, value in asked.items() if value is not None}
    kwargs |= parse_cell_kwargs(cell_kwargs)  # The config's JSON: the cell's own arguments.
    cell_class = get_cell_class(cell)
    return [
        cell_class(features=hidden_size, param_dtype=param_dtype, dtype=dtype, **kwargs)
        for _ in range(num_layers)
    ]
