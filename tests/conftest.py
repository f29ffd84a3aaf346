"""Shared fixtures for the rnn_jax core tests."""

import atexit
import os
import shutil
import tempfile

# The tests check what our programs compute, not how well LLVM optimizes them: XLA's own
# passes (fusion, layout, scheduling) still run, only the CPU code generation is unoptimized.
# Compiling is most of the suite's time, and this cuts it by about a third. Set before JAX
# starts; the test subprocesses that copy this environment compile the same way.
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0"
# Tests that start processes with several CPU devices run while other tests load both cores: a
# device's thread can then reach XLA's CPU all-reduce more than its default 40 s late, which
# aborts the process (CI, "Termination timeout for all reduce"). Training raises that wait
# itself; the tests' own scripts, which start JAX first, get it here.
parallel_wait = "--xla_cpu_collective_call_terminate_timeout_seconds=3600"
os.environ["XLA_FLAGS"] = f"{os.environ['XLA_FLAGS']} {parallel_wait}"

# Many tests compile the same small programs (the tiny model, the same cell at the same shapes):
# JAX's persistent cache shares them across the session's tests, its xdist workers (which
# inherit this environment) and the processes tests start. A fresh folder per session, removed
# at its end; a cache hit returns the same executable, so no result changes (test_train.py: 101
# s -> 71 s on 2 cores).
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    cache = tempfile.mkdtemp(prefix="rnn_jax_tests_xla_")
    atexit.register(shutil.rmtree, cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import jax  # noqa: E402 -- after XLA_FLAGS, which JAX reads once.
import pytest  # noqa: E402


@pytest.fixture
def x64():
    """Float64 for the duration of one test only (does not leak into other tests)."""
    with jax.enable_x64(True):
        yield
