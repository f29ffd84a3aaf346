"""Small helpers shared by several test files."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax.cells import CELLS
from tests.cell_specs import SPECS

NAMES = sorted(CELLS)
# Every registered cell with its defaults, plus the other conventions its spec names (the GRU's
# reset_after=False).
VARIANTS = [pytest.param(n, {}, id=n) for n in NAMES] + [
    pytest.param(n, kwargs, id=f"{n}-{suffix}")
    for n in NAMES
    if n in SPECS
    for suffix, kwargs in SPECS[n].variants
]
# The variants of the cells with a spec: what the tests against a reference run on (a built-in
# cell without one fails test_every_built_in_cell_has_a_spec alone).
SPEC_VARIANTS = [variant for variant in VARIANTS if variant.values[0] in SPECS]

# What summary.json must hold (the workdir contract, docs/design.md).
SUMMARY_KEYS = (
    "cell",
    "test_accuracy",
    "test_loss",
    "best_val_accuracy",
    "epochs",
    "train_seconds",
    "examples_per_second",
    "num_params",
)


def random_params(module, *args, seed=0, scale=0.5):
    """Random normal parameters with the shapes/dtypes ``module.init`` would create (no init)."""
    shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), *args))["params"]
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda s: jnp.asarray(scale * rng.standard_normal(s.shape), s.dtype), shapes
    )


def assert_trees_close(actual, expected, **tol):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), **tol)
