"""Evaluating ``h_t = a_t * h_{t-1} + b_t`` over time: step by step, or as an associative scan.

The recurrence of a cell linear in h (``rnn_jax.cells.linear``) once its coefficients are known
for every step. ``lax.scan`` takes T steps of ``a * h + b``; ``lax.associative_scan`` takes
O(log T) steps of O(T) work, because two steps compose into one step of the same form. Which one
a layer uses is decided in ``rnn_jax.layers.evaluation``. Pure maths: imports JAX only.
"""

import jax

Array = jax.Array


def linear_recurrence(
    a: Array, b: Array, h0: Array, *, parallel: bool, reverse: bool, unroll: int = 1
) -> Array:
    """Every state of ``h_t = a_t * h_{t-1} + b_t``, time-major.

    Args:
      a: <float>[time, batch, H], the decays a_t.
      b: <float>[time, batch, H], the offsets b_t.
      h0: <float>[batch, H], the state before the first step (before the last if ``reverse``).
      parallel: evaluate with ``lax.associative_scan`` instead of ``lax.scan``.
      reverse: run from the last step to the first.
      unroll: ``lax.scan``'s unroll (sequential only).

    Returns:
      <float>[time, batch, H]: h_t for every t.
    """
    if not parallel:

        def step(h, coefficients):
            a_t, b_t = coefficients
            h = a_t * h + b_t
            return h, h

        return jax.lax.scan(step, h0, (a, b), reverse=reverse, unroll=unroll)[1]
    # The initial state enters as part of the first step's offset: b_first + a_first * h0.
    first = -1 if reverse else 0
    b = b.at[first].add(a[first] * h0)

    def compose(earlier, later):
        """Step ``earlier`` then step ``later``: ``h -> a_l (a_e h + b_e) + b_l``."""
        a_e, b_e = earlier
        a_l, b_l = later
        return a_l * a_e, a_l * b_e + b_l

    return jax.lax.associative_scan(compose, (a, b), reverse=reverse)[1]
