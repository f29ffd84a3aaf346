"""The README's "adding a cell" example works as written: one class, one registry line."""

import inspect
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import cells
from rnn_jax.models import SentimentClassifier, count_params

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_cell_example_registers_a_working_cell(monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(b for b in blocks if "CELLS[" in b)
    package = dict(cells.CELLS)
    registry = dict(package)
    monkeypatch.setattr(cells, "CELLS", registry)  # The example's registration stays local.
    exec(example, {"RecurrentCell": cells.RecurrentCell, "jnp": jnp, "CELLS": registry})
    (name,) = {name for name, cell in registry.items() if cell.__module__ != cells.__name__}
    # The README shows the package's own fourth cell, letter for letter.
    class_code = example.split("\n\n\nCELLS[")[0] + "\n"
    assert class_code == inspect.getsource(package[name])

    model = SentimentClassifier(vocab_size=20, embed_dim=4, cell=name, hidden_size=5)
    post = jnp.array([[5, 6, 7, 0, 0]])
    pre = jnp.array([[0, 0, 5, 6, 7]])
    variables = model.init(jax.random.key(0), post)
    # Two gates: kernel [4, 10], recurrent kernel [5, 10], bias [10]; embedding 80, head 6.
    assert count_params(variables["params"]) == 40 + 50 + 10 + 80 + 6
    np.testing.assert_allclose(model.apply(variables, post), model.apply(variables, pre), rtol=1e-6)
    grads = jax.grad(lambda p: model.apply({"params": p}, post).sum())(variables["params"])
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
