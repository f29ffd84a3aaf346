"""Course shootout, gru: the defaults with cell='gru'.

Run:  python -m rnn_jax.main --config=configs/gru.py --workdir=runs/gru
Expected: the GRU row of experiments/results/shootout/table.md (test accuracy, s/epoch).
"""

from configs import default


def get_config():
    config = default.get_config()
    config.cell = "gru"
    return config
