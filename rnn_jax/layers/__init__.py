"""The recurrence over time: masks, reverse, bidirectional pairs, stacks, and the scan maths.

``recurrence`` unrolls any cell (``Recurrence``, ``Bidirectional``, ``RecurrentStack``); how a
cell's sequence is evaluated (masked ``lax.scan``, the linear recurrence of a cell linear in h,
a cell's fused kernel) and every ``"auto"`` is decided in one place, ``evaluation``; ``scan`` is
the pure maths of ``h_t = a_t h_{t-1} + b_t``. Names no particular cell. Imports ``cells``.
"""

from rnn_jax.layers.evaluation import (
    INPUT_PROJECTIONS,
    LSTM_BACKENDS,
    TIME_PARALLEL,
    Plan,
    RecurrenceOptions,
    resolve,
)
from rnn_jax.layers.recurrence import (
    Bidirectional,
    Recurrence,
    RecurrentStack,
    bidirectional,
    last_real_step,
    length_mask,
)
from rnn_jax.layers.scan import linear_recurrence

__all__ = [
    "INPUT_PROJECTIONS",
    "LSTM_BACKENDS",
    "TIME_PARALLEL",
    "Bidirectional",
    "Plan",
    "RecurrenceOptions",
    "RecurrentStack",
    "Recurrence",
    "bidirectional",
    "last_real_step",
    "length_mask",
    "linear_recurrence",
    "resolve",
]
