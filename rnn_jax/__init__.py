"""rnn_jax: recurrent cells in JAX/Flax, their layers, models, training on IMDB.

The public API (what the README's examples import), so a script never needs the file layout::

    from rnn_jax import CELLS, RecurrentCell, Recurrence, RecurrentStack, register_cell

The folders, from the bottom up: ``cells`` (the equations and the registry), ``layers`` (the
recurrence over time), ``models``, ``data``, ``training``, ``inference``; the command lines
``main``, ``predict`` and ``evaluate`` sit on top. Importing this module imports JAX and Flax,
never TensorFlow.
"""

from rnn_jax import testing
from rnn_jax.cells import (
    CELLS,
    LINEAR_CELLS,
    GRUCell,
    LinearRecurrentCell,
    LSTMCell,
    MinGRUCell,
    MinimalGatedCell,
    MinLSTMCell,
    RecurrentCell,
    RGLRUCell,
    SimpleRNNCell,
    get_cell_class,
    is_linear,
    register_cell,
)
from rnn_jax.layers import (
    Bidirectional,
    Recurrence,
    RecurrenceOptions,
    RecurrentStack,
    bidirectional,
    length_mask,
)
from rnn_jax.models import (
    SentimentClassifier,
    SequenceRegressor,
    SequenceTagger,
    count_params,
    create_model,
    summary,
)

__all__ = [
    "CELLS",
    "LINEAR_CELLS",
    "Bidirectional",
    "GRUCell",
    "LSTMCell",
    "LinearRecurrentCell",
    "MinGRUCell",
    "MinLSTMCell",
    "MinimalGatedCell",
    "RGLRUCell",
    "RecurrenceOptions",
    "Recurrence",
    "RecurrentCell",
    "RecurrentStack",
    "SentimentClassifier",
    "SequenceRegressor",
    "SequenceTagger",
    "SimpleRNNCell",
    "bidirectional",
    "count_params",
    "create_model",
    "get_cell_class",
    "is_linear",
    "length_mask",
    "register_cell",
    "summary",
    "testing",
]
