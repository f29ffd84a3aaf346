"""Course shootout, gru: the defaults with cell='gru'.

Run:  python -m rnn_jax.main --config=configs/gru.py --workdir=runs/gru
"""

from configs import default


def get_config():
    config = default.get_config()
    config.cell = "gru"
    return config
