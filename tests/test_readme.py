"""The README's "adding a cell" examples work as written: one class, one registry line; a cell
with a parameter of its own."""

import inspect
import re
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import cells
from rnn_jax.models import SentimentClassifier, count_params
from rnn_jax.recurrence import Recurrence

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


def test_readme_peephole_example_adds_a_parameter_of_its_own_to_the_lstm():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(b for b in blocks if "class PeepholeLSTMCell" in b)
    namespace = {"LSTMCell": cells.LSTMCell, "nn": nn, "jnp": jnp}
    exec(example, namespace)
    peephole = Recurrence(namespace["PeepholeLSTMCell"](features=5), return_sequences=True)
    lstm = Recurrence(cells.LSTMCell(features=5), return_sequences=True)
    x = jax.random.normal(jax.random.key(1), (2, 6, 3))
    params = peephole.init(jax.random.key(0), x)["params"]
    assert params["cell"]["peephole"].shape == (3, 5)
    # Peepholes at zero (their init): exactly the LSTM with the same other parameters.
    without = {"cell": {k: v for k, v in params["cell"].items() if k != "peephole"}}
    _, outputs = peephole.apply({"params": params}, x)
    _, expected = lstm.apply({"params": without}, x)
    np.testing.assert_array_equal(outputs, expected)
    # ... and every peephole weight is trained.
    grads = jax.grad(lambda p: peephole.apply({"params": p}, x)[1].sum())(params)
    assert bool(jnp.all(grads["cell"]["peephole"] != 0))
