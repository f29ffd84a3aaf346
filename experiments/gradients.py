"""Vanishing gradients, measured: how much the loss feels each input step, per cell.

    python -m experiments.gradients [--quick] [--out DIR] [--workdirs SHOOTOUT_WORKDIRS]

For each cell of the shootout, untrained (the config's fresh initialization) and trained (the
best checkpoint of ``<workdirs>/<cell>``, the shootout's runs; trained here first if missing), the
norm of d(loss)/d(embedded input at step t) is averaged over real validation reviews and plotted
against the distance from the last token. A cell whose gradient decays fast cannot learn from
early tokens.
"""

import argparse
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.lib import flags, reporting, shootout_runs
from experiments.lib.gradient_decay import VANISHED, steps_to_vanish, vanish_text
from experiments.lib.reporting import Column, cell_label

NUM_REVIEWS = 64

COLUMNS = (
    Column("cell", "cell"),
    Column("state", "parameters"),
    Column("last", "norm at last token", "{:.3g}"),
    Column("first", "norm at first token", "{:.3g}"),
    Column("ratio", "first / last", "{:.3g}"),
    Column("steps_to_vanish", f"steps back until < {VANISHED:.0%} of last", "{}"),
)


def full_reviews(config, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` validation reviews with at least ``max_len`` tokens.

    They fill every step (pre-truncation keeps their last ``max_len`` tokens), so step t is a
    real token for every review and "k steps back from the last token" means the same thing for
    all of them; with padding it would not, and masked steps get no gradient at all.

    Returns:
      ``token_ids`` <int32>[n, max_len] and ``labels`` <int32>[n], n <= count.
    """
    from rnn_jax.data import input_pipeline

    data = input_pipeline.load_imdb_for(config)
    rows = np.flatnonzero(data.full_lengths["validation"] >= config.max_len)[:count]
    return data.validation["token_ids"][rows], data.validation["label"][rows]


def step_gradient_norms(model, params, token_ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean over reviews of ``||d loss / d x_t||_2``, indexed by steps back from the last token.

    The model adds a zero "perturbation" to its embedded tokens; the gradient with respect to
    it is the gradient with respect to the embedded input x_t of every step.

    Returns:
      <float>[max_len]: element k is the mean norm at ``k`` steps before the last token.
    """
    zeros = jnp.zeros((*token_ids.shape, model.embed_dim), jnp.float32)
    targets = jnp.asarray(labels, jnp.float32)

    def total_loss(perturbation):
        variables = {"params": params, "perturbations": {"embedded": perturbation}}
        logits = model.apply(variables, token_ids)
        # A sum, not a mean: a review's loss depends only on its own inputs, so the sum's
        # gradient at review b is the gradient of b's own loss (a mean would scale it by 1/B).
        return optax.sigmoid_binary_cross_entropy(logits, targets).sum()

    grads = jax.jit(jax.grad(total_loss))(zeros)  # <[batch, time, embed]>
    norms = jnp.linalg.norm(grads, axis=-1).mean(axis=0)
    return np.asarray(norms)[::-1]


def decay_row(cell: str, state: str, norms: np.ndarray) -> dict:
    """Table row: norms at both ends, their ratio, and how far back the gradient survives."""
    return {
        "cell": cell_label(cell),
        "state": state,
        "last": float(norms[0]),
        "first": float(norms[-1]),
        "ratio": float(norms[-1] / norms[0]),
        "steps_to_vanish": vanish_text(steps_to_vanish(norms), len(norms)),
    }


def measure(cell: str, args: argparse.Namespace) -> tuple[object, dict[str, np.ndarray]]:
    """The run's config and ``{"untrained": norms, "trained": norms}`` of one cell.

    The shootout run of ``cell`` is trained first if it is missing.
    """
    from rnn_jax.inference import runs as inference
    from rnn_jax.training import train_steps

    run = inference.load_run(str(shootout_runs.finished_workdir(cell, args)))
    token_ids, labels = full_reviews(run.config, NUM_REVIEWS)
    fresh = train_steps.create_train_state(run.config, run.model, steps_per_epoch=1).params
    return run.config, {
        "untrained": step_gradient_norms(run.model, fresh, token_ids, labels),
        "trained": step_gradient_norms(run.model, run.state.params, token_ids, labels),
    }


def norms_figure(norms: dict[str, dict[str, np.ndarray]]):
    """Two panels (untrained, trained), one line per cell, log-scale gradient norm."""
    fig, axes = reporting.new_figure(1, 2, width=6.0, height=4.2, sharey=True)
    for ax, state in zip(axes, ("untrained", "trained"), strict=True):
        for cell, by_state in norms.items():
            ax.plot(np.arange(len(by_state[state])), by_state[state], label=cell_label(cell))
        ax.set_yscale("log")
        ax.set_xlabel("time steps back from the last token")
        ax.set_title(f"{state.capitalize()} parameters")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    axes[0].set_ylabel("mean ||d loss / d x_t|| (log scale)")
    return fig


def main(argv: Sequence[str] | None = None) -> None:
    # This script trains nothing of its own: it reads (or fills in) the shootout's runs.
    parser = flags.make_parser("gradients", __doc__.splitlines()[0], workdirs_of="shootout")
    args = flags.parse(parser, argv)
    report = reporting.Report(args, "Vanishing gradients: d(loss)/d(input at step t)")
    norms = {}
    for cell in shootout_runs.COURSE:
        config, norms[cell] = measure(cell, args)
    report.text(
        f"{NUM_REVIEWS} validation reviews of at least max_len={config.max_len} tokens (so every "
        "step is a real token), per-review loss, gradient norm averaged over the reviews. "
        f"Trained: the shootout's best checkpoints in `{args.workdirs}`; untrained: the same "
        "configs' initialization (seed "
        f"{config.seed})."
    )
    rows = [decay_row(c, s, n) for c, by_state in norms.items() for s, n in by_state.items()]
    report.table("table", rows, COLUMNS, "Gradient norm at the first vs the last token")
    report.figure(
        "gradient_norms",
        norms_figure(norms),
        "Gradient norm of the loss w.r.t. the embedded input at each step (log scale)",
    )
    report.finish()


if __name__ == "__main__":
    main()
