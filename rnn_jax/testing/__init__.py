"""The conformance check a researcher runs on any cell: ``check_cell(cell_class, **kwargs)``.

Also a command line, one line per property::

    python -m rnn_jax.testing my_cells:IndRNNCell
    python -m rnn_jax.testing lstm

What it proves, each against the cell's own step run in a Python loop: the contract (shapes,
dtypes, ``initialize_carry``, extra leading axes); ``__call__ == step(project_inputs(x))``; the
layer equals the loop on every scan path (input projection in the step and before it, unroll
with remat; for a linear cell, sequential and parallel), in both directions; resets (a reset
step starts from the initial carry, and what follows equals those steps run alone); jit equals
eager; float64 finite-difference gradients of outputs and final carry with respect to
parameters, inputs and initial carry; pre-, post- and un-padded sequences end in the same state;
a reverse layer starts at the true last token; ``flax.linen.RNN`` runs it; 10,000 steps stay
finite forward and backward; bfloat16 runs finite; and for a cell linear in h, that its final
state is affine in its initial one (its parallel evaluation is among the layer's paths). A
cell's fused kernel (cuDNN on a GPU) is checked by its own tests: it needs the device. Imports
``cells`` and ``layers``.
"""

import functools
import time
from collections.abc import Callable

from rnn_jax.cells import get_cell_class
from rnn_jax.testing.properties import check_properties


def check_cell(
    cell_class: type | str,
    *,
    report: Callable[[str, bool, str, float], None] | None = None,
    **cell_kwargs,
) -> list[str]:
    """Checks every property of a cell class; raises naming each property that fails.

    Args:
      cell_class: the cell class (any Flax cell built as ``cell_class(features=H, **kwargs)``),
        or a name the registry knows (``"lstm"``, ``"package.module:ClassName"``).
      report: called after each property with ``(name, passed, detail, seconds)``.
      **cell_kwargs: passed to the cell's constructor (e.g. ``reset_after=False``).

    Returns:
      The names of the properties checked.

    Raises:
      AssertionError: ``"check_cell(Cls): <property>: <what differs>; ..."`` for every failing
        property.
    """
    if isinstance(cell_class, str):
        cell_class = get_cell_class(cell_class)
    failures, names = [], []
    try:
        checks = check_properties(cell_class, cell_kwargs)
    except Exception as error:  # The cell cannot even be built and initialized.
        checks = [("contract", functools.partial(_reraise, error))]
    for name, check in checks:
        start = time.perf_counter()
        try:
            detail, passed = check(), True
        except Exception as error:  # A crash is a failed property too, named like the others.
            detail, passed = _first_line(error), False
            failures.append(f"{name}: {detail}")
        names.append(name)
        if report is not None:
            report(name, passed, detail, time.perf_counter() - start)
    if failures:
        raise AssertionError(f"check_cell({cell_class.__name__}): " + "; ".join(failures))
    return names


def _reraise(error: Exception):
    raise error


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines() or [""]
    return f"{type(error).__name__}: {lines[0]}"


__all__ = ["check_cell"]
