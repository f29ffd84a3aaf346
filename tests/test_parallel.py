"""The two data-parallel paths (``config.parallelism``) train the same numbers, bitwise.

A process of its own with 2 CPU devices trains one epoch of a tiny model on the real data under
``pmap`` and under ``shard_map`` for each kind of cell -- a classic one (LSTM), one linear in h
(minGRU) and a researcher's ``module:Class`` cell (the README's IndRNN, written here) -- and the
language model, whose streams' carries are sharded over the devices and gathered into its
checkpoints, with dropout and clipping on, and compares what the two runs leave: the history,
the test metrics and every array of the checkpoint. Multi-host runs and resuming across paths
and device counts are tested with real processes in ``tests/test_multihost.py``; the step on
its own against a hand-written reference in ``tests/test_train.py``.
"""

import textwrap

import pytest

from rnn_jax.training import parallel
from tests.test_train import run_script

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("subprocesses")]

RESEARCHER_CELL = '''
import flax.linen as nn

from rnn_jax import RecurrentCell


class IndRNNCell(RecurrentCell):
    """h' = act(x W + b + u * h), u <[H]> one recurrent weight per unit."""

    label = "IndRNN"

    def make_recurrent_params(self):
        init = nn.initializers.uniform(scale=1.0)
        self.param("recurrent_weight", init, (self.features,), self.param_dtype)

    def step(self, h, xw):
        h = self.activation(xw + self.read_param("recurrent_weight") * h)
        return h, h
'''

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np, orbax.checkpoint as ocp
    assert jax.device_count() == 2, jax.devices()
    from tests.test_language_model import tiny_lm_config
    from tests.test_multihost import by_name
    from tests.test_train import tiny_config
    from rnn_jax.training import train
    base, cache, cells = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    METRICS = ("step", "train_loss", "train_accuracy", "val_loss", "val_accuracy")
    out = {}
    for cell in cells:
        runs = {}
        for parallelism in ("pmap", "shard_map"):
            workdir = f"{base}/{cell.replace(':', '.')}/{parallelism}"
            # "lm": the language model, whose streams' carries are sharded like the batches.
            make = tiny_lm_config if cell == "lm" else tiny_config
            config = make(parallelism=parallelism, cache_dir=cache, num_epochs=1,
                          dropout_rate=0.3, embed_dropout_rate=0.3, grad_clip_norm=0.5)
            if cell != "lm":
                config.cell = cell
            summary = train.train_and_evaluate(config, workdir)
            history = json.load(open(f"{workdir}/history.json"))
            step = history[-1]["step"]
            saved = by_name(ocp.StandardCheckpointer().restore(
                f"{workdir}/checkpoints/{step}/default"))
            runs[parallelism] = (summary, [{k: h[k] for k in METRICS} for h in history], saved)
        (summary, history, saved), (other_summary, other_history, other_saved) = runs.values()
        differ = [n for n in saved if n not in other_saved
                  or not np.array_equal(saved[n], other_saved[n])]
        out[cell] = {
            "test": [summary[k] for k in ("test_loss", "test_accuracy")],
            "other_test": [other_summary[k] for k in ("test_loss", "test_accuracy")],
            "streams": sorted(n for n in saved if n.startswith("stream/")),
            "history": history,
            "other_history": other_history,
            "arrays": len(saved),
            "same_names": sorted(saved) == sorted(other_saved),
            "differing_arrays": differ,
            "parallelism": [summary["parallelism"], other_summary["parallelism"]],
        }
    print(json.dumps(out))
    """
)


def test_shard_map_trains_bitwise_like_pmap_for_every_kind_of_cell(tmp_path):
    (tmp_path / "my_cells.py").write_text(RESEARCHER_CELL)
    cells = ["lstm", "mingru", "my_cells:IndRNNCell", "lm"]
    result = run_script(
        SCRIPT,
        str(tmp_path / "runs"),
        str(tmp_path / "cache"),
        ",".join(cells),
        xla_flags="--xla_force_host_platform_device_count=2",
        pythonpath=str(tmp_path),
    )
    assert list(result) == cells
    for cell, r in result.items():
        assert r["parallelism"] == list(parallel.PARALLELISMS), cell
        assert r["history"] == r["other_history"], cell
        assert r["test"] == r["other_test"], cell
        assert r["arrays"] > 10 and r["same_names"], cell  # Parameters, Adam's moments, sums.
        assert r["differing_arrays"] == [], cell
        # The language model's checkpoint holds its streams' carries (LSTM: c and h), every
        # stream's row gathered from both devices.
        assert (len(r["streams"]) == 2) == (cell == "lm"), (cell, r["streams"])
