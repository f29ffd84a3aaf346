"""``check_cell``: the properties every recurrent cell must have, checked on any cell class.

A cell is checked against its own single step (``__call__``, Flax's contract) run in a plain
Python loop: that loop is the definition of what the cell computes over time, and every faster
path (the masked scan, the hoisted input projection, the linear recurrence, jit, ``nn.RNN``)
must agree with it. Each property is one function below; a failure is an ``AssertionError``
whose message starts with the property's name.
"""

import dataclasses
import functools
import inspect
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

from rnn_jax.cells import is_linear
from rnn_jax.layers import Recurrence, RecurrenceOptions

# Small and all different, so a transposed axis cannot pass by accident.
BATCH, TIME, IN_FEATURES, HIDDEN = 3, 6, 4, 5
LENGTHS = np.array([TIME, 2, 0])  # A full row, a short one, and one without a real step.
# Where each row restarts: mid-row, on the short row's last real step, and on a padded step
# (which does nothing).
RESETS = np.zeros((BATCH, TIME), bool)
RESETS[0, 3] = RESETS[1, 1] = RESETS[2, 0] = True
LONG_TIME = 10_000
TIGHT = {"rtol": 1e-9, "atol": 1e-9}  # float64: only summation order may differ.


@dataclasses.dataclass
class Subject:
    """The cell under test, its float64 parameters and inputs."""

    cell: nn.Module
    params: dict
    x: jax.Array  # <float64>[BATCH, TIME, IN_FEATURES]
    mask: jax.Array  # <bool>[BATCH, TIME], post-padding
    carry: object  # a random float64 initial carry, leaves <[BATCH, ...]>


def _normal(seed: int, shape, scale: float = 1.0) -> jax.Array:
    return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape), jnp.float64)


def _row(tree, row: int):
    """Row ``row`` of every leaf, keeping the batch axis."""
    return jax.tree.map(lambda leaf: leaf[row : row + 1], tree)


def _as_f64(tree):
    return jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.float64), tree)


def make_subject(cell_class: type, cell_kwargs: dict) -> Subject:
    """The cell with perturbed float64 parameters (so no term sits at a special value)."""
    cell = cell_class(features=HIDDEN, **cell_kwargs)
    step_x = jnp.zeros((BATCH, IN_FEATURES), jnp.float32)
    carry = cell.initialize_carry(jax.random.key(0), step_x.shape)
    params = _as_f64(cell.init(jax.random.key(1), carry, step_x)["params"])
    leaves, tree = jax.tree.flatten(params)
    noise = [_normal(10 + i, leaf.shape, 0.3) for i, leaf in enumerate(leaves)]
    params = jax.tree.unflatten(tree, [p + n for p, n in zip(leaves, noise, strict=True)])
    mask = jnp.arange(TIME)[None, :] < LENGTHS[:, None]
    x = _normal(2, (BATCH, TIME, IN_FEATURES))
    x = jnp.where(mask[..., None], x, 1e3)  # Garbage on padded steps: it must never leak in.
    leaves, tree = jax.tree.flatten(_as_f64(carry))
    carry = jax.tree.unflatten(tree, [_normal(20 + i, c.shape, 0.5) for i, c in enumerate(leaves)])
    return Subject(cell, params, x, mask, carry)


def step(subject: Subject, carry, x_t):
    """One application of the cell's own ``__call__``."""
    return subject.cell.apply({"params": subject.params}, carry, x_t)


def _keep_where(keep, new, old):
    """``new`` on the rows where ``keep`` <bool>[batch], else ``old``."""
    return jnp.where(keep.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)


def python_loop(subject: Subject, x, mask, carry, *, reverse: bool = False, reset=None):
    """The reference: the cell's ``__call__`` once per real step, the state frozen on padding.

    ``reset`` <bool>[batch, time]: a real step where it is True starts from the cell's initial
    carry (``initialize_carry``) instead of the state before it.

    Returns:
      ``(final_carry, outputs)``, outputs <[batch, time, H]> zero on padded steps.
    """
    fresh = _as_f64(subject.cell.initialize_carry(jax.random.key(0), x[:, 0].shape))
    outputs = [None] * x.shape[1]
    for t in reversed(range(x.shape[1])) if reverse else range(x.shape[1]):
        if reset is not None:
            restart = reset[:, t] & mask[:, t]
            carry = jax.tree.map(functools.partial(_keep_where, restart), fresh, carry)
        new_carry, y = step(subject, carry, x[:, t])
        carry = jax.tree.map(functools.partial(_keep_where, mask[:, t]), new_carry, carry)
        outputs[t] = jnp.where(mask[:, t, None], y, 0.0)
    return carry, jnp.stack(outputs, axis=1)


DEFAULT_OPTIONS = RecurrenceOptions()


def layer_run(
    subject: Subject, x, mask, carry, *, reverse=False, options=DEFAULT_OPTIONS, reset=None
):
    layer = Recurrence(subject.cell, return_sequences=True, reverse=reverse, options=options)
    return layer.apply({"params": {"cell": subject.params}}, x, mask, carry, reset)


def _close(name: str, actual, expected, **tol) -> None:
    actual_leaves, expected_leaves = jax.tree.leaves(actual), jax.tree.leaves(expected)
    assert jax.tree.structure(actual) == jax.tree.structure(expected), f"{name}: tree differs"
    for a, e in zip(actual_leaves, expected_leaves, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), err_msg=name, **(tol or TIGHT))


# --------------------------------------------------------------------------- the properties


def contract(subject: Subject) -> str:
    """Carry and output shapes and dtypes; ``initialize_carry``; extra leading axes."""
    cell = subject.cell
    for batch in [(BATCH,), (2, 3)]:
        x_t = jnp.zeros((*batch, IN_FEATURES), jnp.float32)
        carry = cell.initialize_carry(jax.random.key(0), x_t.shape)
        params = cell.init(jax.random.key(1), carry, x_t)["params"]
        new_carry, y = cell.apply({"params": params}, carry, x_t)
        shapes = jax.tree.map(lambda c: (c.shape, c.dtype), carry)
        assert jax.tree.map(lambda c: (c.shape, c.dtype), new_carry) == shapes, (
            f"the new carry's shapes/dtypes {jax.tree.map(lambda c: (c.shape, c.dtype), new_carry)}"
            f" differ from initialize_carry's {shapes} for inputs {x_t.shape}"
        )
        assert y.shape == (*batch, HIDDEN), f"output shape {y.shape}, expected {(*batch, HIDDEN)}"
        dtypes = {c.dtype for c in jax.tree.leaves(new_carry)}
        assert dtypes == {y.dtype}, f"carry dtypes {sorted(map(str, dtypes))} != output {y.dtype}"
        assert all(c.shape[: len(batch)] == batch for c in jax.tree.leaves(carry)), (
            "the carry's leading axes are not the inputs' batch axes"
        )
    return f"carry {jax.tree.map(lambda c: c.shape, carry)}, output {y.shape}, {y.dtype}"


def call_is_step_of_projection(subject: Subject) -> str:
    """``__call__(carry, x) == step(carry, project_inputs(x))`` (what the hoisted path runs)."""
    if not hasattr(subject.cell, "project_inputs"):
        return "not applicable: the cell has no project_inputs/step split"
    variables = {"params": subject.params}
    x_t = subject.x[:, 0]
    xw = subject.cell.apply(variables, x_t, method="project_inputs")
    split = subject.cell.apply(variables, subject.carry, xw, method="step")
    _close("__call__ vs step(project_inputs)", step(subject, subject.carry, x_t), split)
    return "equal"


def layer_paths(subject: Subject) -> list[RecurrenceOptions]:
    """Every way ``Recurrence`` can evaluate the cell here (a fused kernel needs its device)."""
    if is_linear(subject.cell):
        return [RecurrenceOptions(time_parallel=mode) for mode in ("sequential", "parallel")]
    paths = [
        RecurrenceOptions(input_projection="in_step"),
        RecurrenceOptions(input_projection="in_step", unroll=2, remat=True),
    ]
    if hasattr(subject.cell, "project_inputs"):
        paths.append(RecurrenceOptions(input_projection="before_scan"))
    return paths


def layer_equals_loop(subject: Subject) -> str:
    """``Recurrence`` (every evaluation path, both directions) equals the Python loop."""
    paths = layer_paths(subject)
    for reverse in (False, True):
        expected = python_loop(subject, subject.x, subject.mask, subject.carry, reverse=reverse)
        for options in paths:
            actual = layer_run(
                subject, subject.x, subject.mask, subject.carry, reverse=reverse, options=options
            )
            _close(f"Recurrence(reverse={reverse}, {options}) vs loop", actual, expected)
    return f"{len(paths)} path(s) x 2 directions"


def resets_restart_the_state(subject: Subject) -> str:
    """A reset step starts from the initial carry, on every path and in both directions.

    The layer with resets equals the Python loop that swaps in ``initialize_carry`` at those
    steps; and what follows a reset equals the same steps run alone from the initial carry (so
    nothing before a reset reaches past it, whatever the incoming carry).
    """
    reset = jnp.asarray(RESETS)
    paths = layer_paths(subject)
    for reverse in (False, True):
        expected = python_loop(
            subject, subject.x, subject.mask, subject.carry, reverse=reverse, reset=reset
        )
        for options in paths:
            actual = layer_run(
                subject,
                subject.x,
                subject.mask,
                subject.carry,
                reverse=reverse,
                options=options,
                reset=reset,
            )
            _close(
                f"Recurrence(reverse={reverse}, {options}) with resets vs loop", actual, expected
            )
    carry, outputs = layer_run(subject, subject.x, subject.mask, subject.carry, reset=reset)
    start = int(np.argmax(RESETS[0]))
    alone = layer_run(subject, subject.x[:1, start:], None, None)
    _close(
        "after a reset vs the same steps alone from the initial carry",
        (_row(carry, 0), outputs[:1, start:]),
        alone,
    )
    return f"{len(paths)} path(s) x 2 directions"


def jit_equals_eager(subject: Subject) -> str:
    """The jitted layer and step compute what the eager ones do."""
    run = jax.jit(lambda p, x, c: layer_run(dataclasses.replace(subject, params=p), x, None, c))
    eager = layer_run(subject, subject.x, None, subject.carry)
    _close("jit(layer) vs eager", run(subject.params, subject.x, subject.carry), eager)
    jitted_step = jax.jit(lambda c, x: step(subject, c, x))
    _close(
        "jit(step) vs eager",
        jitted_step(subject.carry, subject.x[:, 0]),
        step(subject, subject.carry, subject.x[:, 0]),
    )
    return "equal"


def gradients(subject: Subject) -> str:
    """float64 finite differences of outputs and final carry w.r.t. params, inputs and carry."""
    modes = ("sequential", "parallel") if is_linear(subject.cell) else ("auto",)
    for mode in modes:  # A linear cell's two evaluations have different backward passes.
        options = RecurrenceOptions(time_parallel=mode)

        def run(params, x, carry, options=options):
            subject_p = dataclasses.replace(subject, params=params)
            return layer_run(subject_p, x, subject.mask, carry, options=options)

        try:
            check_grads(run, (subject.params, subject.x, subject.carry), order=1, modes=("rev",))
        except AssertionError as error:
            first = str(error).strip().splitlines()[0]
            raise AssertionError(
                f"reverse-mode gradients ({mode}) differ from finite differences ({first})"
            ) from None
    return f"reverse mode matches central differences ({', '.join(modes)})"


def padding_invariance(subject: Subject) -> str:
    """Pre-, post- and un-padded copies of each sequence end in the same state."""
    post_carry, _ = layer_run(subject, subject.x, subject.mask, subject.carry)
    pre_x = jnp.stack(
        [jnp.roll(row, TIME - n, axis=0) for row, n in zip(subject.x, LENGTHS, strict=True)]
    )
    pre_mask = jnp.arange(TIME)[None, :] >= TIME - LENGTHS[:, None]
    pre_carry, _ = layer_run(subject, pre_x, pre_mask, subject.carry)
    _close("pre-padded vs post-padded final state", pre_carry, post_carry)
    for row, length in enumerate(LENGTHS):
        alone = _row(subject.carry, row)
        x = subject.x[row : row + 1, :length]
        expected = alone if length == 0 else layer_run(subject, x, None, alone)[0]
        actual = _row(post_carry, row)
        _close(f"padded vs unpadded final state (length {length})", actual, expected)
    return f"lengths {LENGTHS.tolist()} of {TIME}"


def reverse_starts_at_the_last_token(subject: Subject) -> str:
    """A reverse layer on padded rows equals a forward one on each row's reversed real steps."""
    carry, _ = layer_run(subject, subject.x, subject.mask, subject.carry, reverse=True)
    for row, length in enumerate(LENGTHS[LENGTHS > 0]):
        alone = _row(subject.carry, row)
        flipped = subject.x[row : row + 1, :length][:, ::-1]
        expected, _ = layer_run(subject, flipped, None, alone)
        _close(
            "reverse layer vs forward on reversed real steps",
            _row(carry, row),
            expected,
        )
    return "equal"


def runs_in_flax_rnn(subject: Subject) -> str:
    """``flax.linen.RNN(cell)`` computes what ``Recurrence`` does."""
    rnn = nn.RNN(subject.cell, return_carry=True)
    carry, outputs = rnn.apply(
        {"params": {"cell": subject.params}}, subject.x, initial_carry=subject.carry
    )
    _close(
        "flax.linen.RNN vs Recurrence",
        (carry, outputs),
        layer_run(subject, subject.x, None, subject.carry),
    )
    return "equal"


def long_sequences_stay_finite(subject: Subject) -> str:
    """T = 10,000 steps: outputs and gradients stay finite (float32, as trained)."""
    params = jax.tree.map(lambda p: p.astype(jnp.float32), subject.params)
    x = jnp.asarray(
        np.random.default_rng(3).standard_normal((2, LONG_TIME, IN_FEATURES)), jnp.float32
    )
    layer = Recurrence(subject.cell, return_sequences=True)

    def loss(params):
        return jnp.mean(layer.apply({"params": {"cell": params}}, x)[1] ** 2)

    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    assert np.isfinite(value), f"the loss over {LONG_TIME} steps is {value}"
    bad = [
        jax.tree_util.keystr(k)
        for k, g in jax.tree_util.tree_leaves_with_path(grads)
        if not np.all(np.isfinite(g))
    ]
    assert not bad, f"non-finite gradients over {LONG_TIME} steps in {bad}"
    return f"{LONG_TIME} steps forward and backward"


def bfloat16_runs(subject: Subject, cell_class: type, cell_kwargs: dict) -> str:
    """The cell computing in bfloat16 (``dtype=jnp.bfloat16``) returns finite bfloat16 outputs."""
    if "dtype" not in inspect.signature(cell_class).parameters:
        return "not applicable: the cell has no dtype field"
    cell = cell_class(features=HIDDEN, **{**cell_kwargs, "dtype": jnp.bfloat16})
    params = jax.tree.map(lambda p: p.astype(jnp.float32), subject.params)
    layer = Recurrence(cell, return_sequences=True)
    _, outputs = jax.jit(layer.apply)(
        {"params": {"cell": params}}, subject.x.astype(jnp.float32), subject.mask
    )
    assert outputs.dtype == jnp.bfloat16, f"outputs are {outputs.dtype}, not bfloat16"
    assert bool(jnp.all(jnp.isfinite(outputs))), "non-finite bfloat16 outputs"
    return "finite, bfloat16"


def linear_in_h(subject: Subject) -> str:
    """A cell claiming ``h_t = a_t h_{t-1} + b_t``: the final state is affine in the initial one.

    Checked on the cell's own steps (the Python loop), so a cell whose ``step`` is not what its
    ``coefficients`` say fails here, whatever the layer computes.
    """
    h1 = subject.carry
    h2 = jax.tree.map(lambda c: _normal(7, c.shape), h1)
    mix = jax.tree.map(lambda a, b: 0.3 * a + 0.7 * b, h1, h2)
    final = [python_loop(subject, subject.x, subject.mask, h)[0] for h in (h1, h2, mix)]
    expected = jax.tree.map(lambda a, b: 0.3 * a + 0.7 * b, final[0], final[1])
    _close("final state of a mixed initial state vs the mix of final states", final[2], expected)
    return "affine in the initial state"


def check_properties(cell_class: type, cell_kwargs: dict) -> list[tuple[str, Callable[[], str]]]:
    """``(name, check)`` for every property that applies to ``cell_class``."""
    with jax.enable_x64(True):
        subject = make_subject(cell_class, cell_kwargs)
    float64 = [
        ("contract", contract),
        ("__call__ == step(project_inputs)", call_is_step_of_projection),
        ("layer == Python loop", layer_equals_loop),
        ("resets restart the state", resets_restart_the_state),
        ("jit == eager", jit_equals_eager),
        ("float64 gradients", gradients),
        ("padding invariance", padding_invariance),
        ("reverse starts at the last real token", reverse_starts_at_the_last_token),
        ("flax.linen.RNN", runs_in_flax_rnn),
    ]
    if is_linear(cell_class):
        float64.append(("linear in h", linear_in_h))

    def in_x64(check):
        def run():
            with jax.enable_x64(True):
                return check(subject)

        return run

    checks = [(name, in_x64(check)) for name, check in float64]
    checks.append(("long sequences stay finite", lambda: long_sequences_stay_finite(subject)))
    checks.append(("bfloat16", lambda: bfloat16_runs(subject, cell_class, cell_kwargs)))
    return checks
