"""Shared fixtures for the rnn_jax core tests."""

import jax
import pytest


@pytest.fixture
def x64():
    """Float64 for the duration of one test only (does not leak into other tests)."""
    with jax.enable_x64(True):
        yield
