"""The best recurrent model this codebase trains from scratch on IMDB (supervised, no extra data).

A bidirectional GRU reading up to 400 tokens (the end of longer reviews), mean-pooled over the
real tokens, regularized with dropout, trained with a warmup + cosine schedule. Selected on
validation; test reported once (experiments/results/best/).

Run:  python -m rnn_jax.main --config=configs/best.py --workdir=runs/best
"""

from configs import default


def get_config():
    config = default.get_config()
    config.cell = "gru"
    config.bidirectional = True
    config.hidden_size = 64
    config.vocab_size = 20_000
    config.max_len = 400
    config.pooling = "mean"
    config.embed_dropout_rate = 0.3
    config.dropout_rate = 0.3
    config.learning_rate = 2e-3
    config.schedule = "warmup_cosine"
    config.warmup_epochs = 0.3
    config.grad_clip_norm = 1.0
    config.num_epochs = 4
    return config
