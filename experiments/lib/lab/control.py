"""The cell lab's memoryless control: a cell without recurrence, named ``control`` in the lab.

A task that this cell passes beyond its trivial lengths does not test memory: the lab runs it
beside every cell (``python -m experiments.lab --cells control,...``). It follows the cell
contract (``python -m rnn_jax.testing experiments.lib.lab_control:MemorylessCell``). The lab
resolves the name itself (``cell_spec``) instead of registering it: a registration would add
it to ``rnn_jax.CELLS`` for every program that imports the lab, and those iterate the built-in
cells.
"""

from rnn_jax import RecurrentCell

CONTROL = "control"
SPEC = "experiments.lib.lab_control:MemorylessCell"


class MemorylessCell(RecurrentCell):
    """``h_t = act(x_t W + b)``: each step sees only its own input; the carry is ignored.

    Parameters: ``kernel`` <[in, H]> and ``bias`` <[H]>, no recurrent kernel.
    """

    label = "control (no recurrence)"

    def make_recurrent_params(self) -> None:
        """No recurrent parameter: nothing connects one step to the next."""

    def step(self, h, xw):
        """``(h <[batch, H]>, xw <[batch, H]>) -> (act(xw), act(xw))``; ``h`` is not read."""
        del h  # The point of the control: the previous state cannot reach the output.
        h = self.activation(xw)
        return h, h


def cell_spec(name: str) -> str:
    """The name the registry resolves for a lab cell: ``control`` is this module's cell."""
    return SPEC if name == CONTROL else name
