"""Cell variants the lab compares with the registered cells, named ``module:Class``.

They live outside the package, as a researcher's own cells do: the lab, ``check_cell`` and the
training command take them by path (``experiments.lib.lab.variants:NegativeDecayMinGRUCell``).
"""

from rnn_jax import MinGRUCell


class NegativeDecayMinGRUCell(MinGRUCell):
    """minGRU whose decay may be negative, as Grazzi et al. 2024 propose for linear RNNs.

    ("Unlocking state-tracking in linear RNNs through negative eigenvalues", arXiv:2411.12537.)
    One edit of the minGRU: its decay ``a = 1 - z`` in (0, 1) becomes ``2 a - 1`` in (-1, 1),
    so a unit can flip its sign at a step, which a parity automaton needs; ``b = z * h~`` is
    the minGRU's. The bias starts as the minGRU's, so the initial decays lie in
    ``2 * decay_range - 1`` (0.8 to 0.998).
    """

    label = "minGRU, a in (-1, 1)"

    def coefficients(self, xw):
        """``(2 (1 - z) - 1, z * h~)`` from ``x W + b`` <[..., 2H]>, each <[..., H]>."""
        a, b = super().coefficients(xw)
        return 2.0 * a - 1.0, b
