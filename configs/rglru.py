"""RG-LRU (a cell linear in h) for the shootout: the defaults, with what validation chose.

Chosen on validation (20% of train held out, evaluate_test=False, 5 epochs, seed 0), from the
candidates in docs/linear_cells.md, which lists each one's best validation accuracy.

Run:  python -m rnn_jax.main --config=configs/rglru.py --workdir=runs/rglru
Expected: the RG-LRU row of experiments/results/shootout/table.md.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.cell = "rglru"
    config.bidirectional = True
    return config
