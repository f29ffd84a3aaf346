"""Course shootout, rnn: the defaults with cell='rnn'.

Run:  python -m rnn_jax.main --config=configs/rnn.py --workdir=runs/rnn
Expected: the SimpleRNN row of experiments/results/shootout/table.md (test accuracy, s/epoch).
"""

from configs import default


def get_config():
    config = default.get_config()
    config.cell = "rnn"
    return config
