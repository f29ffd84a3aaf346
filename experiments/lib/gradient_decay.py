"""When a gradient through time has vanished: one rule for every study that measures it.

``experiments.gradients`` (IMDB checkpoints) and the cell lab's gradient horizons
(``lab_gradients``) both ask how many steps back from the last step a gradient norm survives;
both answer with ``steps_to_vanish``, so "vanished" means the same thing in both reports.
"""

import numpy as np

# "The gradient has vanished": below 1% of its value at the last step.
VANISHED = 0.01


def steps_to_vanish(norms: np.ndarray) -> int | None:
    """Steps back from the last step until the norm first falls below ``VANISHED`` of its start.

    Args:
      norms: <float>[time], indexed by steps back: element k is the gradient norm at ``k`` steps
        before the last step (element 0 is the last step itself).

    Returns:
      The first k with ``norms[k] < VANISHED * norms[0]``, or None when no element within the
      ``time`` steps falls below (the gradient survives more than ``time - 1`` steps back; a zero
      ``norms[0]`` has nothing to fall below, so it is None too).
    """
    vanished = np.flatnonzero(np.asarray(norms) < VANISHED * norms[0])
    return int(vanished[0]) if vanished.size else None


def vanish_text(steps: int | None, length: int) -> str:
    """``steps_to_vanish`` as tables show it: ``"37"``, or ``"> 511"`` when it never vanished.

    Args:
      steps: what ``steps_to_vanish`` returned.
      length: how many steps it looked at (``len(norms)``).
    """
    return f"> {length - 1}" if steps is None else str(steps)
