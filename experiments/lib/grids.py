"""What the speed studies time: lists of ``timing.Spec``, written once for every study.

A spec is a line saying which candidate and the function that compiles it
(``experiments.lib.candidates``); nothing is compiled until ``timing.build_candidates`` runs it,
so a study can list a whole grid and build it one shape at a time. Each function gives one kind
of row: rnn_jax at several unrolls, its variants (the other input projection, bfloat16), a cell
linear in h in each evaluation of its recurrence, and the peers of a cell. A study composes its
grid from them in the order its tables list the rows.
"""

import functools
from collections.abc import Sequence

from experiments.lib import candidates
from experiments.lib.timing import Spec

TIME_MODES = ("sequential", "parallel")


def rnn_jax_spec(cell: str, shape: dict, batch: dict, fixed: dict | None = None, **variant) -> Spec:
    """``candidates.rnn_jax_candidate(cell, ..., **variant)``, named by its options.

    Args:
      cell: a name in ``rnn_jax.cells.CELLS``.
      shape: the timing shape (``timing.COURSE_SHAPE``'s keys).
      batch: ``timing.make_batch(shape)``.
      fixed: options every spec of this cell takes unless ``variant`` names them (e.g.
        ``lstm_backend="scan"``, where ``"auto"`` would pick cuDNN on a GPU).
      **variant: ``rnn_jax_candidate``'s keyword options.
    """
    for key, value in (fixed or {}).items():
        variant.setdefault(key, value)
    words = ", ".join(f"{k}={v}" for k, v in variant.items())
    build = functools.partial(candidates.rnn_jax_candidate, cell, shape, batch, **variant)
    return f"rnn_jax {cell} {words}".strip(), build


def other_input_projection() -> str:
    """The place for ``x W`` that ``input_projection="auto"`` does not pick on this backend."""
    from rnn_jax.cells import CELLS
    from rnn_jax.layers import RecurrenceOptions, resolve

    # The rule is one for every cell that can project apart; the GRU stands for them all.
    auto = resolve(CELLS["gru"](features=1), RecurrenceOptions())
    return "in_step" if auto.project_before_scan else "before_scan"


def unroll_specs(
    cell: str, shape: dict, batch: dict, unrolls: Sequence[int], fixed: dict | None = None
) -> list[Spec]:
    """``cell`` at each ``lax.scan`` unroll of ``unrolls``."""
    return [rnn_jax_spec(cell, shape, batch, fixed, unroll=unroll) for unroll in unrolls]


def variant_specs(cell: str, shape: dict, batch: dict, fixed: dict | None = None) -> list[Spec]:
    """The other input projection (a cell non-linear in h only) and bfloat16 compute."""
    from rnn_jax.cells import CELLS, is_linear

    specs = []
    if not is_linear(CELLS[cell]):  # A cell linear in h projects its inputs once, always.
        projection = other_input_projection()
        specs.append(rnn_jax_spec(cell, shape, batch, fixed, input_projection=projection))
    specs.append(rnn_jax_spec(cell, shape, batch, fixed, compute_dtype="bfloat16"))
    return specs


def time_mode_specs(
    cell: str, shape: dict, batch: dict, modes: Sequence[str] = TIME_MODES
) -> list[Spec]:
    """A cell linear in h with its recurrence evaluated in each of ``modes``."""
    return [rnn_jax_spec(cell, shape, batch, time_parallel=mode) for mode in modes]


def peer_specs(
    cell: str,
    shape: dict,
    batch: dict,
    *,
    keras: bool = False,
    torch: Sequence[bool] = (),
) -> list[Spec]:
    """Flax's ``nn.RNN`` of ``cell``; Keras's if asked; PyTorch's for each ``packed`` of ``torch``.

    Args:
      cell: one of ``candidates.PEER_CELLS``.
      shape: the timing shape.
      batch: ``timing.make_batch(shape)``.
      keras: add Keras 3 on TensorFlow.
      torch: PyTorch once per value, ``True`` on ``pack_padded_sequence``, ``False`` on the
        padded batch (empty: no PyTorch).
    """
    specs = [
        (f"flax nn.RNN {cell}", functools.partial(candidates.flax_candidate, cell, shape, batch))
    ]
    if keras:
        build = functools.partial(candidates.keras_candidate, cell, shape, batch)
        specs.append((f"keras {cell}", build))
    for packed in torch:
        build = functools.partial(candidates.torch_candidate, cell, shape, batch, packed=packed)
        specs.append((f"pytorch {cell}" + (" packed" if packed else ""), build))
    return specs


def experimental_lstm_spec(shape: dict, batch: dict, on_gpu: bool) -> Spec:
    """``jax.experimental.rnn.lstm`` in the same classifier (its CPU stand-in off a GPU)."""
    build = functools.partial(candidates.experimental_lstm_candidate, shape, batch, on_gpu)
    return f"{candidates.EXPERIMENTAL_RNN} lstm", build
