"""The cells: each recurrent cell written as its equations, and what every cell shares.

``base`` is the contract (``RecurrentCell``: ``project_inputs`` / ``step`` / Flax's ``__call__``)
and the initializer and activation names; ``classic`` the cells non-linear in h (SimpleRNN, LSTM,
GRU, MGU); ``linear`` the cells linear in h (minGRU, minLSTM, RG-LRU), which expose
``coefficients``; ``cudnn_lstm`` the LSTM's fused cuDNN kernel; ``registry`` the names configs
use (``register_cell``, ``module:Class``). A researcher editing a cell works here. Imports jax
and flax only: nothing else of rnn_jax.
"""

from rnn_jax.cells.base import ACTIVATIONS, INITIALIZERS, RecurrentCell, get_initializer
from rnn_jax.cells.classic import GRUCell, LSTMCell, MinimalGatedCell, SimpleRNNCell
from rnn_jax.cells.linear import LinearRecurrentCell, MinGRUCell, MinLSTMCell, RGLRUCell
from rnn_jax.cells.registry import (
    CELLS,
    LINEAR_CELLS,
    get_cell_class,
    is_cell_class,
    is_linear,
    linear_cell_names,
    parse_cell_kwargs,
    register_cell,
)

__all__ = [
    "ACTIVATIONS",
    "CELLS",
    "GRUCell",
    "INITIALIZERS",
    "LINEAR_CELLS",
    "LSTMCell",
    "LinearRecurrentCell",
    "MinGRUCell",
    "MinLSTMCell",
    "MinimalGatedCell",
    "RGLRUCell",
    "RecurrentCell",
    "SimpleRNNCell",
    "get_cell_class",
    "get_initializer",
    "is_cell_class",
    "is_linear",
    "linear_cell_names",
    "parse_cell_kwargs",
    "register_cell",
]
