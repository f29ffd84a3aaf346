"""Course shootout, lstm: the defaults with cell='lstm'.

Run:  python -m rnn_jax.main --config=configs/lstm.py --workdir=runs/lstm
Expected: the LSTM row of experiments/results/shootout/table.md (test accuracy, s/epoch).
"""

from configs import default


def get_config():
    config = default.get_config()
    config.cell = "lstm"
    return config
