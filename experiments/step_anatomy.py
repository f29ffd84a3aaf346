"""Where an LSTM training step's time goes, on plain JAX scans at the course shape.

    python -m experiments.step_anatomy [--repeats N] [--quick] [--out DIR]

Times, interleaved round by round (median over rounds, compilation excluded), the pieces of the
recurrent layer's training step that the benchmark cannot separate:

* the forward scan, and the gradient (forward + backward) of its final state;
* the gradient with the recurrent kernel's gradient switched off (``stop_gradient``): JAX's
  scan transpose accumulates that gradient inside the backward loop, so the difference is what
  moving it out of the loop (one large matmul after it, as cuDNN does) could save at most;
* the same step with one matmul per gate (kernels split outside the scan) instead of one fused
  matmul whose result is sliced into gates;
* the dropout mask on the embedded batch <[B, T, E]> (threefry random bits on CPU).

The scans are written here in a few lines of plain JAX (no Flax, no masking), so each variant
differs from the others in exactly one thing.
"""

import statistics
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from experiments.lib import flags, reporting
from experiments.lib.reporting import Column

COURSE_SHAPE = {"batch": 64, "time": 200, "embed": 128, "hidden": 128}
QUICK_SHAPE = {"batch": 8, "time": 20, "embed": 16, "hidden": 16}

COLUMNS = (
    Column("piece", "piece"),
    Column("milliseconds", "ms (median)", "{:.1f}"),
    Column("vs_gradient", "/ fused gradient", "{:.2f}"),
)


def lstm_scan(params, xs, per_gate: bool = False, stop_recurrent_grad: bool = False):
    """Final hidden state of an LSTM over ``xs`` <float32>[T, B, E]; params (W, U, b)."""
    kernel, recurrent, bias = params
    if stop_recurrent_grad:
        recurrent = jax.lax.stop_gradient(recurrent)
    batch, hidden = xs.shape[1], recurrent.shape[0]
    gates = list(zip(*(jnp.split(p, 4, -1) for p in (kernel, recurrent, bias)), strict=True))

    def step(carry, x_t):
        c, h = carry
        if per_gate:
            i, f, g, o = [x_t @ w + h @ u + b for w, u, b in gates]
        else:
            i, f, g, o = jnp.split(x_t @ kernel + h @ recurrent + bias, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (c, h), None

    zeros = jnp.zeros((batch, hidden), xs.dtype)
    (_, h), _ = jax.lax.scan(step, (zeros, zeros), xs)
    return h


def pieces(shape: dict) -> tuple[dict[str, Callable[[], jax.Array]], str]:
    """Name -> a thunk running one compiled piece; and the name every ratio divides by."""
    b, t, e, h = shape["batch"], shape["time"], shape["embed"], shape["hidden"]
    keys = jax.random.split(jax.random.key(0), 4)
    params = (
        jax.random.normal(keys[0], (e, 4 * h)) * e**-0.5,
        jax.random.normal(keys[1], (h, 4 * h)) * h**-0.5,
        jnp.zeros(4 * h),
    )
    xs = jax.random.normal(keys[2], (t, b, e))

    def loss(params, **variant):
        return jnp.sum(lstm_scan(params, xs, **variant) ** 2)

    def dropout_mask(key):
        return jax.random.bernoulli(key, 0.8, (b, t, e))

    compiled = {
        "forward, fused gates": (jax.jit(lambda p: loss(p)), params),
        "forward, one matmul per gate": (jax.jit(lambda p: loss(p, per_gate=True)), params),
        "gradient, fused gates": (jax.jit(jax.grad(loss)), params),
        "gradient, one matmul per gate": (
            jax.jit(jax.grad(lambda p: loss(p, per_gate=True))),
            params,
        ),
        "gradient, recurrent kernel's gradient off": (
            jax.jit(jax.grad(lambda p: loss(p, stop_recurrent_grad=True))),
            params,
        ),
        "dropout mask [B, T, E] (0.2)": (jax.jit(dropout_mask), keys[3]),
    }
    thunks = {name: (lambda f=f, a=a: f(a)) for name, (f, a) in compiled.items()}
    return thunks, "gradient, fused gates"


def time_pieces(thunks: dict[str, Callable], repeats: int) -> dict[str, float]:
    """Median seconds per piece over ``repeats`` rounds, each round visiting every piece."""
    for thunk in thunks.values():  # Compile and warm up.
        jax.block_until_ready(thunk())
    seconds = {name: [] for name in thunks}
    for _ in range(repeats):
        for name, thunk in thunks.items():
            started = time.perf_counter()
            jax.block_until_ready(thunk())
            seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(s) for name, s in seconds.items()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = flags.make_parser("step_anatomy", __doc__.splitlines()[0], data=False, training=False)
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds")
    args = flags.parse(parser, argv)
    shape = QUICK_SHAPE if args.quick else COURSE_SHAPE
    repeats = 3 if args.quick else args.repeats
    report = reporting.Report(args, "Where an LSTM training step's time goes")
    thunks, reference = pieces(shape)
    medians = time_pieces(thunks, repeats)
    rows = [
        {"piece": name, "milliseconds": s * 1e3, "vs_gradient": s / medians[reference]}
        for name, s in medians.items()
    ]
    report.text(
        f"Batch {shape['batch']}, {shape['time']} steps, embedding {shape['embed']}, hidden "
        f"{shape['hidden']}, float32, one JAX device ({jax.default_backend()}); median of "
        f"{repeats} interleaved rounds after compilation."
    )
    report.table("table", rows, COLUMNS, "Pieces of the step")
    report.finish()


if __name__ == "__main__":
    main()
