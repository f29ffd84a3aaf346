"""Shared fixtures for the rnn_jax core tests."""

import os

# The tests check what our programs compute, not how well LLVM optimizes them: XLA's own
# passes (fusion, layout, scheduling) still run, only the CPU code generation is unoptimized.
# Compiling is most of the suite's time, and this cuts it by about a third. Set before JAX
# starts; the test subprocesses that copy this environment compile the same way.
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0"

import jax  # noqa: E402 -- after XLA_FLAGS, which JAX reads once.
import pytest  # noqa: E402


@pytest.fixture
def x64():
    """Float64 for the duration of one test only (does not leak into other tests)."""
    with jax.enable_x64(True):
        yield
