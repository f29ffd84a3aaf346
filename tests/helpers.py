"""Small helpers shared by several test files."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax.cells import CELLS, LINEAR_CELLS

NAMES = sorted(CELLS)
# Every registered cell with its defaults, plus the GRU's other convention.
VARIANTS = [pytest.param(n, {}, id=n) for n in NAMES] + [
    pytest.param("gru", {"reset_after": False}, id="gru-reset_before")
]
# VARIANTS with each input_projection, except that cells linear in h ignore it (their
# coefficients are always one matmul before the scan) and so run once.
PROJECTION_VARIANTS = [
    pytest.param(*variant.values, projection, id=f"{variant.id}-{projection}")
    for variant in VARIANTS
    for projection in ("before_scan", "in_step")
    if projection == "before_scan" or variant.values[0] not in LINEAR_CELLS
]

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
